"""Scene contraction for unbounded captures (mip-NeRF 360, eq. 10; nerfacto's L-infinity variant).

The unit cube of the scene (instant-ngp's [0, 1]^3, where a capture's subject sits) is kept as it is and everything
outside is squashed into a shell, so the hash grid spends its cells where the cameras look and still covers far
background at a coarse scale:

    y = 2 x - 1                                   scene point -> [-1, 1]^3 on the unit cube
    c = y                        if |y| <= 1
        (2 - 1 / |y|) y / |y|    otherwise        |.| the L-infinity (default) or L2 norm; |c| < 2
    u = (c + 2) / 4                               -> [0, 1]^3, the hash grid's input; the unit cube is [1/4, 3/4]^3

The L-infinity norm maps cubes to cubes (the occupancy cascades' shells and the grid's own box), the L2 norm is the
paper's. Marching and the occupancy grid stay in scene coordinates; only the encoding's input is contracted.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

NORMS = {"linf": float("inf"), "l2": 2.0}


def check(config: dict | None) -> str | None:
    """The model config's ``contraction`` section -> its norm name ("linf" / "l2"), or None for no contraction."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ConfigError("model config: 'contraction' must be an object like {\"otype\": \"Linf\"}")
    otype = str(config.get("otype", "None")).lower()
    if otype == "none":
        return None
    if otype not in NORMS or set(config) - {"otype"}:
        raise ConfigError(f"model config: contraction otype {config.get('otype')!r} unknown (None, Linf, L2; no "
                          f"other keys)")
    return otype


def _norm(y: torch.Tensor, norm: str) -> torch.Tensor:
    return y.abs().amax(dim=-1, keepdim=True) if norm == "linf" else y.norm(dim=-1, keepdim=True)


def contract(y: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """(N, 3) points y (unit cube = [-1, 1]^3) -> (N, 3) contracted points, |c| < 2; differentiable."""
    r = _norm(y, norm)
    safe = r.clamp_min(1.0)  # inside, the factor below is 1 and its gradient path is cut by the where
    return torch.where(r <= 1, y, (2 - 1 / safe) * y / safe)


def uncontract(c: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """Inverse of ``contract`` for |c| < 2: (N, 3) -> (N, 3). |c| = 2 - 1/|y|, so |y| = 1 / (2 - |c|)."""
    s = _norm(c, norm)
    safe = s.clamp(1.0, 2.0 - 1e-7)
    r = 1 / (2 - safe)
    return torch.where(s <= 1, c, c * (r / safe))


def encode_position(x: torch.Tensor, norm: str) -> torch.Tensor:
    """(N, 3) scene points -> (N, 3) hash-grid inputs in [0, 1]^3 (the module docstring's u)."""
    return (contract(2 * x - 1, norm) + 2) * 0.25
