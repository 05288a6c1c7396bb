"""Real-capture quality features of ``ingp nerf fit`` against reference formulas: appearance codes, EMA weights,
error-map sampling, scene contraction, occupancy decay; and a tiny fit with all of them, resumed."""

import json
import math

import numpy as np
import pytest
import torch

from ingp.nerf import contraction
from ingp.nerf.error_map import ErrorMap
from ingp.nerf.model import NerfModel, default_model_config, resolved_config
from ingp.nerf.occupancy import OccupancyGrid, min_step

from test_nerf_fit import ball  # noqa: F401  (the tiny red-ball scene fixture)

TINY = {"encoding": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2, "log2_hashmap_size": 12,
                     "base_resolution": 4},
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 16,
                    "n_hidden_layers": 1},
        "rgb_network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 16,
                        "n_hidden_layers": 1}}


def tiny_config(**extra):
    return resolved_config({**default_model_config(), **TINY, **extra}, 1)


# ---- appearance codes ------------------------------------------------------------------------------------------

def test_appearance_codes_change_colour_per_image_and_are_learned():
    torch.manual_seed(0)
    m = NerfModel(tiny_config(appearance={"n_dims": 4, "n_images": 2}), (0.0, 1.0), seed=3)
    assert m.rgb_net.n_input_dims == 16 + 16 + 4 and m.codes.shape == (2, 4)
    x = torch.rand(128, 3).repeat(2, 1)  # every point and direction twice: once in image 0, once in image 1
    d = torch.nn.functional.normalize(torch.randn(128, 3), dim=1).repeat(2, 1)
    image = torch.arange(256) // 128
    target = torch.where(image[:, None] == 0, torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.9]))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):  # the same points and directions must look red in image 0 and blue in image 1
        loss = (m(x, d, image)[1] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rgb0, rgb1 = m(x, d, torch.zeros(256, dtype=torch.long))[1], m(x, d, torch.ones(256, dtype=torch.long))[1]
    assert float((rgb0 - target[0]).abs().max()) < 0.1 and float((rgb1 - target[-1]).abs().max()) < 0.1
    assert float((m.codes[0] - m.codes[1]).detach().norm()) > 0.1  # the codes (not only the MLP) moved apart
    # views that are not training images use the mean code, set by load_weights
    m.load_weights({k: v.detach().clone() for k, v in m.weights().items()})
    assert torch.allclose(m.render_code, m.codes.mean(0))
    with torch.no_grad():
        manual = m.rgb_net(torch.cat([m._features(x), m.dir_encoding((d + 1) / 2), m.codes.mean(0).expand(256, 4)], 1))
        assert torch.allclose(m(x, d)[1], torch.sigmoid(manual), atol=1e-6)


def test_load_weights_prefers_ema_unless_asked():
    m = NerfModel(tiny_config(), (0.0, 1.0))
    w = {k: torch.zeros_like(v) for k, v in m.weights().items()}
    ema = {"ema_" + k: torch.ones_like(v) for k, v in m.weights().items()}
    m.load_weights({**w, **ema})
    assert bool((m.rgb_net.params == 1).all())
    m.load_weights({**w, **ema}, averaged=False)
    assert bool((m.rgb_net.params == 0).all())


# ---- EMA ---------------------------------------------------------------------------------------------------------

def test_ema_weights_follow_the_debiased_formula(ball):  # noqa: F811
    from ingp.nerf.fit import Trainer, load_splits, resolve_training, with_training_options

    scene, _ = load_splits(ball)
    t = resolve_training({"target_samples": 2048, "initial_rays": 256, "cone_angle": 0.0, "grid_resolution": 16,
                          "ema_decay": 0.9, "appearance_dims": 2, "error_map": False, "contraction": "none"}, 1,
                         torch.device("cpu"))
    config = resolved_config(with_training_options({**default_model_config(), **TINY}, t, len(scene)), 1)
    assert config["optimizer"]["otype"] == "EMA" and config["optimizer"]["nested"]["otype"] == "ExponentialDecay"
    trainer = Trainer(scene, config, t, 0, torch.device("cpu"))
    assert trainer.averaged() == {}  # nothing averaged before the first step
    history = []
    for step in range(6):
        trainer.step(step)
        history.append({k: v.detach().clone() for k, v in trainer.model.weights().items()})
    d, n = 0.9, len(history)
    for name in ("rgb_params", "appearance_codes", "density_params"):
        reference = sum((1 - d) * d ** (n - 1 - i) * h[name] for i, h in enumerate(history)) / (1 - d ** n)
        got = trainer.averaged()["ema_" + name]
        assert torch.allclose(got, reference, atol=1e-6), name
        assert not torch.equal(got, history[-1][name])
    # the final evaluation renders with the averaged weights and their mean code; training weights come back after
    with trainer.render_model() as model:
        assert torch.allclose(model.rgb_net.params, trainer.averaged()["ema_rgb_params"])
        assert torch.allclose(model.render_code, trainer.averaged()["ema_appearance_codes"].mean(0))
    assert torch.equal(trainer.model.rgb_net.params, history[-1]["rgb_params"])


# ---- error map ---------------------------------------------------------------------------------------------------

def test_error_map_probabilities_weights_and_tiles():
    em = ErrorMap(2, 5, 7, "cpu", uniform=0.2, tile=3)  # tiles of uneven size: 2 rows x 2 cols
    assert (em.rows, em.cols) == (2, 2) and em.row_edges.tolist() == [0, 2, 5] and em.col_edges.tolist() == [0, 3, 7]
    em.errors = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
    p = em.probabilities()
    expected = 0.8 * torch.tensor([1, 0, 2, 0, 0, 0, 0, 5.0]) / 8 + 0.2 / 8
    assert torch.allclose(p, expected)
    # the importance weight makes every pixel's expected contribution the uniform one: sum p(tile) w = 1 over tiles
    sizes = torch.tensor([6, 8, 9, 12.0]).repeat(2)
    assert torch.allclose(em.tile_size.repeat(2), sizes)
    torch.manual_seed(0)
    img, v, u, w = em.sample(200_000)
    tile = img * 4 + em.tile_of(v, u)
    assert bool(((v >= 0) & (v < 5) & (u >= 0) & (u < 7)).all())
    assert torch.allclose(w, sizes[tile] / (70 * p[tile]))
    counts = torch.bincount(tile, minlength=8).double()
    chi2 = float(((counts - 200_000 * p.double()) ** 2 / (200_000 * p.double())).sum())
    assert chi2 < 24.3  # 7 degrees of freedom, p = 0.001
    # inside a tile every pixel is equally likely
    in_tile = tile == 7
    pix = torch.bincount((v[in_tile] - 2) * 4 + (u[in_tile] - 3), minlength=12).double()
    assert float(((pix - pix.mean()) ** 2 / pix.mean()).sum()) < 31.3  # 11 dof, p = 0.001
    # unbiased: the weighted mean of a per-pixel function equals its plain mean over all pixels
    f = torch.rand(2, 5, 7, generator=torch.Generator().manual_seed(1))
    assert float((w * f[img, v, u]).mean()) == pytest.approx(float(f.mean()), rel=0.01)


def test_error_map_concentrates_on_high_error_pixels():
    em = ErrorMap(3, 32, 32, "cpu", uniform=0.1, momentum=0.5, tile=8)
    torch.manual_seed(0)
    for _ in range(30):  # image 1's top-left tile is wrong, everything else right
        img, v, u, _ = em.sample(4096)
        error = ((img == 1) & (v < 8) & (u < 8)).float()
        em.update(img, v, u, error)
    img, v, u, _ = em.sample(10_000)
    hot = float(((img == 1) & (v < 8) & (u < 8)).float().mean())
    assert hot > 0.85  # 1 of 48 tiles (2 %) drawn uniformly; 90 % + 10 %/48 expected once the map has settled
    assert float(em.errors[1, 0]) > 0.99 and float(em.errors[0].max()) < 1e-3


# ---- contraction -------------------------------------------------------------------------------------------------

def contract_reference(y: np.ndarray, order) -> np.ndarray:
    out = []
    for p in y:
        r = np.linalg.norm(p, ord=order)
        out.append(p if r <= 1 else (2 - 1 / r) * p / r)
    return np.array(out)


@pytest.mark.parametrize("norm,order", [("linf", np.inf), ("l2", 2)])
def test_contraction_values_gradients_and_inverse(norm, order):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(500, 3, generator=g, dtype=torch.float64) * torch.exp(torch.randn(500, 1, generator=g) * 1.5)
    c = contraction.contract(y, norm)
    assert np.allclose(c.numpy(), contract_reference(y.numpy(), order), atol=1e-12)
    assert float(contraction._norm(c, norm).max()) < 2
    assert torch.allclose(contraction.uncontract(c, norm), y, rtol=1e-9, atol=1e-9)
    # gradients: autograd against central differences, points away from the |y| = 1 seam
    r = contraction._norm(y, norm).squeeze(1)
    pts = y[(r - 1).abs() > 1e-3][:40].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: contraction.contract(p, norm), (pts,))
    # continuous across the seam; the unit cube maps to u in [1/4, 3/4] and everything into [0, 1]
    seam = torch.tensor([[1.0, 0.3, -0.2]], dtype=torch.float64)
    seam = seam / contraction._norm(seam, norm)  # |seam| = 1
    assert torch.allclose(contraction.contract(seam * (1 + 1e-9), norm), seam, atol=1e-8)
    u = contraction.encode_position(torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.5, 0.5], [1e6, -1e6, 0.5]]), norm)
    s = 0.25 if norm == "linf" else 0.25 * (2 ** 0.5 - 0.5)  # y = (-1, 0, 1): on the cube, outside the ball
    corner = [0.5 - s, 0.5, 0.5 + s]
    assert torch.allclose(u[:2], torch.tensor([corner, [0.5, 0.5, 0.5]]))
    assert bool(((u >= 0) & (u <= 1)).all()) and float(contraction._norm(4 * u[2:] - 2, norm)) > 1.999


def test_contraction_in_the_model_and_its_grid_scale():
    cfg = resolved_config({**default_model_config(), "contraction": {"otype": "Linf"}}, 4)
    assert cfg["encoding"]["per_level_scale"] == pytest.approx((2048 * 2 / 16) ** (1 / 7))
    m = NerfModel(cfg, (-1.5, 2.5))
    x = torch.tensor([[0.1, 0.2, 0.9], [2.4, -1.4, 0.5]])
    u = contraction.encode_position(x, "linf")
    assert torch.allclose(m._features(x), m.density_net(u).float())
    from ingp.errors import ConfigError

    with pytest.raises(ConfigError, match="contraction otype"):
        resolved_config({**default_model_config(), "contraction": {"otype": "sphere"}}, 4)


# ---- occupancy ---------------------------------------------------------------------------------------------------

def test_occupancy_decay_and_threshold_options_match_the_reference_update():
    grid = OccupancyGrid(2, "cpu", resolution=4)
    g = torch.Generator().manual_seed(0)
    before = torch.rand(grid.K, 64, generator=g) * 0.02
    grid.density = before.clone()
    torch.manual_seed(1)
    sigma = 3.0
    grid.update(lambda x: torch.full((len(x),), sigma), 40, 0, decay=0.8, threshold=0.004)
    torch.manual_seed(1)
    idx = torch.randint(0, grid.n_cells, (40,))  # the cells the update drew (same random stream)
    ref = (before * 0.8).reshape(-1)
    k = idx // 64
    new = sigma * min_step(4) * 2.0 ** k.double()
    for i, v in zip(idx.tolist(), new.tolist()):
        ref[i] = max(float(ref[i]), v)
    ref = ref.reshape(grid.K, 64)
    assert torch.allclose(grid.density, ref.float(), atol=1e-7)
    assert torch.equal(grid.bitfield, ref > min(0.004, float(ref.mean())))
    # without the mean cap the threshold alone decides (a mean below 0.004 would otherwise lower it)
    grid.density = torch.rand(grid.K, 64, generator=g) * 0.0015
    grid.density[0, :3] = 0.003
    grid.update(lambda x: torch.zeros(len(x)), 0, 0, decay=1.0, threshold=0.002)
    assert torch.equal(grid.bitfield, grid.density > float(grid.density.mean()))  # the mean (< 0.002) decides
    assert int(grid.bitfield.sum()) > 30
    grid.update(lambda x: torch.zeros(len(x)), 0, 0, decay=1.0, threshold=0.002, below_mean=False)
    assert grid.bitfield[0, :3].all() and int(grid.bitfield.sum()) == 3


# ---- a tiny fit with everything on -------------------------------------------------------------------------------

def test_fit_with_all_features_and_resume(ball, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from ingp.cli import main

    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    args = ["nerf", "fit", str(ball), "--batch-samples", "4096", "--grid-resolution", "32", "--quiet",
            "--device", "cpu", "--config", str(tmp_path / "tiny.json"), "--n-views", "1", "--appearance-dims", "4",
            "--ema", "0.9", "--error-map", "--contraction", "linf", "--occupancy-decay", "0.9",
            "--occupancy-threshold", "0.02", "--distortion-loss", "0.001"]
    a = tmp_path / "a"
    assert main(args + ["--out", str(a), "--steps", "30"]) == 0
    m = json.loads((a / "metrics.json").read_text())
    assert m["loss"] < 0.75 * m["first_loss"] and math.isfinite(m["psnr"])
    config = json.loads((a / "config.json").read_text())
    assert config["model"]["appearance"] == {"n_dims": 4, "n_images": 12}
    assert config["model"]["contraction"] == {"otype": "linf"} and config["model"]["optimizer"]["decay"] == 0.9
    assert config["training"]["error_map"] is True and config["training"]["occupancy_decay"] == 0.9
    assert config["training"]["distortion"] == 0.001
    w = load_file(str(a / "model.safetensors"))
    assert {"ema_density_params", "ema_rgb_params", "ema_appearance_codes", "appearance_codes"} <= set(w)
    errors = torch.load(a / "checkpoint.pt", weights_only=True)["error_map"]["errors"]
    assert float(errors.min()) < 0.5  # updated from the initial 1
    # a resume that takes no step writes back exactly what it loaded: EMA, codes, grid, error map
    assert main(args + ["--out", str(a), "--steps", "30", "--resume"]) == 0
    w2 = load_file(str(a / "model.safetensors"))
    assert set(w2) == set(w) and all(torch.equal(w[k], w2[k]) for k in w)
    assert torch.equal(torch.load(a / "checkpoint.pt", weights_only=True)["error_map"]["errors"], errors)
    assert main(args + ["--out", str(a), "--steps", "32", "--resume"]) == 0  # and it trains on from there
    w3 = load_file(str(a / "model.safetensors"))
    assert not torch.equal(w3["ema_rgb_params"], w["ema_rgb_params"])
    assert float((w3["ema_rgb_params"] - w["ema_rgb_params"]).abs().max()) < 0.05  # the average moves slowly
    # what eval renders with: the EMA weights and the mean of their codes
    from ingp.nerf.commands import load_run

    model, _, _ = load_run(a, "cpu")
    assert torch.equal(model.rgb_net.params.detach(), w3["ema_rgb_params"])
    assert torch.allclose(model.render_code, w3["ema_appearance_codes"].mean(0))
