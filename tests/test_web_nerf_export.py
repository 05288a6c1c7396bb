"""``ingp export web`` for NeRF runs: the layout, the occupancy bits, SH, and a NumPy renderer that reads only the
exported files against ``ingp.nerf.render.render_rays`` of the same rays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ingp.cli import main
from ingp.web.camera import orbit_rays
from ingp.web.export import export_web
from ingp.web.reference import load_export
from ingp.web.reference_nerf import (encode_position, march_ray, nerf_color, nerf_features, nerf_render, occupied,
                                    sh_encode)
from web_runs import nerf_run

VIEW = {"azimuth": 30.0, "elevation": 25.0, "distance": 1.6, "fov": 50.0}
NEAR_VIEW = {"azimuth": 30.0, "elevation": 25.0, "distance": 0.9, "fov": 70.0}  # inside the box: t from 0.05


# nerf_run options: plain runs with constant and cone steps; a contracted one with appearance codes (cone steps, as
# real captures use) and an L2-contracted one
RUNS = {"cone0": {}, "cone1/64": {"cone_angle": 1 / 64},
        "linf+app": {"cone_angle": 1 / 64, "contraction": "linf", "appearance_dims": 4}, "l2": {"contraction": "l2"}}


@pytest.fixture(scope="module", params=list(RUNS))
def nerf_export(request, tmp_path_factory):
    run = nerf_run(tmp_path_factory.mktemp("nerf") / "run", **RUNS[request.param])
    export_web(run, run / "web")
    return run


def _load(run):
    from ingp.nerf.commands import load_run

    model, grid, config = load_run(run, "cpu")
    return model, grid, config


def test_layout(nerf_export):
    model, _, config = _load(nerf_export)
    meta = json.loads((nerf_export / "web" / "model.json").read_text())
    assert meta["kind"] == "nerf" and set(meta["fields"]) == {"density", "color"}
    n = meta["nerf"]
    assert n["contraction"] == model.contraction
    dims = config["model"].get("appearance", {}).get("n_dims", 0)
    assert n["appearance_code"] == model.render_code.tolist() and len(n["appearance_code"]) == dims
    if dims:  # the render code is the training codes' mean, and is not zero
        assert np.abs(n["appearance_code"]).max() > 0.02
    assert (n["aabb"], n["cascades"], n["resolution"], n["sh_degree"]) == ([-0.5, 1.5], 2, 32, 4)
    assert n["min_step"] == pytest.approx(3 ** 0.5 / 256) and n["max_step"] == pytest.approx(2 * n["min_step"])
    assert (n["max_steps"], n["near"], n["min_transmittance"]) == (1024, 0.05, 1e-2)
    assert meta["buffers"][n["bitfield"]] == {**meta["buffers"][n["bitfield"]], "dtype": "uint8", "shape": [8192]}
    density, color = meta["fields"]["density"], meta["fields"]["color"]
    assert density["n_output_dims"] == 16 and "encoding" in density and "encoding" not in color
    width = 32 if dims == 0 else 48  # 16 + 16 SH (+ D, padded to a multiple of 16)
    assert (color["n_input_dims"], color["n_output_dims"]) == (32 + dims, 3)
    assert color["network"]["input_pad_value"] == 1.0 and color["network"]["input_width"] == width
    assert [meta["buffers"][k]["shape"] for k in color["network"]["layers"]] == [[16, width], [16, 16], [16, 16]]


def test_bit_order(nerf_export):
    """Byte n // 8, bit n % 8 (LSB first) of cell n = k R^3 + (i R + j) R + l."""
    _, grid, _ = _load(nerf_export)
    exported = load_export(nerf_export / "web")
    packed = exported.arrays["occupancy.bits"]
    flat = grid.bitfield.reshape(-1).numpy()
    cells = np.flatnonzero(flat)[::97]
    assert len(cells) > 10
    for n in cells:
        assert (packed[n // 8] >> (n % 8)) & 1 == 1
    assert int(np.unpackbits(packed).sum()) == int(flat.sum())
    # a point lookup through the exported bits agrees with OccupancyGrid.occupied (both cascades)
    x = torch.rand(20000, 3, generator=torch.Generator().manual_seed(1)) * 2 - 0.5
    assert np.array_equal(occupied(exported, x.numpy()), grid.occupied(x).numpy())
    assert grid.occupied(x).float().mean() > 0.02


def test_sh_matches_encoding():
    from ingp.encodings.spherical_harmonics import SphericalHarmonicsEncoding

    v = torch.nn.functional.normalize(torch.randn(1000, 3, generator=torch.Generator().manual_seed(2)), dim=1)
    u = (v + 1) / 2
    for degree in (1, 2, 4, 8):
        want = SphericalHarmonicsEncoding(3, degree).encode(u, torch.empty(0)).numpy()
        got = sh_encode(u.numpy(), degree)
        assert np.abs(got - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    # Y_0^0 = 1 / (2 sqrt(pi)); Y_1^0 = sqrt(3 / (4 pi)) z
    assert np.allclose(sh_encode(np.array([[0.5, 0.5, 1.0]]), 2)[0], [0.2820948, 0, 0.4886025, 0], atol=1e-6)


def test_fields_match_pytorch(nerf_export):
    model, _, _ = _load(nerf_export)
    exported = load_export(nerf_export / "web")
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4096, 3, generator=gen) * 2 - 0.5
    d = torch.nn.functional.normalize(torch.randn(4096, 3, generator=gen), dim=1)
    with torch.no_grad():
        sigma, rgb = model(x, d)
        h = model._features(x)
    got_h = nerf_features(exported, x.numpy())
    # float16 grid table: 11 significant bits, so errors scale with the outputs (log-density reaches ~6 here;
    # measured 1.0e-3 on a fresh install, which a fixed 1e-3 bound failed by 0.3 %)
    bound = 2.0**-11 * max(1.0, float(h.abs().max()))
    assert np.abs(got_h - h.numpy()).max() <= bound
    assert np.abs(got_h[:, 0] - np.log(sigma.numpy())).max() <= bound
    assert sigma.max() > 20 and sigma.min() < 0.1  # the balls are dense, the space around them is not
    got_rgb = nerf_color(exported, h.numpy(), d.numpy())  # the colour network alone: float32 weights
    assert np.abs(got_rgb - rgb.numpy()).max() <= 1e-5
    assert rgb.std() > 0.05
    if model.codes is not None:  # the appearance code matters: a zero code would draw other colours
        model.render_code = torch.zeros_like(model.render_code)
        with torch.no_grad():
            print(f"rgb change with a zero code: {np.abs(model(x, d)[1].numpy() - got_rgb).max():.2f}")
            assert np.abs(model(x, d)[1].numpy() - got_rgb).max() > 0.05


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_encode_position_is_the_contraction(norm):
    """The reference's (and the shader's) formula is ``contraction.encode_position``: float32 rounding apart, on
    points inside the unit cube, in the shell and far out (|y| up to 1e4)."""
    from ingp.nerf.contraction import encode_position as torch_encode

    gen = torch.Generator().manual_seed(4)
    x = torch.cat([torch.rand(3000, 3, generator=gen) * 2 - 0.5,
                   0.5 + torch.randn(1000, 3, generator=gen) * torch.logspace(0, 4, 1000)[:, None]])
    n = {"aabb": [-0.5, 1.5], "contraction": norm}
    got, want = encode_position(n, x.numpy()), torch_encode(x, norm).numpy()
    assert np.abs(got - want).max() <= 2e-7
    assert got.min() > 0 and got.max() < 1
    box = encode_position({**n, "contraction": None}, x.numpy())
    y = 2 * x.numpy() - 1
    inside = (np.abs(y).max(axis=1) if norm == "linf" else np.linalg.norm(y, axis=1)) <= 1
    assert 0.03 < inside.mean() < 0.5
    np.testing.assert_allclose(got[inside], (y[inside] + 2) / 4, atol=1e-7)  # the unit ball of the norm: as it is
    assert np.abs(got - box).max() > 0.1


def test_render_matches_pytorch(nerf_export):
    """Colour and opacity of 32 x 32 orbit-camera rays, white background, from the exported files alone vs
    ``render_rays``: <= 1e-3 against the float32 model; <= 1e-5 against the model with its grid table rounded
    to float16 as the export stores it (then only summation order and float64 compositing differ)."""
    from ingp.nerf.render import render_rays
    from web_runs import rounded_nerf

    model, grid, config = _load(nerf_export)
    exported = load_export(nerf_export / "web")
    o, d = orbit_rays(VIEW, 32, 32)
    got, got_opacity = nerf_render(exported, o, d)
    args = (grid, torch.from_numpy(o), torch.from_numpy(d), tuple(config["data"]["aabb"]))
    kwargs = {"cone": config["training"]["cone_angle"], "background": torch.ones(3),
              "min_transmittance": exported.meta["nerf"]["min_transmittance"]}
    want, want_opacity, _ = render_rays(model, *args, **kwargs)
    assert 0.1 < (want_opacity > 0.5).float().mean() < 0.6 and want_opacity.max() > 0.99  # stopped at T < 0.01
    assert np.abs(got - want.numpy()).max() <= 1e-3
    want16, opacity16, _ = render_rays(rounded_nerf(model), *args, **kwargs)
    print(f"cone {kwargs['cone']}, contraction {model.contraction}, code dims {len(model.render_code)}: "
          f"colour max error {np.abs(got - want.numpy()).max():.1e} (float32 model), "
          f"{np.abs(got - want16.numpy()).max():.1e} (float16 table in both)")
    assert np.abs(got - want16.numpy()).max() <= 1e-5
    assert np.abs(got_opacity - opacity16.numpy()).max() <= 1e-5


def test_march_matches_pytorch(nerf_export):
    """The reference's samples (step middles in occupied cells, cone steps) are march.march's: same count per ray,
    same distances and intervals (to float32 rounding of the closed form's exp)."""
    from ingp.nerf.march import march

    _, grid, config = _load(nerf_export)
    exported = load_export(nerf_export / "web")
    o, d = orbit_rays(NEAR_VIEW, 16, 16)
    s = march(grid, torch.from_numpy(o), torch.from_numpy(d), tuple(config["data"]["aabb"]),
              cone=config["training"]["cone_angle"])
    total = 0
    for r in range(len(o)):
        t, dt = march_ray(exported, o[r], d[r])
        want = s.ray == r
        assert len(t) == int(want.sum()), r
        np.testing.assert_allclose(t, s.t[want].numpy(), rtol=1e-6)
        np.testing.assert_allclose(dt, s.dt[want].numpy(), rtol=1e-6)
        total += len(t)
    assert total > 1000
    if config["training"]["cone_angle"] > 0:  # samples from the geometric phase and from the max-step phase
        assert s.dt.min() < 0.9 * exported.meta["nerf"]["max_step"]
        assert s.dt.max() == pytest.approx(exported.meta["nerf"]["max_step"])


def test_orbit_rays_match_sdf_camera():
    """With up = y the viewer's orbit camera is ingp.sdf.render.orbit_rays."""
    from ingp.sdf.render import orbit_rays as sdf_orbit

    o, d = orbit_rays({"azimuth": 40.0, "elevation": 10.0, "distance": 2.0, "fov": 30.0, "up": "y"}, 12, 8)
    so, sd = sdf_orbit(12, 8, azimuth=40.0, elevation=10.0, distance=2.0, fov=30.0)
    assert np.abs(o - so.numpy()).max() < 1e-6 and np.abs(d - sd.numpy()).max() < 1e-6
    _, dz = orbit_rays({"elevation": 90.0 - 1e-9, "up": "z", "fov": 1.0}, 1, 1)
    assert np.allclose(dz[0], [0, 0, -1], atol=1e-6)  # looking straight down from above


def test_pose_camera_rays_are_the_training_cameras():
    """The viewer's camera for a training view (off-centre principal point, fx = fy) casts the training camera's
    pixel rays (ingp.nerf.rays.image_rays), and an orbit camera is the same with shift 0."""
    from ingp.nerf.rays import image_rays
    from ingp.web.camera import camera_rays, orbit_camera, pose_camera

    cam = orbit_camera({"azimuth": -70.0, "elevation": 15.0, "distance": 2.0, "fov": 45.0, "up": "z"})
    c2w = np.stack([cam["right"], cam["up"], cam["back"], cam["eye"]], 1)
    intrinsics = np.array([70.0, 70.0, 31.0, 26.5])
    o, d = camera_rays(pose_camera(c2w, intrinsics, 64, 48), 64, 48)
    o_ref, d_ref = image_rays(torch.tensor(c2w, dtype=torch.float32), torch.tensor(intrinsics, dtype=torch.float32),
                              torch.zeros(6), 48, 64)
    np.testing.assert_allclose(o, o_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(d, d_ref.numpy(), atol=2e-6)
    centred = pose_camera(c2w, np.array([70.0, 70.0, 32.0, 24.0]), 64, 48)
    assert np.array_equal(centred["shift"], [0.0, 0.0]) and centred["half"] == pytest.approx(24 / 70)


def test_bad_nerf_runs_are_refused(tmp_path, capsys):
    from ingp.runs import RunDir
    from web_runs import NERF_MODEL

    config = {"primitive": "nerf", "data": {"path": "none", "downscale": 1, "aabb_scale": 1, "aabb": [0.0, 1.0]},
              "model": NERF_MODEL, "training": {"cone_angle": 0.0, "grid_resolution": 16, "seed": 1}}
    run = RunDir.create(tmp_path / "run", config)
    run.save_weights({"density_params": torch.zeros(10), "rgb_params": torch.zeros(10)})
    assert main(["export", "web", str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors: does not fit" in err and err.count("\n") == 1


def test_identity_view_encoding_is_refused(tmp_path, capsys):
    from ingp.nerf.model import NerfModel
    from ingp.nerf.occupancy import OccupancyGrid
    from ingp.runs import RunDir
    from web_runs import NERF_MODEL

    model_config = {**NERF_MODEL, "dir_encoding": {"otype": "Identity"}}
    config = {"primitive": "nerf", "data": {"path": "none", "downscale": 1, "aabb_scale": 1, "aabb": [0.0, 1.0]},
              "model": model_config, "training": {"cone_angle": 0.0, "grid_resolution": 16, "seed": 1}}
    run = RunDir.create(tmp_path / "run", config)
    run.save_weights({**NerfModel(model_config, (0.0, 1.0), 1).weights(), **OccupancyGrid(1, "cpu", 16).state()})
    assert main(["export", "web", str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in ("SphericalHarmonics", "'Identity'")) and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_contracted_runs_with_codes_export(tmp_path, norm):
    """``export web`` of a run trained with --contraction and --appearance-dims (refused before the viewer drew
    them): the record names the norm and holds the render code, the colour network takes the code as inputs."""
    from ingp.nerf.commands import load_run
    from ingp.nerf.model import NerfModel
    from ingp.nerf.occupancy import OccupancyGrid
    from ingp.runs import RunDir
    from web_runs import NERF_MODEL

    model_config = {**NERF_MODEL, "appearance": {"n_dims": 3, "n_images": 5}, "contraction": {"otype": norm}}
    config = {"primitive": "nerf", "data": {"path": "none", "downscale": 1, "aabb_scale": 1, "aabb": [0.0, 1.0]},
              "model": model_config, "training": {"cone_angle": 0.0, "grid_resolution": 16, "seed": 1}}
    run = RunDir.create(tmp_path / "run", config)
    weights = NerfModel(model_config, (0.0, 1.0), 1).weights()
    weights["appearance_codes"] = torch.randn(5, 3, generator=torch.Generator().manual_seed(5))
    run.save_weights({**weights, **OccupancyGrid(1, "cpu", 16).state()})
    assert main(["export", "web", str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 0
    meta = json.loads((tmp_path / "w" / "model.json").read_text())
    assert meta["nerf"]["contraction"] == norm.lower()
    code = load_run(tmp_path / "run", "cpu")[0].render_code
    assert meta["nerf"]["appearance_code"] == code.tolist()
    np.testing.assert_allclose(code, weights["appearance_codes"].mean(0), atol=1e-7)
    assert meta["fields"]["color"]["n_input_dims"] == 16 + 16 + 3
