"""The Triton ray marcher (run by Triton's interpreter on CPU tensors) gives the numba marcher's samples exactly:
the same rays, t, dt, resume steps; and, with constant steps, exactly the dense reference's."""

import pytest
import torch

from ingp.kernels import backend
from ingp.kernels.march_numba import march_numba
from ingp.kernels.march_triton import march_triton
from ingp.nerf.march import MAX_STEPS, NEAR, box_intersect, march
from ingp.nerf.occupancy import OccupancyGrid, min_step


def scene(n_cascades, res, n_rays, inside, seed, density=0.1):
    """A random occupancy grid and rays from outside (aimed near the centre) or from inside the box."""
    gen = torch.Generator().manual_seed(seed)
    grid = OccupancyGrid(n_cascades, "cpu", resolution=res)
    grid.bitfield = torch.rand(n_cascades, res ** 3, generator=gen) < density
    h = 2.0 ** (n_cascades - 1)
    if inside:
        o = (torch.rand(n_rays, 3, generator=gen) - 0.5) * 1.6 * h + 0.5
        d = torch.randn(n_rays, 3, generator=gen)
    else:
        o = torch.randn(n_rays, 3, generator=gen) * 2 * h + 0.5
        d = torch.rand(n_rays, 3, generator=gen) - o + 0.2 * torch.randn(n_rays, 3, generator=gen)
    d[:3] = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])  # axis-aligned: components exactly 0
    return grid, o, torch.nn.functional.normalize(d, dim=1), (0.5 - h, 0.5 + h)


def both(grid, o, d, aabb, cone, max_steps, start, limit):
    dt_min = min_step(grid.R)
    dt_max = dt_min * (1 << (grid.K - 1))
    t_near, t_far = box_intersect(o, d, *aabb)
    t_near = t_near.clamp_min(NEAR)
    args = (grid.bitfield, grid.K, grid.R, o, d, t_near, t_far, dt_min, dt_max, cone, max_steps, start, limit)
    counts, resume, t, dt = march_numba(*args)
    ray, t2, dt2, resume2 = march_triton(*args)
    return (torch.repeat_interleave(torch.arange(len(o)), counts), t, dt, resume), (ray, t2, dt2, resume2)


# The interpreter runs a block's loop once per step of its longest ray (tens of ms each), so the walks are kept
# short: 8^3 grids, and a step cap below MAX_STEPS (the cap is part of what is compared).
@pytest.mark.parametrize("n_cascades, cone, inside, max_steps", [
    (1, 0.0, False, MAX_STEPS), (2, 0.0, True, 48), (3, 1 / 256, False, 64), (2, 1 / 64, True, 48),
    (3, 1 / 32, True, 48)])
def test_triton_march_equals_numba(n_cascades, cone, inside, max_steps):
    grid, o, d, aabb = scene(n_cascades, 8, 200, inside, seed=n_cascades * 10 + int(inside), density=0.3)
    start = torch.zeros(len(o), dtype=torch.long)
    start[::7] = 5  # some rays resume mid-way
    (ray, t, dt, resume), (ray2, t2, dt2, resume2) = both(grid, o, d, aabb, cone, max_steps, start, 0)
    assert len(t) > 400 and len(ray.unique()) > 30
    assert torch.equal(ray2, ray) and torch.equal(t2, t) and torch.equal(dt2, dt) and torch.equal(resume2, resume)
    assert (resume == max_steps).all()


def test_triton_march_limits_and_step_cap_equal_numba():
    """max_samples (limit) with resume steps, and a cap on steps that cuts rays short."""
    grid, o, d, aabb = scene(2, 8, 150, True, seed=3, density=0.5)
    start = torch.randint(0, 8, (len(o),))
    for cone, max_steps, limit in [(0.0, 40, 4), (1 / 64, 48, 3)]:
        (ray, t, dt, resume), (ray2, t2, dt2, resume2) = both(grid, o, d, aabb, cone, max_steps, start, limit)
        assert len(t) > 100
        assert torch.equal(ray2, ray) and torch.equal(t2, t) and torch.equal(dt2, dt)
        assert torch.equal(resume2, resume)
        if limit:
            assert int(torch.bincount(ray).max()) == limit and (resume < max_steps).any()


def test_march_dispatches_to_triton_and_rounds_match_one_pass():
    """Through ``march``: INGP_KERNELS=triton equals the numba path and the dense reference (constant steps: t
    exact), and marching in rounds of max_samples from each round's resume gives the one-pass samples."""
    grid, o, d, aabb = scene(1, 8, 60, False, seed=7, density=0.25)
    with backend("triton"):
        whole = march(grid, o, d, aabb)
    with backend("numba"):
        fast = march(grid, o, d, aabb)
    with backend("torch"):
        dense = march(grid, o, d, aabb)
    for ref in (fast, dense):
        assert torch.equal(whole.ray, ref.ray) and torch.equal(whole.t, ref.t) and torch.equal(whole.dt, ref.dt)
        assert torch.equal(whole.x, ref.x) and torch.equal(whole.d, ref.d) and torch.equal(whole.resume, ref.resume)
    start, parts = torch.zeros(len(o), dtype=torch.long), []
    with backend("triton"):
        while len(parts) < 50:
            s = march(grid, o, d, aabb, start=start, max_samples=20)
            if not len(s):
                break
            parts.append(s)
            start = s.resume
    assert (start == MAX_STEPS).all() and len(parts) > 1 and (parts[0].resume < MAX_STEPS).sum() > 3
    ray, t = torch.cat([p.ray for p in parts]), torch.cat([p.t for p in parts])
    order = torch.argsort(ray, stable=True)
    assert torch.equal(ray[order], whole.ray) and torch.equal(t[order], whole.t)


def test_triton_march_without_samples():
    grid, o, d, aabb = scene(1, 8, 5, False, seed=1)
    grid.bitfield[:] = False
    with backend("triton"):
        s = march(grid, o, d, aabb, cone=1 / 256)
        assert len(s) == 0 and s.t.shape == (0,) and (s.resume == MAX_STEPS).all()
        none = march(grid, o[:0], d[:0], aabb)
    assert len(none) == 0 and none.resume.shape == (0,)
