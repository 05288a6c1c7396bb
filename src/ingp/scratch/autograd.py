"""A scalar reverse-mode autograd engine in the spirit of micrograd: every number is a ``Value`` node that
remembers its parents and how to push its gradient back to them. Pure Python, no torch, no NumPy."""

from __future__ import annotations

import math


class Value:
    """One scalar in a computation graph. ``data`` is the number, ``grad`` is d(output)/d(this) after
    ``output.backward()``."""

    __slots__ = ("data", "grad", "_parents", "_backward")

    def __init__(self, data: float, parents: tuple = (), backward=None):
        self.data = float(data)
        self.grad = 0.0
        self._parents = parents
        self._backward = backward  # closure: adds this node's grad, times local derivatives, into the parents

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    @staticmethod
    def lift(x) -> "Value":
        return x if isinstance(x, Value) else Value(x)

    def _unary(self, data: float, local: float) -> "Value":
        """A node with one parent whose local derivative d(out)/d(self) is ``local``."""
        out = Value(data, (self,))

        def backward():
            self.grad += local * out.grad
        out._backward = backward
        return out

    def __add__(self, other) -> "Value":
        other = Value.lift(other)
        out = Value(self.data + other.data, (self, other))

        def backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = backward
        return out

    def __mul__(self, other) -> "Value":
        other = Value.lift(other)
        out = Value(self.data * other.data, (self, other))

        def backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = backward
        return out

    def __pow__(self, k: float) -> "Value":
        assert isinstance(k, (int, float)), "only constant exponents"
        return self._unary(self.data ** k, k * self.data ** (k - 1))

    def exp(self) -> "Value":
        e = math.exp(self.data)
        return self._unary(e, e)

    def log(self) -> "Value":
        return self._unary(math.log(self.data), 1.0 / self.data)

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        return self._unary(t, 1.0 - t * t)

    def sigmoid(self) -> "Value":
        # the two branches keep exp() from overflowing for large |x|
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1.0 + math.exp(self.data))
        return self._unary(s, s * (1.0 - s))

    def relu(self) -> "Value":
        return self._unary(max(self.data, 0.0), 1.0 if self.data > 0 else 0.0)

    def leaky_relu(self, slope: float = 0.01) -> "Value":
        return self._unary(self.data if self.data > 0 else slope * self.data, 1.0 if self.data > 0 else slope)

    def __abs__(self) -> "Value":
        # d|x|/dx at 0 is taken as 0, as torch does
        return self._unary(abs(self.data), (self.data > 0) - (self.data < 0))

    def __neg__(self) -> "Value":
        return self * -1.0

    def __sub__(self, other) -> "Value":
        return self + (-Value.lift(other))

    def __truediv__(self, other) -> "Value":
        return self * Value.lift(other) ** -1

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other) -> "Value":
        return Value.lift(other) - self

    def __rtruediv__(self, other) -> "Value":
        return Value.lift(other) / self

    def backward(self) -> None:
        """Fill ``grad`` of every node this one depends on. Order: reverse topological, found with an explicit
        stack (graphs of a whole MLP over many pixels are far deeper than Python's recursion limit). Grads of the
        nodes in this graph are zeroed first; nodes outside it keep theirs (an optimiser clears its parameters)."""
        order, seen = [], set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)  # all parents are already in `order`: post-order = topological order
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            if node._backward is not None:
                node._backward()
