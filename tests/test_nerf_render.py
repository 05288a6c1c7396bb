"""NeRF fast paths against slow, obviously-correct references: compositing, step distances, marching, occupancy."""

import math

import pytest
import torch

from ingp.kernels import backend
from ingp.nerf.march import MAX_STEPS, Samples, box_intersect, march, step_distances
from ingp.nerf.model import NerfModel, default_model_config, resolved_config, trunc_exp
from ingp.nerf.occupancy import OccupancyGrid, min_step
from ingp.nerf.render import MIN_TRANSMITTANCE, composite, transmittance_of


def random_samples(counts, seed=0):
    g = torch.Generator().manual_seed(seed)
    ray = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)]).long()
    n = len(ray)
    t = torch.rand(n, generator=g).sort().values
    return Samples(ray, t, torch.rand(n, generator=g) * 0.1 + 0.01, torch.rand(n, 3, generator=g),
                   torch.randn(n, 3, generator=g)), torch.rand(n, generator=g) * 30, torch.rand(n, 3, generator=g)


def composite_loop(sigma, rgb, s, n_rays, bg):
    """Per ray, per sample, the NeRF quadrature written out."""
    out, alphas = [], []
    for r in range(n_rays):
        T, c, a = torch.tensor(1.0), torch.zeros(3), torch.tensor(0.0)
        for i in torch.nonzero(s.ray == r).squeeze(1).tolist():
            alpha = 1 - torch.exp(-sigma[i] * s.dt[i])
            c = c + T * alpha * rgb[i]
            a = a + T * alpha
            T = T * (1 - alpha)
        out.append(c + (1 - a) * bg[r])
        alphas.append(a)
    return torch.stack(out), torch.stack(alphas)


def test_composite_matches_loop_value_and_gradient():
    counts = [5, 0, 17, 1, 40]  # includes an empty ray
    s, sigma, rgb = random_samples(counts)
    bg = torch.rand(len(counts), 3)
    sigma1, rgb1 = sigma.clone().requires_grad_(), rgb.clone().requires_grad_()
    sigma2, rgb2 = sigma.clone().requires_grad_(), rgb.clone().requires_grad_()
    c1, a1, _ = composite(sigma1, rgb1, s, len(counts), bg)
    c2, a2 = composite_loop(sigma2, rgb2, s, len(counts), bg)
    assert torch.allclose(c1, c2, atol=1e-5) and torch.allclose(a1, a2, atol=1e-5)
    assert torch.allclose(c1[1], bg[1])  # a ray without samples shows the background
    w = torch.randn(len(counts), 3)
    (c1 * w).sum().backward()
    (c2 * w).sum().backward()
    assert torch.allclose(sigma1.grad, sigma2.grad, atol=1e-5)
    assert torch.allclose(rgb1.grad, rgb2.grad, atol=1e-5)
    assert sigma1.grad.abs().max() > 1e-4


def test_step_distances_match_the_recurrence():
    t0 = torch.tensor([0.01, 0.3, 0.9, 3.0])
    dmin, dmax, cone = min_step(), min_step() * 8, 1 / 256
    fast = step_distances(t0, 600, dmin, dmax, cone)
    for r in range(len(t0)):
        t = float(t0[r])
        for k in range(600):
            assert math.isclose(float(fast[r, k]), t, rel_tol=2e-4, abs_tol=1e-5), (r, k)
            t += min(max(t * cone, dmin), dmax)
    lin = step_distances(t0, 5, dmin, dmax, 0.0)
    assert torch.allclose(lin[:, 4] - lin[:, 0], torch.full((4,), 4 * dmin))


def test_box_intersect():
    o = torch.tensor([[0.5, 0.5, -1.0], [2.0, 2.0, 2.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    tn, tf = box_intersect(o, d, 0.0, 1.0)
    assert torch.allclose(tn[0], torch.tensor(1.0)) and torch.allclose(tf[0], torch.tensor(2.0))
    assert tf[1] < tn[1]  # a miss


def test_march_matches_dense_filtering():
    torch.manual_seed(0)
    grid = OccupancyGrid(1, "cpu", resolution=16)
    grid.bitfield = torch.rand(1, 16 ** 3) < 0.3
    o = torch.tensor([[0.5, 0.5, 2.0], [0.1, 0.9, -1.0], [3.0, 3.0, 3.0]])
    d = torch.nn.functional.normalize(torch.tensor([[0.1, -0.05, -1.0], [0.3, -0.2, 1.0], [1.0, 0.0, 0.0]]), dim=1)
    s = march(grid, o, d, (0.0, 1.0))
    dt = min_step(16)
    tn, tf = box_intersect(o, d, 0.0, 1.0)
    for r in range(3):  # reference: walk each ray step by step
        expected = []
        t = max(float(tn[r]), 0.05)
        while t + 0.5 * dt < float(tf[r]) and len(expected) < 1024:
            x = o[r] + (t + 0.5 * dt) * d[r]
            if grid.occupied(x[None])[0]:
                expected.append(t + 0.5 * dt)
            t += dt
        got = s.t[s.ray == r]
        assert len(got) == len(expected), r
        if expected:
            assert torch.allclose(got, torch.tensor(expected), atol=1e-4)
    assert len(s.t[s.ray == 2]) == 0 and len(s) > 10
    assert bool((s.ray[1:] >= s.ray[:-1]).all())


@pytest.mark.parametrize("n_cascades, cone, res, slots, occupied", [
    (1, 0.0, 16, None, 0.1), (3, 0.0, 32, None, 0.1), (3, 1 / 256, 32, None, 0.1), (2, 1 / 64, 16, None, 0.1),
    (3, 1 / 256, 32, 0, 0.1), (2, 1 / 64, 16, 0, 0.1), (3, 1 / 256, 64, None, 0.002), (3, 0.0, 64, None, 0.002),
    (1, 0.0, 32, None, 0.0)])
def test_numba_march_gives_the_dense_samples(n_cascades, cone, res, slots, occupied, monkeypatch):
    """The empty-space-skipping walk keeps exactly the samples of the dense filter (t to float32 rounding when the
    steps grow geometrically: the closed form's exp differs by an ulp between torch and numba), walking each ray
    once into its own slots or (``slots`` 0) twice; sparse grids make it jump over cubes of empty cells."""
    if slots is not None:
        monkeypatch.setattr("ingp.kernels.march_numba.ONE_PASS_SLOTS", slots)
    torch.manual_seed(n_cascades)
    grid = OccupancyGrid(n_cascades, "cpu", resolution=res)
    grid.bitfield = torch.rand(n_cascades, res ** 3) < occupied
    if occupied == 0.0:  # a block of 4^3 occupied cells in the middle: all else is empty space around it
        block = grid.bitfield.view(n_cascades, res, res, res)[0]
        block[res // 2 - 2:res // 2 + 2, res // 2 - 2:res // 2 + 2, res // 2 - 2:res // 2 + 2] = True
    o = torch.randn(2000, 3) * 2 + 0.5
    d = torch.nn.functional.normalize(torch.rand(2000, 3) - o + 0.2 * torch.randn(2000, 3), dim=1)
    h = 2.0 ** (n_cascades - 1)
    fast = march(grid, o, d, (0.5 - h, 0.5 + h), cone=cone)
    with backend("torch"):
        slow = march(grid, o, d, (0.5 - h, 0.5 + h), cone=cone)
    assert len(slow) > (10000 if occupied > 0.01 else 20) and torch.equal(fast.ray, slow.ray)
    tol = 0 if cone == 0 else 1e-6
    torch.testing.assert_close(fast.t, slow.t, atol=tol, rtol=tol)
    torch.testing.assert_close(fast.dt, slow.dt, atol=tol, rtol=tol)
    torch.testing.assert_close(fast.x, slow.x, atol=4 * tol, rtol=4 * tol)
    assert torch.equal(fast.d, slow.d) and torch.equal(fast.resume, slow.resume)


@pytest.mark.parametrize("kernels, slots", [("auto", None), ("auto", 0), ("torch", None)])
def test_marching_in_rounds_gives_the_samples_of_one_pass(kernels, slots, monkeypatch):
    if slots is not None:  # the numba walk's two-pass branch
        monkeypatch.setattr("ingp.kernels.march_numba.ONE_PASS_SLOTS", slots)
    torch.manual_seed(5)
    grid = OccupancyGrid(2, "cpu", resolution=16)
    grid.bitfield = torch.rand(2, 16 ** 3) < 0.2
    o = torch.randn(300, 3) * 2 + 0.5
    d = torch.nn.functional.normalize(torch.rand(300, 3) - o, dim=1)
    with backend(kernels):
        whole = march(grid, o, d, (-0.5, 1.5), cone=1 / 64)
        start, parts = torch.zeros(300, dtype=torch.long), []
        while True:
            s = march(grid, o, d, (-0.5, 1.5), cone=1 / 64, start=start, max_samples=3)
            if not len(s):
                break
            assert int(torch.bincount(s.ray).max()) <= 3
            parts.append(s)
            start = s.resume
    assert (start == MAX_STEPS).all() and len(parts) > 3
    ray, t = torch.cat([p.ray for p in parts]), torch.cat([p.t for p in parts])
    order = torch.argsort(ray, stable=True)  # rounds come in step order, so this is (ray, t) order
    assert torch.equal(ray[order], whole.ray) and torch.equal(t[order], whole.t)


def test_occupancy_cells_round_trip_and_cascades():
    grid = OccupancyGrid(3, "cpu", resolution=8)
    flat = torch.arange(grid.n_cells)
    p = grid.cell_points(flat, jitter=False)
    idx, inside = grid.cell_index(p)
    k = flat // 8 ** 3
    # a centre of a coarse cell that lies inside a finer cascade maps to the finer one; the rest round-trip
    own = (p - 0.5).abs().amax(1) >= 2.0 ** (k - 2)
    assert bool(inside.all()) and torch.equal(idx[own | (k == 0)], flat[own | (k == 0)])
    assert not bool(grid.cell_index(torch.tensor([[3.0, 0.5, 0.5]]))[1][0])


def test_occupancy_update_decays_and_thresholds():
    grid = OccupancyGrid(1, "cpu", resolution=8)
    grid.density.fill_(0.005)
    # density 100 in the x < 0.5 half, 0 elsewhere; every cell sampled
    grid.update(lambda x: torch.where(x[:, 0] < 0.5, 100.0, 0.0), 8 ** 3 * 20, 0)
    left = grid.cell_points(torch.arange(8 ** 3), jitter=False)[:, 0] < 0.5
    assert torch.allclose(grid.density[0, ~left], torch.tensor(0.005 * 0.95))
    assert torch.allclose(grid.density[0, left], torch.tensor(100 * min_step(8)))
    assert bool(grid.bitfield[0, left].all()) and not bool(grid.bitfield[0, ~left].any())


def test_trunc_exp_clamps_the_gradient():
    x = torch.tensor([0.0, 20.0, -20.0], requires_grad=True)
    trunc_exp(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([1.0, math.exp(15), math.exp(-15)]), rtol=1e-5)


def test_model_shapes_and_range():
    m = NerfModel(resolved_config(default_model_config(), 4), (-1.5, 2.5))
    sigma, rgb = m(torch.rand(100, 3) * 4 - 1.5, torch.nn.functional.normalize(torch.randn(100, 3), dim=1))
    assert sigma.shape == (100,) and rgb.shape == (100, 3)
    assert bool((sigma > 0).all()) and bool(((rgb > 0) & (rgb < 1)).all())
    enc = resolved_config(default_model_config(), 4)["encoding"]
    assert enc["per_level_scale"] == pytest.approx((2048 * 4 / 16) ** (1 / 7))


def test_model_encodes_directions_once_per_ray():
    """Points given with their rays' directions and a ray index get exactly what per-point directions give, in
    value and gradient."""
    m = NerfModel(resolved_config(default_model_config(), 4), (-1.5, 2.5))
    torch.manual_seed(0)
    x = torch.rand(50, 3) * 4 - 1.5
    d = torch.nn.functional.normalize(torch.randn(7, 3), dim=1)
    ray = torch.sort(torch.randint(0, 7, (50,))).values
    per_point = m(x, d[ray])
    g_point = torch.autograd.grad(per_point[1].sum() + per_point[0].sum(), m.rgb_net.params)[0]
    per_ray = m(x, d, ray=ray)
    g_ray = torch.autograd.grad(per_ray[1].sum() + per_ray[0].sum(), m.rgb_net.params)[0]
    assert torch.equal(per_ray[0], per_point[0]) and torch.equal(per_ray[1], per_point[1])
    torch.testing.assert_close(g_ray, g_point)
    assert float(per_point[1].std()) > 0.01


def test_render_in_rounds_matches_one_pass_with_the_cut_off():
    """Rounds of 1 sample, rounds of 8, and one composite over all samples agree; the cut-off drops
    samples behind opaque matter (a dense ball: sigma = 300 inside radius 0.25)."""
    from ingp.nerf.render import MIN_TRANSMITTANCE, render_rays

    class Ball(torch.nn.Module):
        def forward(self, x, d, ray=None):
            d = d if ray is None else d[ray]
            inside = (x - 0.5).norm(dim=1) < 0.25
            return torch.where(inside, 300.0, 0.5), torch.sigmoid(4 * x + d)

    torch.manual_seed(1)
    grid = OccupancyGrid(1, "cpu", resolution=16)
    o = torch.tensor([0.5, 0.5, 2.0]) + 0.3 * torch.randn(64, 3)
    d = torch.nn.functional.normalize(torch.tensor([0.5, 0.5, 0.5]) - o + 0.1 * torch.randn(64, 3), dim=1)
    bg = torch.tensor([1.0, 0.5, 0.0])
    whole = march(grid, o, d, (0.0, 1.0))
    sigma, rgb = Ball()(whole.x, whole.d)
    expected = composite(sigma, rgb, whole, 64, bg, min_transmittance=MIN_TRANSMITTANCE)
    uncut = composite(sigma, rgb, whole, 64, bg)
    assert float((expected[0] - uncut[0]).abs().max()) > 0  # the cut-off changes something ...
    assert float((expected[0] - uncut[0]).abs().max()) < 1e-3  # ... but only what is hidden anyway
    for round_samples in (1, 8):
        got = render_rays(Ball(), grid, o, d, (0.0, 1.0), background=bg, round_samples=round_samples)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_compaction_keeps_what_the_cut_off_keeps():
    """Training drops samples with T < 1e-4 before evaluating them; compositing the kept ones must give what
    compositing all of them with the cut-off gives (kept samples are a prefix of each ray), in value and gradient."""
    s, sigma, rgb = random_samples([30, 0, 50, 3, 80], seed=3)
    sigma = (sigma * 3).requires_grad_()
    light = transmittance_of(sigma.detach() * s.dt, s.ray, 5)
    keep = light >= MIN_TRANSMITTANCE
    assert 0 < int(keep.sum()) < len(s)
    bg = torch.rand(5, 3)
    full = composite(sigma, rgb, s, 5, bg, min_transmittance=MIN_TRANSMITTANCE)[0]
    kept = composite(sigma[keep], rgb[keep], s.subset(keep), 5, bg)[0]
    torch.testing.assert_close(kept, full, atol=1e-6, rtol=1e-6)
    g_full, = torch.autograd.grad(full.sum(), sigma)
    g_kept, = torch.autograd.grad(kept.sum(), sigma)
    torch.testing.assert_close(g_kept, g_full, atol=1e-6, rtol=1e-6)


def test_distortion_loss_equals_its_pairwise_sum_in_value_and_gradient():
    """mip-NeRF 360's distortion loss in O(S) against its definition: per ray, sum_ij w_i w_j |s_i - s_j| +
    1/3 sum_i w_i^2 ds_i with s = log t, ds = dt / t; mean over rays (one of them empty)."""
    from ingp.nerf.render import distortion, sample_weights

    s, sigma, _ = random_samples([6, 0, 9, 1], seed=4)
    sigma.requires_grad_()
    w = sample_weights(sigma, s, 4)
    opacity = torch.zeros(4).index_add_(0, s.ray, w.detach())
    torch.testing.assert_close(opacity, composite(sigma.detach(), torch.zeros(len(s), 3), s, 4)[1])
    fast = distortion(w, s, 4)
    slow = 0
    for r in range(4):
        m = s.ray == r
        lt, wr, ds = torch.log(s.t[m]), w[m], (s.dt / s.t)[m]
        slow = slow + (wr[:, None] * wr[None] * (lt[:, None] - lt[None]).abs()).sum() + (wr * wr * ds).sum() / 3
    slow = slow / 4
    assert float(slow) > 0.01
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-7)
    g_fast, = torch.autograd.grad(fast, sigma, retain_graph=True)
    g_slow, = torch.autograd.grad(slow, sigma)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-6)
