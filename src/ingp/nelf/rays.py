"""Rays -> student inputs. Every function is plain tensor arithmetic (no data-dependent control flow), so the same
code runs in training, in the ONNX graph (``ingp export onnx``) and, transcribed, in the WebGL2 shader
(``web/static/nelf.js``).

The light field lives on the lines that cross a sphere S (centre ``centre``, radius ``radius``) around the scene.
A line is given by where it enters and where it leaves S (the *two-sphere* parametrisation: unlike two planes it
has no direction in which it breaks down, so it suits cameras all around an object). Both points are unit vectors
relative to the sphere; they are expressed in the scene's ``frame`` (3 x 3, rows e1, e2, up, with ``up`` the
training cameras' mean side) and flattened to [0, 1]^2 with the octahedral map: the entry point with the upper half
in the map's seamless centre, the exit point mirrored (z -> -z) so the lower half, where rays from above leave, is
seamless too. The four numbers are the grid student's input. Lines that miss S show only the background.
"""

from __future__ import annotations

import torch


def chord(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the lines o + t d (N, 3), d unit, cross the sphere -> t_in (N,), t_out (N,), hit (N,) bool. Lines that
    miss get t_in = t_out = the closest approach."""
    p = o - centre
    b = (p * d).sum(-1)
    disc = b * b - ((p * p).sum(-1) - radius * radius)
    s = torch.sqrt(torch.clamp(disc, min=0.0))
    return -b - s, -b + s, disc > 0


def _sign(v: torch.Tensor) -> torch.Tensor:
    """+1 for v >= 0 else -1 (torch.sign(0) = 0 would fold the map's border)."""
    return torch.where(v >= 0, torch.ones_like(v), -torch.ones_like(v))


def octahedral(n: torch.Tensor) -> torch.Tensor:
    """Unit vectors (N, 3) -> (N, 2) in [0, 1]^2: the octahedral map, z >= 0 in the centre diamond."""
    q = n / (n.abs().sum(-1, keepdim=True) + 1e-12)
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    fx = (1 - y.abs()) * _sign(x)
    fy = (1 - x.abs()) * _sign(y)
    upper = z >= 0
    u = torch.where(upper, x, fx)
    v = torch.where(upper, y, fy)
    return torch.stack([u, v], -1) * 0.5 + 0.5


def two_sphere(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius: float, frame: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (N, 3) x 2 -> 4-D coordinates (N, 4) in [0, 1]^4 and hit (N,) bool (see the module docstring).
    ``frame`` (3, 3): rows e1, e2, up."""
    t_in, t_out, hit = chord(o, d, centre, radius)
    a = ((o + t_in[:, None] * d - centre) / radius) @ frame.T
    b = ((o + t_out[:, None] * d - centre) / radius) @ frame.T
    b = b * torch.tensor([1.0, 1.0, -1.0], dtype=b.dtype, device=b.device)
    return torch.cat([octahedral(a), octahedral(b)], -1).clamp(0, 1), hit


def chord_points(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius: float, n_points: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_points`` points evenly spaced on each ray's chord through the sphere (the middles of equal segments),
    relative to the sphere: (N, n_points, 3) in [-1, 1]^3, and hit (N,) bool. The R2L student's input."""
    t_in, t_out, hit = chord(o, d, centre, radius)
    f = (torch.arange(n_points, dtype=o.dtype, device=o.device) + 0.5) / n_points
    t = t_in[:, None] + (t_out - t_in)[:, None] * f  # (N, K)
    return (o[:, None, :] + t[..., None] * d[:, None, :] - centre) / radius, hit


def scene_frame(camera_positions: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(3, 3) rows e1, e2, up: ``up`` the mean direction from the centre to the cameras (z if they average out)."""
    up = (camera_positions - centre).mean(0)
    up = up / up.norm() if float(up.norm()) > 1e-6 else torch.tensor([0.0, 0.0, 1.0])
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    e1 = torch.linalg.cross(helper, up)
    e1 = e1 / e1.norm()
    return torch.stack([e1, torch.linalg.cross(up, e1), up])
