"""Volume rendering of packed samples (NeRF's quadrature), vectorised over segments: per-ray exclusive cumulative
optical depth comes from one global cumulative sum minus each ray's value at its first sample."""

from __future__ import annotations

import torch

MIN_TRANSMITTANCE = 1e-4  # samples behind this little light are neither trained nor evaluated (REFERENCE §3)
# Pictures (``nerf render``, videos, the browser viewer) stop at instant-ngp's render default (its testbed's
# render_min_transmittance); its evaluation scripts, like ``nerf eval``, use 1e-4. On the 5-minute fox: 39 % fewer
# samples per ray, 46 dB against the 1e-4 render (docs/benchmarks.md).
RENDER_MIN_TRANSMITTANCE = 1e-2


def exclusive_sums(v: torch.Tensor, ray: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Values v (S,) of ray-sorted samples with ray index ``ray`` (S,) -> (S,) float64 (float32 on MPS): the sum
    of v over the same ray's earlier samples. One global cumulative sum minus its value at each ray's start."""
    # float64 keeps the global running sum exact enough over ~1e6 samples; MPS has no float64
    acc = torch.float32 if v.device.type == "mps" else torch.float64
    cs = torch.cumsum(v.to(acc), dim=0)
    excl = cs - v.to(acc)
    if ray.device.type == "cpu":
        counts = torch.bincount(ray, minlength=n_rays)
    else:  # CUDA's bincount reads the largest index back to the host; an index_add does not wait for the GPU
        counts = torch.zeros(n_rays, dtype=torch.long, device=ray.device).index_add_(0, ray, torch.ones_like(ray))
    starts = torch.cumsum(counts, 0) - counts
    before = (excl[starts[ray]] if len(ray) else excl)  # the sum over earlier rays, at each ray's start
    return excl - before


def transmittance_of(tau: torch.Tensor, ray: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Optical depths tau (S,) of ray-sorted samples with ray index ``ray`` (S,) -> the light T_i (S,) reaching
    each sample: exp(-sum of tau over the same ray's earlier samples)."""
    return torch.exp(-exclusive_sums(tau, ray, n_rays)).to(tau.dtype)


def sample_weights(sigma: torch.Tensor, samples, n_rays: int) -> torch.Tensor:
    """sigma (S,) of ``samples`` (ray-sorted) -> weights T_i (1 - exp(-sigma_i dt_i)) (S,)."""
    tau = sigma * samples.dt
    return transmittance_of(tau, samples.ray, n_rays) * (1 - torch.exp(-tau))


def distortion(w: torch.Tensor, samples, n_rays: int) -> torch.Tensor:
    """mip-NeRF 360's distortion loss of weights w (S,) along ``samples`` (ray-sorted) -> its mean over the rays.

    Per ray: sum_ij w_i w_j |s_i - s_j| + 1/3 sum_i w_i^2 ds_i, with s = log t (cone steps are equal in log t, so
    each sample's interval is ds = dt / t), computed in O(S) from exclusive running sums of w and w s.
    """
    s = torch.log(samples.t)
    ds = samples.dt / samples.t
    ws, wss = exclusive_sums(w, samples.ray, n_rays), exclusive_sums(w * s, samples.ray, n_rays)
    per_sample = 2 * w * (s * ws - wss).to(w.dtype) + w * w * ds / 3
    return per_sample.sum() / max(n_rays, 1)


def composite(sigma: torch.Tensor, rgb: torch.Tensor, samples, n_rays: int, background: torch.Tensor | None = None,
              *, entering: torch.Tensor | None = None, min_transmittance: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigma (S,), rgb (S, 3) of ``samples`` (ray-sorted) -> colour (R, 3), opacity (R,), depth (R,).

    weight_i = T_i (1 - exp(-sigma_i dt_i)), T_i = T_0 exp(-sum_{j<i, same ray} sigma_j dt_j), with T_0 the rays'
    transmittance on ``entering`` (R,) (default 1). Samples with T_i < ``min_transmittance`` get weight 0 (the
    cut-off). ``background`` (R, 3) or (3,) is added with weight 1 - opacity. Depth is the expected distance (not
    normalised by opacity).
    """
    ray = samples.ray
    tau = sigma * samples.dt
    trans = transmittance_of(tau, ray, n_rays)
    if entering is not None:
        trans = trans * entering[ray]
    w = trans * (1 - torch.exp(-tau))
    if min_transmittance > 0:
        w = torch.where(trans >= min_transmittance, w, 0)
    colour = torch.zeros(n_rays, 3, dtype=rgb.dtype, device=rgb.device).index_add_(0, ray, w[:, None] * rgb)
    opacity = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray, w)
    depth = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray, w * samples.t)
    if background is not None:
        colour = colour + (1 - opacity)[:, None] * background
    return colour, opacity, depth


@torch.no_grad()
def render_rays(model, grid, o: torch.Tensor, d: torch.Tensor, aabb: tuple[float, float], *, cone: float = 0.0,
                background: torch.Tensor | None = None, ray_chunk: int = 1 << 16, sample_chunk: int = 1 << 18,
                round_samples: int = 8, min_transmittance: float = MIN_TRANSMITTANCE
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render (N, 3) rays without gradients -> colour (N, 3), opacity (N,), depth (N,). ``model(x, d, ray=ray)``
    maps (S, 3) points on rays ``ray`` (S,) with directions ``d`` (R, 3) to sigma (S,), rgb (S, 3).

    Rays are marched in rounds of at most ``round_samples`` samples each (what a round marches past a ray's end
    is evaluated in vain: on the fox, rounds of 8 were 10-25 % faster than rounds doubling from 8 to 64); after
    each round, rays whose transmittance fell below ``min_transmittance`` or that left the box are dropped, so
    samples behind opaque surfaces are never evaluated. A sample counts iff the transmittance in front of it is at
    least the cut-off, so the result does not depend on the round sizes.
    """
    from .march import MAX_STEPS, march

    dev = o.device
    colour = torch.zeros(len(o), 3, device=dev)
    opacity = torch.zeros(len(o), device=dev)
    depth = torch.zeros(len(o), device=dev)
    for i in range(0, len(o), ray_chunk):
        alive = torch.arange(i, min(i + ray_chunk, len(o)), device=dev)
        start = torch.zeros(len(alive), dtype=torch.long, device=dev)
        while len(alive):
            s = march(grid, o[alive], d[alive], aabb, cone=cone, start=start, max_samples=round_samples)
            sigma = torch.empty(len(s), device=dev)
            rgb = torch.empty(len(s), 3, device=dev)
            for j in range(0, len(s), sample_chunk):
                ray = s.ray[j:j + sample_chunk]
                first, last = int(ray[0]), int(ray[-1])  # the chunk's rays: one view encoding per ray
                sigma[j:j + sample_chunk], rgb[j:j + sample_chunk] = model(
                    s.x[j:j + sample_chunk], d[alive[first:last + 1]], ray=ray - first)
            trans = 1 - opacity[alive]
            c, a, dep = composite(sigma, rgb, s, len(alive), entering=trans, min_transmittance=min_transmittance)
            colour[alive] += c
            opacity[alive] += a
            depth[alive] += dep
            go_on = (s.resume < MAX_STEPS) & (trans - a >= min_transmittance)
            alive, start = alive[go_on], s.resume[go_on]
    if background is not None:
        colour += (1 - opacity)[:, None] * background
    return colour, opacity, depth
