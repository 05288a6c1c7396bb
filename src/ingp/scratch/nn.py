"""A multilayer perceptron made of scalar ``Value`` s, and the model the first seed trains: grid encoding + MLP.

Parameter layout (shared with the NumPy version, ``numpy_model``): layer ``i`` has ``W[i]`` as a list of ``n_out``
rows of ``n_in`` Values and ``b[i]`` as a list of ``n_out`` Values."""

from __future__ import annotations

import random

from .autograd import Value

ACTIVATIONS = {
    "tanh": Value.tanh,
    "relu": Value.relu,
    "leaky_relu": Value.leaky_relu,  # slope 0.01, as the seed's "unstable ReLU" run
    "sigmoid": Value.sigmoid,
    "none": lambda v: v,
}


class MLP:
    """``sizes = [n_in, h1, ..., n_out]``; ``activation`` after every hidden layer, ``output_activation`` after the
    last (the seed used tanh on both). Weights and biases ~ U(-init, init) (the seed: 0.5)."""

    def __init__(self, sizes: list[int], activation: str = "tanh", output_activation: str = "tanh",
                 init: float = 0.5, rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.sizes, self.activation, self.output_activation = list(sizes), activation, output_activation
        self.W = [[[Value(rng.uniform(-init, init)) for _ in range(n_in)] for _ in range(n_out)]
                  for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.b = [[Value(rng.uniform(-init, init)) for _ in range(n_out)] for n_out in sizes[1:]]

    def __call__(self, x: list) -> list[Value]:
        """x: ``n_in`` numbers or Values -> ``n_out`` Values."""
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            act = ACTIVATIONS[self.output_activation if i == len(self.W) - 1 else self.activation]
            x = [act(sum((w * xi for w, xi in zip(row, x)), bias)) for row, bias in zip(W, b)]
        return x

    def parameters(self) -> list[Value]:
        return [v for W, b in zip(self.W, self.b) for v in [w for row in W for w in row] + b]


class Model:
    """``encoding`` (a grid from ``grids`` or None for raw (x, y)) followed by an MLP. ``model((x, y))`` -> list of
    outputs."""

    def __init__(self, encoding, mlp: MLP):
        self.encoding, self.mlp = encoding, mlp

    def __call__(self, xy) -> list[Value]:
        return self.mlp(self.encoding(xy) if self.encoding is not None else list(xy))

    def parameters(self) -> list[Value]:
        return (self.encoding.parameters() if self.encoding is not None else []) + self.mlp.parameters()
