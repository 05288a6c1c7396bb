"""How ``ingp nrc`` forms its estimate: stratified pixel / light samples over frames (R_d sequences rotated per
pixel) and the progressive image (plain mean of what the paths gathered + a k^p-weighted mean of the cache part)."""

import numpy as np
import pytest

from ingp.nrc.render import Progressive, Renderer, Settings, r_sequence
from ingp.nrc.scene import load_scene


def test_r_sequence_uses_the_generalised_golden_ratio():
    assert np.isclose(r_sequence(0, 1)[0], (0.5 + 2 / (1 + 5**0.5)) % 1)  # R1: the golden ratio
    plastic = 1.324717957244746  # R2: the plastic number, x^3 = x + 1
    assert np.allclose(r_sequence(4, 2), (0.5 + 5 * plastic ** -np.array([1.0, 2.0])) % 1)
    # low discrepancy: the largest gap between the share of 200 points below t and t, over a grid of t, per
    # coordinate; measured 0.005 for R2 (pixel jitter) and 0.035 for R3 (light samples); iid points: 0.095
    grid = np.linspace(0.01, 0.99, 99)
    for dims, bound in ((2, 0.006), (3, 0.04)):
        points = np.array([r_sequence(k, dims) for k in range(200)])
        assert max(np.abs((points < t).mean(axis=0) - t).max() for t in grid) <= bound


def test_stratified_jitter_is_uniform_per_frame_and_balanced_over_frames():
    r = Renderer(load_scene("cornell"), Settings(width=32, height=32, use_cache=False, seed=5))
    s = r.settings
    jitters = []
    for r.index in range(64):
        jitters.append((r.rotation[:, :2] + r_sequence(r.index, 2)) % 1.0)
    jitters = np.array(jitters)  # (frames, pixels, 2)
    assert np.all((jitters >= 0) & (jitters < 1))
    # one frame over the pixels: uniform (random rotation); one pixel over 64 frames: far more even than iid
    assert abs(jitters[0].mean() - 0.5) < 0.02
    per_pixel = np.abs(jitters.mean(axis=0) - 0.5).max()
    print(f"largest per-pixel deviation of the mean jitter over 64 frames: {per_pixel:.4f} (iid: ~0.12)")
    assert per_pixel < 0.04  # measured 0.031; iid jitter: ~0.12 (3.5 std of 1024 x 2 means of 64)
    orig, dirs, prim_u = r.camera_rays()
    assert orig.shape == dirs.shape == prim_u.shape == (s.width * s.height, 3)


def test_progressive_image_is_gathered_mean_plus_weighted_cache_mean():
    rng = np.random.default_rng(0)
    frames = [(rng.random((4, 5, 3)), rng.random((4, 5, 3))) for _ in range(6)]  # (gathered, cache part)
    for power in (0.0, 2.0):
        p = Progressive((4, 5, 3), power)
        for gathered, cached in frames:
            p.add(gathered + cached, cached)
        w = np.arange(1, 7, dtype=float) ** power
        expected = (np.mean([g for g, _ in frames], axis=0)
                    + sum(wk * c for wk, (_, c) in zip(w, frames)) / w.sum())
        assert np.allclose(p.image(), expected)
    plain = Progressive((4, 5, 3), 3.0)
    for gathered, _ in frames:
        plain.add(gathered)  # no cache: the plain mean whatever the power
    assert np.allclose(plain.image(), np.mean([g for g, _ in frames], axis=0))
    p.reset()
    assert p.count == 0 and np.all(p.image() == 0)


def test_power_zero_is_the_plain_mean_of_cached_frames():
    r = Renderer(load_scene("cornell"), Settings(width=16, height=16, train_fraction=0.25, batch_size=256, seed=2))
    p, total = Progressive((16, 16, 3), 0.0), np.zeros((16, 16, 3))
    for _ in range(3):
        image, _ = r.frame()
        p.add(image, r.cache_term)
        total += image
    assert np.allclose(p.image(), total / 3)


@pytest.mark.parametrize("query, light", [("first", "indirect"), ("spread", "scattered")])
def test_cli_options_select_the_settings(query, light):
    import argparse

    from ingp.nrc.cli import settings_options

    args = argparse.Namespace(query=query, cache_light=light, cache_weight_power=1.5, light_samples=3, edge_samples=4)
    assert settings_options(args) == {"query_primary": query == "first", "nee_at_query": light == "indirect",
                                      "cache_weight_power": 1.5, "light_samples": 3, "edge_samples": 4}


@pytest.mark.parametrize("power", [float("nan"), -1.0, 9.0])
def test_a_bad_cache_weight_power_is_refused_with_one_line(power):
    import argparse

    from ingp.errors import InputError
    from ingp.nrc.cli import settings_options

    args = argparse.Namespace(query="first", cache_light="indirect", cache_weight_power=power)
    with pytest.raises(InputError, match="--cache-weight-power must be in"):
        settings_options(args)


def test_frames_with_several_light_samples_use_consecutive_r3_points():
    r = Renderer(load_scene("cornell"), Settings(width=8, height=8, use_cache=False, light_samples=3, seed=4))
    r.index = 5
    _, _, prim_u = r.camera_rays()
    assert prim_u.shape == (64, 9)
    for j in range(3):  # frame 5's samples are R3 points 15, 16, 17, each rotated per pixel
        assert np.allclose(prim_u[:, 3 * j:3 * j + 3], (r.rotation[:, 2 + 3 * j:5 + 3 * j] + r_sequence(15 + j, 3)) % 1)
    image, _ = r.frame()
    assert image.shape == (8, 8, 3) and np.isfinite(image).all() and image.mean() > 0


def test_emitter_pixels_are_supersampled_without_bias():
    """The emission a pixel sees, estimated from the frame's camera ray plus ``edge_samples`` more (at emitters'
    pixels only): its mean over frames converges to the pixel's true coverage-weighted emission, faster than the
    camera ray's alone, and other pixels are left as they were."""
    from ingp.nrc.tracer import first_emission, trace_paths

    scene, w, h = load_scene("cornell"), 24, 24
    g = 64  # truth: the emission seen through a 64 x 64 grid of points in each pixel
    points = np.stack(np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g), -1).reshape(-1, 1, 2)
    rays = scene.camera.rays(w, h, jitter=np.broadcast_to(points, (g * g, w * h, 2)).reshape(-1, 2),
                             pixels=np.tile(np.arange(w * h), g * g))
    truth = first_emission(scene, *rays).reshape(g * g, w * h, 3).mean(axis=0)
    edge = (truth.max(axis=1) > 0) & (truth.max(axis=1) < 14.9)  # partly covered by the light
    assert edge.sum() >= 8
    r = Renderer(scene, Settings(width=w, height=h, use_cache=False, seed=3))
    plain, super_ = np.zeros((w * h, 3)), np.zeros((w * h, 3))
    frames = 32
    for r.index in range(frames):
        orig, dirs, _ = r.camera_rays()
        seen = first_emission(scene, orig, dirs)
        if r.index == 0:  # the tracer counts exactly this emission at a camera ray's first hit
            assert np.array_equal(trace_paths(scene, orig, dirs, 1).emitted, seen)
        estimate = seen.copy()
        r.supersample_emission(estimate, seen)
        near = r.sees_emitter.reshape(-1)  # (before dilation) pixels whose rays hit the light so far
        assert np.array_equal(estimate[~near & (truth.max(axis=1) == 0)], seen[~near & (truth.max(axis=1) == 0)])
        plain += seen / frames
        super_ += estimate / frames
    first = Renderer(scene, Settings(width=w, height=h, use_cache=False, seed=3))
    first.frame()  # its pre-pass finds every pixel the light covers in part before the first frame's rays count
    assert first.emitter_pixels().reshape(-1)[truth.max(axis=1) > 0].all()
    err_plain = np.abs(plain - truth)[edge].mean()
    err_super = np.abs(super_ - truth)[edge].mean()
    print(f"mean abs error of the emission at {edge.sum()} edge pixels after {frames} frames: camera ray "
          f"{err_plain:.3f}, + 16 rays {err_super:.3f}")
    assert err_super < err_plain / 3 and err_super < 0.1


def test_cli_defaults_match_the_settings_and_bad_edge_samples_are_refused():
    import argparse

    from ingp.errors import InputError
    from ingp.nrc import cli

    assert cli.EDGE_SAMPLES_DEFAULT == Settings().edge_samples
    args = argparse.Namespace(query="first", cache_light="indirect", cache_weight_power=2.0, edge_samples=-1)
    with pytest.raises(InputError, match="--edge-samples"):
        cli.settings_options(args)
    args.edge_samples = 10**9  # would allocate rays without bound
    with pytest.raises(InputError, match=r"--edge-samples must be in \[0, 1024\]"):
        cli.settings_options(args)


def test_cache_threads_follow_the_request_else_the_load(monkeypatch):
    from ingp.nrc import cli

    assert cli.cache_threads(3, 2) == 3
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.4, 0.0, 0.0))
    assert cli.cache_threads(None, 2) == 2
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (2.5, 0.0, 0.0))
    assert cli.cache_threads(None, 2) == 1
