"""The codec's two small MLPs in float, for training: the synthesis network (upsampled latents -> pixel) and the
autoregressive entropy model (causal neighbours -> Laplace mean and log scale).

Both are stacks of ``nn.Linear`` with ReLU between. ``forward(x, frac_bits)`` can run with weights and biases
rounded to multiples of ``2^-frac_bits`` (straight-through gradient), which is what the bitstream stores; the exact
integer evaluation of the stored network is ``fixedpoint.mlp``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity gradient."""
    return x + (torch.round(x) - x).detach()


class MLP(nn.Module):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, ReLU after every layer but the last."""

    def __init__(self, sizes: list[int], *, out_bias: list[float] | None = None, generator=None):
        super().__init__()
        self.sizes = list(sizes)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            for layer in self.layers:
                bound = (6.0 / layer.in_features) ** 0.5 / 2
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()
            self.layers[-1].weight.mul_(0.1)
            if out_bias is not None:
                self.layers[-1].bias.copy_(torch.tensor(out_bias))

    def forward(self, x: torch.Tensor, frac_bits: int | None = None) -> torch.Tensor:
        """(N, sizes[0]) -> (N, sizes[-1]); weights rounded to 2^-frac_bits when given.

        Training (float weights, gradients on) takes ``LeanMLP``, the same function with less memory traffic."""
        if frac_bits is None and torch.is_grad_enabled():
            params = [t for layer in self.layers for t in (layer.weight, layer.bias)]
            return LeanMLP.apply(x, *params)
        return self.reference(x, frac_bits)

    def reference(self, x: torch.Tensor, frac_bits: int | None = None) -> torch.Tensor:
        """The plain autograd form of ``forward``: the reference ``LeanMLP`` is tested against."""
        for i, layer in enumerate(self.layers):
            w, b = layer.weight, layer.bias
            if frac_bits is not None:
                s = float(1 << frac_bits)
                w, b = ste_round(w * s) / s, ste_round(b * s) / s
            x = torch.nn.functional.linear(x, w, b)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x

    def integer_layers(self, frac_bits: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W (in, out), B (out,))] as int64: round(value * 2^frac_bits), the form ``fixedpoint.mlp`` takes."""
        s = float(1 << frac_bits)
        return [(np.rint(l.weight.detach().double().numpy().T * s).astype(np.int64),
                 np.rint(l.bias.detach().double().numpy() * s).astype(np.int64)) for l in self.layers]


class LeanMLP(torch.autograd.Function):
    """Linear/ReLU stack with in-place ReLUs and a hand-written backward: it keeps only each hidden layer's
    post-ReLU output (h > 0 is the ReLU's mask) and reuses the gradient buffers, where autograd keeps pre- and
    post-activation tensors and allocates one per op. Measured on the codec's full-image synthesis (393k x 16
    activations, one thread) as the largest per-step cost besides the matmuls."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        hidden = [x]
        n = len(params) // 2
        for i in range(n):
            w, b = params[2 * i], params[2 * i + 1]
            z = torch.addmm(b, hidden[-1], w.t())
            if i + 1 < n:
                hidden.append(z.relu_())
        ctx.save_for_backward(*hidden, *params)
        ctx.n = n
        return z

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        n = ctx.n
        hidden, params = saved[:n], saved[n:]
        grads = [None] * (2 * n)
        g = grad.contiguous()
        for i in reversed(range(n)):
            w = params[2 * i]
            grads[2 * i] = g.t().mm(hidden[i])
            grads[2 * i + 1] = g.sum(0)
            if i > 0:
                g = torch.ops.aten.threshold_backward(g.mm(w), hidden[i], 0.0)
            elif ctx.needs_input_grad[0]:
                g = g.mm(w)
            else:
                g = None
        return (g, *grads)


def flatten_layers(layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """All weights then biases of each layer, layer by layer, as one int64 vector (the bitstream order)."""
    return np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in layers])


def unflatten_layers(values: np.ndarray, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inverse of ``flatten_layers`` for an MLP of ``sizes``."""
    layers, at = [], 0
    for a, b in zip(sizes[:-1], sizes[1:]):
        w = values[at:at + a * b].reshape(a, b)
        at += a * b
        layers.append((w, values[at:at + b]))
        at += b
    return layers


def n_values(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
