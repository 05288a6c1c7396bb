"""tcnn's ``Composite`` encoding, matching ``encodings/composite.h``: different encodings for different input dims.

Config::

    {"otype": "Composite", "reduction": "Concatenation" | "Sum" | "Product",
     "nested": [{"otype": ..., "n_dims_to_encode": k, "dims_to_encode_begin": b, ...child keys}, ...]}

As in tcnn:

* Nested encodings consume consecutive input dims in order (or from ``dims_to_encode_begin`` if given).
* At most one nested config may omit ``n_dims_to_encode``; it takes the dims the others leave over. That is not
  allowed once any nested config uses ``dims_to_encode_begin``.
* The specified dims may not exceed ``n_input_dims``; if they are fewer (and none is omitted), the trailing input dims
  are simply not encoded, as in tcnn.
* A nested encoding with 0 dims is dropped.
* Parameters are the children's parameter vectors concatenated in order, in one flat vector.
* ``Concatenation`` puts the children's features side by side; ``Sum`` / ``Product`` combine children of equal width
  element-wise.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import check_keys
from .base import EncodingImpl

_REDUCTIONS = {"concatenation": "Concatenation", "sum": "Sum", "product": "Product"}
_PLACEMENT_KEYS = ("n_dims_to_encode", "dims_to_encode_begin")  # read here, not passed on to the children


def _dim_count(value, key: str, index: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"Composite encoding: nested[{index}].{key} must be a non-negative integer, got {value!r}")
    return value


class CompositeEncoding(EncodingImpl):
    """``(N, n_input_dims)`` -> ``(N, sum of children's widths)`` (or the common width for Sum / Product).

    ``children`` is a list of ``(encoding, first_input_dim)``; each child reads ``x[:, b : b + child.n_input_dims]``.
    """

    def __init__(self, n_input_dims: int, children: list[tuple[EncodingImpl, int]], reduction: str = "Concatenation"):
        if not children:
            raise ConfigError("Composite encoding: nested must contain at least one encoding with "
                              "n_dims_to_encode > 0")
        red = _REDUCTIONS.get(str(reduction).lower()) if isinstance(reduction, str) else None
        if red is None:
            raise ConfigError(f"Composite encoding: reduction must be one of Concatenation, Sum, Product, "
                              f"got {reduction!r}")
        for i, (child, begin) in enumerate(children):
            end = begin + child.n_input_dims
            if end > n_input_dims:
                raise ConfigError(f"Composite encoding: nested[{i}] encodes dims {begin}..{end - 1} but there are only "
                                  f"{n_input_dims} (check n_dims_to_encode / dims_to_encode_begin)")
        widths = {child.n_output_dims for child, _ in children}
        if red != "Concatenation" and len(widths) != 1:
            raise ConfigError(f"Composite encoding: reduction {red} needs nested encodings of equal output width, "
                              f"got {[child.n_output_dims for child, _ in children]}")
        self.n_input_dims = n_input_dims
        self.children = list(children)
        self.reduction = red
        self.n_output_dims = sum(c.n_output_dims for c, _ in children) if red == "Concatenation" else widths.pop()
        self.n_params = sum(c.n_params for c, _ in children)
        # tcnn pads a composite through its last child
        self.pad_value, self.pad_before = children[-1][0].pad_value, children[-1][0].pad_before

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "CompositeEncoding":
        from . import build_encoding  # imported here: the registry imports this module lazily

        check_keys(config, {"nested", "reduction"}, "Composite encoding")
        nested = config.get("nested")
        if not isinstance(nested, list) or not nested:
            raise ConfigError(f"Composite encoding: nested must be a non-empty list of encoding configs, "
                              f"got {nested!r}")
        for i, sub in enumerate(nested):
            if not isinstance(sub, dict):
                raise ConfigError(f"Composite encoding: nested[{i}] must be an encoding config object, got {sub!r}")

        # tcnn: with any dims_to_encode_begin the placement is explicit; otherwise dims are taken in order and one
        # nested config may omit n_dims_to_encode to receive the leftover dims.
        explicit = any("dims_to_encode_begin" in sub for sub in nested)
        specified = sum(_dim_count(sub["n_dims_to_encode"], "n_dims_to_encode", i)
                        for i, sub in enumerate(nested) if "n_dims_to_encode" in sub)
        if not explicit and specified > n_input_dims:
            raise ConfigError(f"Composite encoding: the nested n_dims_to_encode add up to {specified}, "
                              f"more than the {n_input_dims} input dims")
        leftover = None if explicit else n_input_dims - specified

        children, offset = [], 0
        for i, sub in enumerate(nested):
            if "n_dims_to_encode" in sub:
                if "dims_to_encode_begin" in sub:
                    offset = _dim_count(sub["dims_to_encode_begin"], "dims_to_encode_begin", i)
                n = _dim_count(sub["n_dims_to_encode"], "n_dims_to_encode", i)
            else:
                if leftover is None:
                    raise ConfigError(f"Composite encoding: nested[{i}] has no n_dims_to_encode; it may be omitted for "
                                      "a single nested encoding only, and not when dims_to_encode_begin is used")
                n, leftover = leftover, None
            if n > 0:  # tcnn drops nested encodings with nothing to encode
                child_config = {k: v for k, v in sub.items() if k not in _PLACEMENT_KEYS}
                children.append((build_encoding(n, child_config), offset))
            offset += n
        return cls(n_input_dims, children, reduction=config.get("reduction", "Concatenation"))

    def config(self) -> dict:
        nested = [{**child.config(), "n_dims_to_encode": child.n_input_dims, "dims_to_encode_begin": begin}
                  for child, begin in self.children]
        return {"otype": "Composite", "reduction": self.reduction, "nested": nested}

    def initial_params(self, generator: torch.Generator) -> torch.Tensor:
        """The children's initial parameters, concatenated in order (drawn one child after another, like tcnn)."""
        parts = [child.initial_params(generator) for child, _ in self.children]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float32)

    def child_params(self, params: torch.Tensor) -> list[torch.Tensor]:
        """Views of each child's slice of the flat ``params`` ``(n_params,)``, in order."""
        out, start = [], 0
        for child, _ in self.children:
            out.append(params[start:start + child.n_params])
            start += child.n_params
        return out

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, n_input_dims)``, ``params``: ``(n_params,)`` -> ``(N, n_output_dims)`` in ``x``'s dtype."""
        # contiguous(): a column slice is strided, and kernels of other encodings may want dense rows.
        outs = [child.encode(x[:, begin:begin + child.n_input_dims].contiguous(), p)
                for (child, begin), p in zip(self.children, self.child_params(params))]
        if self.reduction == "Concatenation":
            return torch.cat(outs, dim=1)
        result = outs[0]
        for o in outs[1:]:  # plain + / * keep every order of derivative available
            result = result + o if self.reduction == "Sum" else result * o
        return result
