"""``ingp export web``: the files' layout, and a NumPy evaluator that reads only them against the PyTorch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ingp.cli import main
from ingp.web.export import export_web
from ingp.web.reference import field_eval, image_view, load_export
from web_runs import image_run, sdf_run


@pytest.fixture(scope="module")
def image_export(tmp_path_factory):
    run = image_run(tmp_path_factory.mktemp("image") / "run")
    export_web(run, run / "web")
    return run


@pytest.fixture(scope="module")
def sdf_export(tmp_path_factory):
    run = sdf_run(tmp_path_factory.mktemp("sdf") / "run")
    export_web(run, run / "web")
    return run


def test_layout(image_export):
    meta = json.loads((image_export / "web" / "model.json").read_text())
    size = (image_export / "web" / "model.bin").stat().st_size
    assert meta["format"] == "ingp-web" and meta["version"] == 1 and meta["kind"] == "image"
    assert meta["image"] == {"width": 96, "height": 64, "channels": 3, "linear": False}
    enc = meta["fields"]["field"]["encoding"]
    assert [lv["resolution"] for lv in enc["levels"]] == [4, 8, 16, 32, 64, 128]
    assert [lv["mode"] for lv in enc["levels"]] == ["dense"] * 4 + ["hash"] * 2  # 32^2 = 2^10 still fits
    assert [lv["size"] for lv in enc["levels"]] == [16, 64, 256, 1024, 1024, 1024]
    table = meta["buffers"][enc["table"]]
    assert table["dtype"] == "float16" and table["shape"] == [enc["n_entries"], 2]
    net = meta["fields"]["field"]["network"]
    shapes = [meta["buffers"][n]["shape"] for n in net["layers"]]
    assert shapes == [[32, 16], [32, 32], [16, 32]]  # (out, in) padded: 12 features -> 16, 3 outputs -> 16
    for b in meta["buffers"].values():
        assert b["offset"] % 16 == 0
        assert b["offset"] + np.prod(b["shape"]) * np.dtype(b["dtype"]).itemsize <= size
    assert meta["bin_bytes"] == size


def test_reference_image_matches_pytorch(image_export):
    from ingp.image.commands import load_run
    from ingp.image.model import render

    model, _ = load_run(image_export, "cpu")
    exported = load_export(image_export / "web")
    for view in ({}, {"zoom": 7.0, "center": (0.2, 0.7)}):
        want = render(model, 96, 64, **view)
        got = image_view(exported, 96, 64, **view)
        assert got.shape == want.shape == (64, 96, 3)
        assert np.abs(want).max() > 0.3  # not a trivially small output
        assert np.abs(got - want).max() <= 1e-3  # float16 tables
    # with the table rounded to float16 in PyTorch too, only summation order differs
    with torch.no_grad():
        n = model.network.n_params
        model.params[n:] = model.params[n:].half().float()
    assert np.abs(image_view(exported, 96, 64) - render(model, 96, 64)).max() <= 1e-5


def test_reference_sdf_matches_pytorch(sdf_export):
    from ingp.runs import RunDir
    from ingp.sdf.model import load_run_model, sdf_normals_fd, sdf_values
    from ingp.sdf.render import render_view

    model, _, _ = load_run_model(RunDir(sdf_export), torch.device("cpu"))
    exported = load_export(sdf_export / "web")
    points = torch.rand(4096, 3, generator=torch.Generator().manual_seed(0))
    want = sdf_values(model, points).numpy()
    got = field_eval(exported, "field", points.numpy())[:, 0]
    assert np.abs(got - want).max() <= 1e-3

    def ref(p: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(field_eval(exported, "field", p.numpy())[:, 0].copy())

    def ref_normals(p: torch.Tensor) -> torch.Tensor:
        offsets = torch.cat([torch.eye(3), -torch.eye(3)]) * 1e-3
        v = ref((p[:, None] + offsets).reshape(-1, 3)).reshape(-1, 6)
        return torch.nn.functional.normalize(v[:, :3] - v[:, 3:], dim=1)

    a = render_view(ref, ref_normals, 24, 24)  # a few sphere-traced pixels from the exported files alone
    with torch.no_grad():  # the same float16 table in PyTorch: normals of a barely fitted field amplify rounding
        n = model.network.n_params
        model.params[n:] = model.params[n:].half().float()
    b = render_view(lambda p: sdf_values(model, p), lambda p: sdf_normals_fd(model, p), 24, 24)
    assert 0.1 < (b < 255).any(axis=2).mean() < 0.7
    assert np.abs(a.astype(int) - b).max() <= 2


def test_float16_weights(image_export, tmp_path):
    from ingp.image.commands import load_run
    from ingp.image.model import render

    meta = export_web(image_export, tmp_path, weight_dtype="float16")
    assert {meta["buffers"][n]["dtype"] for n in meta["fields"]["field"]["network"]["layers"]} == {"float16"}
    model, _ = load_run(image_export, "cpu")
    assert np.abs(image_view(load_export(tmp_path), 48, 32) - render(model, 48, 32)).max() <= 5e-3


def test_cli_export_and_errors(image_export, tmp_path, capsys):
    assert main(["export", "web", str(image_export), "--out", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "model.json").is_file() and (tmp_path / "w" / "model.bin").is_file()
    assert "model.json" in capsys.readouterr().out

    assert main(["export", "web", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a run folder" in capsys.readouterr().err

    (tmp_path / "file").write_text("")
    assert main(["export", "web", str(image_export), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err


def test_non_grid_encoding_is_refused(tmp_path, capsys):
    from ingp.image.model import build_model
    from ingp.runs import RunDir

    config = {"encoding": {"otype": "Frequency", "n_frequencies": 4},
              "network": {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1}}
    model = build_model(config, 3, 1, torch.device("cpu"))
    run = RunDir.create(tmp_path / "run", {"primitive": "image", "model": config, "training": {"seed": 1},
                                           "image": {"width": 8, "height": 8, "channels": 3, "linear": False}})
    run.save_weights({"params": model.params.detach()})
    assert main(["export", "web", str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "grid encodings" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()


def test_mismatched_files_are_refused(image_export, tmp_path):
    from ingp.errors import InputError

    export_web(image_export, tmp_path)
    with open(tmp_path / "model.bin", "ab") as f:
        f.write(b"\0" * 16)
    with pytest.raises(InputError, match="model.bin: .* bytes, model.json says"):
        load_export(tmp_path)


def test_weights_that_do_not_fit_are_refused(tmp_path, capsys):
    from ingp.runs import RunDir
    from web_runs import SDF_MODEL

    run = RunDir.create(tmp_path / "run", {"primitive": "sdf", "model": SDF_MODEL, "training": {"seed": 1},
                                           "normalization": {"center": [0, 0, 0], "scale": 1.0}, "mesh": {}})
    run.save_weights({"params": torch.zeros(10)})
    assert main(["export", "web", str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 2
    assert "model.safetensors: does not fit" in capsys.readouterr().err
