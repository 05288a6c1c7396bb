"""Volume rendering of packed samples (NeRF's quadrature), vectorised over segments: per-ray exclusive cumulative
optical depth comes from one global cumulative sum minus each ray's value at its first sample."""

from __future__ import annotations

import torch


def composite(sigma: torch.Tensor, rgb: torch.Tensor, samples, n_rays: int, background: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigma (S,), rgb (S, 3) of ``samples`` (ray-sorted) -> colour (R, 3), opacity (R,), depth (R,).

    weight_i = T_i (1 - exp(-sigma_i dt_i)), T_i = exp(-sum_{j<i, same ray} sigma_j dt_j). ``background`` (R, 3) or
    (3,) is added with weight 1 - opacity. Depth is the expected distance (not normalised by opacity).
    """
    ray = samples.ray
    tau = sigma * samples.dt
    # float64 keeps the global running sum exact enough over ~1e6 samples; MPS has no float64
    acc = torch.float32 if tau.device.type == "mps" else torch.float64
    cs = torch.cumsum(tau.to(acc), dim=0)
    excl = cs - tau.to(acc)
    counts = torch.bincount(ray, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    before = (excl[starts[ray]] if len(ray) else excl)  # optical depth of earlier rays, at each ray's start
    trans = torch.exp(-(excl - before)).to(sigma.dtype)
    w = trans * (1 - torch.exp(-tau))
    colour = torch.zeros(n_rays, 3, dtype=rgb.dtype, device=rgb.device).index_add_(0, ray, w[:, None] * rgb)
    opacity = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray, w)
    depth = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray, w * samples.t)
    if background is not None:
        colour = colour + (1 - opacity)[:, None] * background
    return colour, opacity, depth


@torch.no_grad()
def render_rays(model, grid, o: torch.Tensor, d: torch.Tensor, aabb: tuple[float, float], *, cone: float = 0.0,
                background: torch.Tensor | None = None, ray_chunk: int = 1 << 13, sample_chunk: int = 1 << 18
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render (N, 3) rays without gradients -> colour (N, 3), opacity (N,), depth (N,), in ray chunks."""
    from .march import march

    colours, opacities, depths = [], [], []
    for i in range(0, len(o), ray_chunk):
        oc, dc = o[i:i + ray_chunk], d[i:i + ray_chunk]
        s = march(grid, oc, dc, aabb, cone=cone)
        sigma = torch.empty(len(s), device=o.device)
        rgb = torch.empty(len(s), 3, device=o.device)
        for j in range(0, len(s), sample_chunk):
            sigma[j:j + sample_chunk], rgb[j:j + sample_chunk] = model(s.x[j:j + sample_chunk], s.d[j:j + sample_chunk])
        bg = None if background is None else background.expand(len(oc), 3)
        c, a, dep = composite(sigma, rgb, s, len(oc), bg)
        colours.append(c)
        opacities.append(a)
        depths.append(dep)
    return torch.cat(colours), torch.cat(opacities), torch.cat(depths)
