"""``ingp experiment NAME --quick`` through the CLI: files written, numbers sane, user mistakes reported in one line."""

import json

import numpy as np
import pytest

from ingp.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each quick experiment once (module scope: the five take ~1 min together)."""
    base = tmp_path_factory.mktemp("experiments")
    done = {}
    for name in ("budgets", "activations", "losses", "embeddings", "grid-vs-embeddings"):
        out = base / name
        assert main(["experiment", name, "--quick", "--out", str(out)]) == 0
        done[name] = (out, json.loads((out / "results.json").read_text()))
    return done


def _common(out, name, files):
    table = (out / "table.md").read_text()
    assert table.startswith(f"# experiment `{name}`") and "| " in table and "noisy" in table
    for f in files:
        assert (out / f).stat().st_size > 500, f


def test_budgets(runs):
    out, res = runs["budgets"]
    _common(out, "budgets", ["psnr.png", "seed_3310_sgd.gif", "seed_3310_sgd.mp4"])
    by = {(r["model"], r["method"]): r for r in res["runs"]}
    assert len(by) == 15
    assert by["5 levels (seed's committed)", "seed: per-pixel SGD"]["n_params"] == 3310
    assert by["5 levels, small tables", "seed: per-pixel SGD"]["n_params"] == 1341
    assert all(r["n_params"] <= by[r["model"], "seed: per-pixel SGD"]["n_params"] for r in res["runs"])
    assert all(np.isfinite(r["psnr"]) and r["psnr"] > 8 for r in res["runs"])
    # trained our way, the seed's own grid beats its per-pixel SGD at equal (tiny) effort
    assert by["1 dense 8x8 level", "seed arch, Adam"]["psnr"] > by["1 dense 8x8 level", "seed: per-pixel SGD"]["psnr"]
    assert max(s["psnr"] for s in res["sweep"]) > 18


def test_activations(runs):
    out, res = runs["activations"]
    _common(out, "activations", ["curves.png", "leaky_relu_sgd.gif", "leaky_relu_sgd.mp4"])
    by = {(r["activation"], r["setup"]): r for r in res["runs"]}
    assert by["tanh", "seed"]["final"] > 11 and by["tanh", "seed"]["g50"] > 0
    # ReLU output + the paper's zero biases: every output pre-activation <= 0, so nothing learns
    assert by["relu", "paper init"]["out_dead"] == 1.0 and by["relu", "paper init"]["gmax"] == 0.0
    assert 0 <= by["relu", "seed"]["dead"] <= 1


def test_losses(runs):
    out, res = runs["losses"]
    _common(out, "losses", ["losses.png"])
    assert len(res["runs"]) == 10
    grid = {r["loss"]: r for r in res["runs"] if r["model"].startswith("ingp")}
    # RelativeL2 divides by the prediction: on the dark cameraman it lags far behind at the quick size (~11 dB)
    assert all(r["psnr"] > 15 for loss, r in grid.items() if loss != "RelativeL2")
    assert grid["RelativeL2"]["psnr"] > 8
    assert all(0 < r["bg_detail"] < 2 for r in res["runs"])
    assert res["background_box"][0] < res["background_box"][1]


def test_embeddings(runs):
    out, res = runs["embeddings"]
    _common(out, "embeddings", ["zoo_w64_100pct.gif", "zoo_w64_100pct.mp4", "curves_w64_100pct.png",
                                "zoo_w24_10pct.gif"])
    by = {(r["embedding"], r["activation"], r["width"], r["percent"]): r for r in res["runs"]}
    assert by["xy", "LeakyReLU", 64, 100]["n_params"] == 8707 and by["PE sin+cos", "Tanh", 64, 10]["n_params"] == 9859
    assert by["PE sin+cos", "LeakyReLU", 24, 10]["n_params"] == 1779
    # the seed's subset panels: ReLU at width 64 on 50 and 10 % of the pixels, scored on all of them
    half, tenth = by["PE sin+cos", "ReLU", 64, 50], by["PE sin+cos", "ReLU", 64, 10]
    assert half["loss"] < half["first_loss"] and tenth["loss"] < tenth["first_loss"]
    assert by["PE sin+cos", "ReLU", 64, 100]["psnr"] > tenth["psnr"]
    # the ReLU collapse (output channels stuck at 0) and LeakyReLU's fix, as in the seed
    relu, leaky = by["xy", "ReLU", 64, 100], by["xy", "LeakyReLU", 64, 100]
    assert min(relu["mean_rgb"]) < 0.02 and min(leaky["mean_rgb"]) > 0.1
    assert leaky["psnr"] > relu["psnr"] + 3
    assert leaky["loss"] < leaky["first_loss"]


def test_grid_vs_embeddings(runs):
    out, res = runs["grid-vs-embeddings"]
    _common(out, "grid-vs-embeddings", ["grid_vs_zoo_budget_w24_100pct.gif", "curves_budget_w24_100pct.png"])
    grids = [r for r in res["runs"] if r["model"].startswith("HashGrid")]
    assert grids and all(r["n_params"] <= r["budget"] for r in grids)
    assert all(r["loss"] < r["first_loss"] for r in res["runs"])


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["experiment", "budgets", "--quick", "--image", str(tmp_path / "missing.png"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.png" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["experiment", "losses", "--quick", "--image", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.png" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["experiment", "activations", "--quick", "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "nonsense"])


def test_experiment_on_a_given_image(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["experiment", "activations", "--quick", "--image", str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "table.md").exists()
