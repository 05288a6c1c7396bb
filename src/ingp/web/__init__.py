"""Models in the browser: ``export`` (run folder -> ``model.json`` + ``model.bin``; ``export_nerf`` for NeRF runs),
``reference`` / ``reference_nerf`` (NumPy evaluators that read only those two files), ``camera`` (the NeRF viewer's
orbit camera), ``server`` (``ingp view``: the static viewer and one export on 127.0.0.1) and ``static/`` (the
WebGL2 viewer, plain ES modules)."""
