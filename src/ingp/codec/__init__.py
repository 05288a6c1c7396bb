"""A Cool-chic-style fitted image codec: quantised multiresolution latent grids, a small synthesis MLP and a learned
autoregressive Laplace entropy model, range-coded with ``constriction``.

Modules: ``latents`` (grids, upsampling, causal contexts), ``networks`` (the synthesis MLP and the entropy-model
MLP in float for training), ``fixedpoint`` (the same networks and the upsampling in exact integer arithmetic, what
the decoder runs), ``laplace`` (integer Laplace probability tables), ``bitstream`` (header, CRC, range coding),
``fit`` (training and rate control) and ``decode``. ``commands`` holds the CLI verbs.
"""
