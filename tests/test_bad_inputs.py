"""A corpus of bad inputs over every command, run through ``ingp.cli.main`` in-process.

Each case builds its inputs (corrupt or truncated files of every format, absurd sizes and flags, foreign or damaged
run folders, outputs pointed at inputs) beside a shared world of tiny real runs and data, runs the command and
checks: exit status 2, one ``ingp: error:`` line and no traceback, the message names the file or option, every file
that existed before is unchanged, and no temporary file is left. Memory checks see a fixed 8 GiB of available
memory, so the absurd sizes are refused the same way on every machine.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import math
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from kill_runs import ball_scene, tiny_image
from ingp.cli import main

GIB = 1 << 30
TINY_GRID = ["--n-levels", "2", "--log2-hashmap-size", "8", "--batch-size", "256"]
SDF_CONFIG = {"encoding": {"otype": "HashGrid", "n_levels": 2, "n_features_per_level": 2, "log2_hashmap_size": 8,
                           "base_resolution": 4},
              "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                          "n_neurons": 16, "n_hidden_layers": 1},
              "sampling": {"batch_size": 256, "pool_size": 1024, "surface_pool_size": 1024}}
CPU = ["--device", "cpu"]


# --- the world: tiny real runs and data, built once --------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("world")
    image = tiny_image(root / "tiny.png")
    np.save(root / "tiny.npy", np.asarray(Image.open(image)))
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(root / "one.png")
    assert main(["image", "fit", str(image), "--out", str(root / "img_run"), "--steps", "2", "--quiet", *CPU,
                 *TINY_GRID]) == 0
    assert main(["image", "fit", str(root / "one.png"), "--out", str(root / "one_run"), "--steps", "1", "--quiet",
                 *CPU, *TINY_GRID]) == 0
    import trimesh

    trimesh.creation.box(extents=(1, 1, 1)).export(root / "box.obj")
    trimesh.creation.box(extents=(1, 1, 1)).export(root / "box.ply")
    (root / "sdf.json").write_text(json.dumps(SDF_CONFIG))
    assert main(["sdf", "fit", str(root / "box.obj"), "--out", str(root / "sdf_run"), "--steps", "2", "--quiet",
                 *CPU, "--config", str(root / "sdf.json"), "--eval-resolution", "8", "--eval-points", "1000"]) == 0
    scene = ball_scene(root / "ball", size=8, focal=10.0)
    assert main(["nerf", "fit", str(scene), "--out", str(root / "nerf_run"), "--steps", "2", "--quiet", *CPU,
                 "--batch-samples", "512", "--grid-resolution", "8", "--config", str(scene / "small.json"),
                 "--n-views", "1"]) == 0
    return root


def snapshot(*folders: Path) -> dict[Path, str]:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if ".tmp-" in p.name]


# --- bad files ----------------------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int = 2**31 - 1, height: int = 2**31 - 1) -> Path:
    """A valid PNG header declaring width x height RGBA pixels and a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                     png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""))
    return path


def truncated(source: Path, path: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * fraction))])
    return path


def garbage(path: Path, size: int = 300) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def nested_json(depth: int = 100000) -> str:
    return "[" * depth + "]" * depth


def copy_run(world: Path, name: str, dest: Path) -> Path:
    shutil.copytree(world / name, dest)
    return dest


def edit_config(run: Path, change: Callable[[dict], object]) -> Path:
    config = json.loads((run / "config.json").read_text())
    result = change(config)
    (run / "config.json").write_text(json.dumps(config if result is None else result))
    return run


# --- the cases ----------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """``make(world, tmp)`` -> (argv, words): the command and what its message must name (any one of them)."""

    name: str
    make: Callable[[Path, Path], tuple[list[str], list[str]]]
    code: int = 2
    patches: dict = field(default_factory=dict)


CASES: list[Case] = []


def case(name: str, code: int = 2):
    def register(make):
        CASES.append(Case(name, make, code))
        return make
    return register


def image_fit(data, out, *extra, grid=TINY_GRID):
    return ["image", "fit", str(data), "--out", str(out), "--steps", "2", "--quiet", *CPU, *grid, *extra]


def demo(out, *extra):
    return ["demo", "--out", str(out), "--steps", "1", "--batch-size", "256", "--quiet", *CPU, *extra]


# image fit: corrupt and truncated inputs of every format
for kind in ("png", "jpg", "exr", "npy", "webp", "tif"):
    @case(f"image-fit-garbage-{kind}")
    def _(w, t, kind=kind):
        bad = garbage(t / f"bad.{kind}")
        return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-truncated-png")
def _(w, t):
    bad = truncated(w / "tiny.png", t / "cut.png")
    return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-truncated-jpeg")
def _(w, t):
    Image.open(w / "tiny.png").save(t / "full.jpg")
    bad = truncated(t / "full.jpg", t / "cut.jpg", 0.3)
    return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-truncated-16bit-png")
def _(w, t):
    import png

    full = t / "16.png"
    with open(full, "wb") as f:
        png.Writer(40, 30, greyscale=True, bitdepth=16).write(f, np.arange(1200, dtype=np.uint16).reshape(30, 40))
    bad = truncated(full, t / "cut16.png", 0.6)
    return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-truncated-npy")
def _(w, t):
    bad = truncated(w / "tiny.npy", t / "cut.npy", 0.5)
    return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-truncated-exr")
def _(w, t):
    from ingp.image.io import write_image

    write_image(t / "full.exr", np.random.default_rng(0).random((20, 20, 3), dtype=np.float32), linear=True)
    bad = truncated(t / "full.exr", t / "cut.exr", 0.6)
    return image_fit(bad, t / "out"), [str(bad)]


@case("image-fit-empty-file")
def _(w, t):
    (t / "empty.png").write_bytes(b"")
    return image_fit(t / "empty.png", t / "out"), ["empty.png"]


@case("image-fit-npy-pickled-objects")
def _(w, t):
    np.save(t / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return image_fit(t / "obj.npy", t / "out"), ["obj.npy"]


@case("image-fit-npy-5d")
def _(w, t):
    np.save(t / "five.npy", np.zeros((2, 2, 2, 2, 2), np.uint8))
    return image_fit(t / "five.npy", t / "out"), ["five.npy"]


@case("image-fit-npy-nan")
def _(w, t):
    a = np.zeros((8, 8, 3), np.float32)
    a[3, 3, 1] = np.nan
    np.save(t / "nan.npy", a)
    return image_fit(t / "nan.npy", t / "out"), ["nan.npy"]


@case("image-fit-npy-huge-header")
def _(w, t):
    """A .npy header declaring 10^7 x 10^7 RGB float64 (converted to float32 in memory: 1.2 PB)."""
    path = t / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (10**7, 10**7, 3)})
        f.write(b"\0" * 64)
    return image_fit(path, t / "out"), ["huge.npy"]


@case("image-fit-png-bomb-header")
def _(w, t):
    bomb = png_bomb(t / "bomb.png")
    return image_fit(bomb, t / "out"), ["bomb.png"]


@case("image-fit-png-bomb-16bit")
def _(w, t):
    ihdr = struct.pack(">IIBBBBB", 10**6, 10**6, 16, 2, 0, 0, 0)
    (t / "bomb16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                                   png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b""))
    return image_fit(t / "bomb16.png", t / "out"), ["bomb16.png"]


@case("image-fit-folder-as-image")
def _(w, t):
    (t / "dir.png").mkdir()
    return image_fit(t / "dir.png", t / "out"), ["dir.png"]


# image fit: absurd flags and configs
@case("image-fit-batch-huge")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--batch-size", str(10**12)), ["--batch-size"]


@case("image-fit-table-huge")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--log2-hashmap-size", "30", "--n-levels", "64",
                     "--n-features-per-level", "8", "--finest-resolution", "1e6", grid=()), ["log2_hashmap_size"]


@case("image-fit-log2-40")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--log2-hashmap-size", "40"), ["log2_hashmap_size",
                                                                                "--log2-hashmap-size"]


@case("image-fit-seed-negative")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--seed", "-1"), ["--seed"]


@case("image-fit-seed-huge")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--seed", str(10**30)), ["--seed"]


@case("image-fit-lr-nan")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--lr", "nan"), ["--lr"]


@case("image-fit-finest-inf")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--finest-resolution", "inf"), ["--finest-resolution"]


@case("image-fit-tiles-zero")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--tiles", "0x3"), ["--tiles"]


@case("image-fit-tile-overlap-negative")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--tiles", "2x1", "--tile-overlap", "-5"), ["--tile-overlap"]


def config_case(name: str, section: dict, words: list[str]):
    @case(f"image-fit-config-{name}")
    def _(w, t):
        (t / "c.json").write_text(json.dumps(section, allow_nan=True))
        return image_fit(w / "tiny.png", t / "out", "--config", str(t / "c.json"), grid=()), \
            [str(t / "c.json"), *words]


config_case("log2-40", {"encoding": {"otype": "HashGrid", "log2_hashmap_size": 40}}, ["log2_hashmap_size"])
config_case("levels-0", {"encoding": {"otype": "HashGrid", "n_levels": 0}}, ["n_levels"])
config_case("lr-nan", {"optimizer": {"otype": "Adam", "learning_rate": float("nan")}}, ["learning_rate"])
config_case("lr-negative", {"optimizer": {"otype": "Adam", "learning_rate": -1.0}}, ["learning_rate"])
config_case("neurons-huge", {"network": {"otype": "FullyFusedMLP", "n_neurons": 10**30}}, ["n_neurons"])
config_case("neurons-float", {"network": {"otype": "FullyFusedMLP", "n_neurons": 64.5}}, ["n_neurons"])
config_case("layers-negative", {"network": {"otype": "FullyFusedMLP", "n_hidden_layers": -2}}, ["n_hidden_layers"])
config_case("scale-negative", {"encoding": {"otype": "HashGrid", "per_level_scale": -2}}, ["per_level_scale"])
config_case("base-res-huge", {"encoding": {"otype": "DenseGrid", "base_resolution": 10**6, "n_levels": 2}},
            ["base_resolution", "n_levels"])
config_case("section-not-object", {"encoding": [1, 2, 3]}, ["encoding"])


@case("image-fit-config-nested")
def _(w, t):
    (t / "deep.json").write_text(nested_json())
    return image_fit(w / "tiny.png", t / "out", "--config", str(t / "deep.json"), grid=()), ["deep.json"]


@case("image-fit-config-malformed")
def _(w, t):
    (t / "bad.json").write_text('{"encoding": {"otype": "HashGrid",, }')
    return image_fit(w / "tiny.png", t / "out", "--config", str(t / "bad.json"), grid=()), ["bad.json"]


# image fit: outputs and run folders
@case("image-fit-out-is-the-image")
def _(w, t):
    shutil.copy(w / "tiny.png", t / "x.png")
    return image_fit(t / "x.png", t / "x.png"), ["x.png", "--out"]


@case("image-fit-out-other-primitive")
def _(w, t):
    return image_fit(w / "tiny.png", w / "sdf_run"), ["sdf_run"]


@case("image-fit-out-other-primitive-config-only")
def _(w, t):
    run = copy_run(w, "sdf_run", t / "sdf")
    for name in ("checkpoint.pt", "model.safetensors", "metrics.json"):
        (run / name).unlink()
    return image_fit(w / "tiny.png", run), ["--out", str(run)]


@case("image-fit-out-existing-run")
def _(w, t):
    return image_fit(w / "tiny.png", w / "img_run"), ["img_run"]


@case("image-fit-out-inside-a-run")
def _(w, t):
    return image_fit(w / "tiny.png", w / "img_run" / "sub"), ["img_run"]


@case("image-fit-out-dataset")
def _(w, t):
    return image_fit(w / "tiny.png", w / "ball"), ["ball"]


@case("image-fit-out-inside-dataset")
def _(w, t):
    return image_fit(w / "tiny.png", w / "ball" / "train" / "run"), ["ball"]


@case("image-fit-out-not-a-run-config")
def _(w, t):
    (t / "mine").mkdir()
    (t / "mine" / "config.json").write_text('{"my": "settings"}')
    return image_fit(w / "tiny.png", t / "mine"), ["mine", "config.json"]


@case("image-fit-resume-other-primitive")
def _(w, t):
    return image_fit(w / "tiny.png", w / "sdf_run", "--resume"), ["sdf_run"]


@case("image-fit-resume-corrupt-checkpoint")
def _(w, t):
    run = copy_run(w, "img_run", t / "run")
    garbage(run / "checkpoint.pt")
    return image_fit(w / "tiny.png", run, "--resume"), ["checkpoint.pt"]


@case("image-fit-resume-checkpoint-without-step")
def _(w, t):
    run = copy_run(w, "img_run", t / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["step"]
    torch.save(state, run / "checkpoint.pt")
    return image_fit(w / "tiny.png", run, "--resume"), ["checkpoint.pt"]


@case("image-fit-resume-no-checkpoint")
def _(w, t):
    run = copy_run(w, "img_run", t / "run")
    (run / "checkpoint.pt").unlink()
    return image_fit(w / "tiny.png", run, "--resume"), ["checkpoint.pt"]


# demo
@case("demo-out-other-primitive")
def _(w, t):
    return demo(w / "sdf_run"), ["sdf_run"]


@case("demo-out-run-of-another-image")
def _(w, t):
    return demo(w / "img_run"), ["img_run"]


@case("demo-out-is-a-file")
def _(w, t):
    return demo(w / "tiny.png"), ["tiny.png"]


@case("demo-corrupt-image")
def _(w, t):
    return demo(t / "out", "--image", str(garbage(t / "g.jpg"))), ["g.jpg"]


@case("demo-batch-huge")
def _(w, t):
    return ["demo", "--out", str(t / "out"), "--steps", "1", "--batch-size", str(10**13), "--quiet", *CPU], \
        ["--batch-size"]


# image render / video / eval
def damaged_runs(primitive: str, run_name: str, render: Callable[[Path, Path], list[str]]):
    @case(f"{primitive}-no-config")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "config.json").unlink()
        return render(run, t), ["config.json", str(run)]

    @case(f"{primitive}-config-nested")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "config.json").write_text(nested_json())
        return render(run, t), ["config.json"]

    @case(f"{primitive}-config-a-list")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "config.json").write_text("[1, 2]")
        return render(run, t), ["config.json"]

    @case(f"{primitive}-config-missing-model")
    def _(w, t):
        run = edit_config(copy_run(w, run_name, t / "run"), lambda c: c.pop("model"))
        return render(run, t), ["config.json"]

    @case(f"{primitive}-config-missing-training")
    def _(w, t):
        run = edit_config(copy_run(w, run_name, t / "run"), lambda c: c.pop("training"))
        return render(run, t), ["config.json"]

    @case(f"{primitive}-config-newer-version")
    def _(w, t):
        run = edit_config(copy_run(w, run_name, t / "run"), lambda c: c.update(version=99))
        return render(run, t), ["config.json"]

    @case(f"{primitive}-corrupt-weights")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "checkpoint.pt").unlink()
        garbage(run / "model.safetensors")
        return render(run, t), ["model.safetensors"]

    @case(f"{primitive}-truncated-weights")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "checkpoint.pt").unlink()
        truncated(w / run_name / "model.safetensors", run / "model.safetensors", 0.7)
        return render(run, t), ["model.safetensors"]

    @case(f"{primitive}-weights-of-another-model")
    def _(w, t):
        run = copy_run(w, run_name, t / "run")
        (run / "checkpoint.pt").unlink()
        from safetensors.torch import save_file

        save_file({"params": torch.zeros(7)}, str(run / "model.safetensors"))
        return render(run, t), ["model.safetensors"]

    @case(f"{primitive}-run-of-another-primitive")
    def _(w, t):
        other = "img_run" if primitive != "image" else "sdf_run"
        return render(w / other, t), [other]


damaged_runs("image", "img_run", lambda run, t: ["image", "render", str(run), "--out", str(t / "r.png"), *CPU])
damaged_runs("sdf", "sdf_run", lambda run, t: ["sdf", "render", str(run), "--out", str(t / "r.png"), "--width",
                                               "8", "--height", "8", *CPU])
damaged_runs("nerf", "nerf_run", lambda run, t: ["nerf", "render", str(run), "--out", str(t / "frames"), *CPU,
                                                 "--quiet"])


@case("image-render-huge")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(t / "r.png"), "--width", "1000000", "--height",
            "1000000", *CPU], ["--width"]


@case("image-render-huge-npy")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(t / "r.npy"), "--width", "10000000", "--height",
            "10000000", *CPU], ["--width"]


@case("image-render-center-nan")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(t / "r.png"), "--center", "nan", "0.5", *CPU], \
        ["--center"]


@case("image-render-out-over-preview")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(w / "img_run" / "preview.png"), *CPU], \
        ["img_run", "--out"]


@case("image-render-out-over-training-image")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(w / "tiny.png"), *CPU], ["tiny.png"]


@case("image-render-out-inside-other-run")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(w / "sdf_run" / "r.png"), *CPU], ["sdf_run"]


@case("image-render-bad-suffix")
def _(w, t):
    return ["image", "render", str(w / "img_run"), "--out", str(t / "r.txt"), *CPU], ["r.txt"]


@case("image-video-huge")
def _(w, t):
    return ["image", "video", str(w / "img_run"), "--out", str(t / "v.gif"), "--width", "100000", "--height",
            "100000", "--frames", "1000", *CPU, "--quiet"], ["--width", "--frames"]


@case("image-video-out-over-run-file")
def _(w, t):
    return ["image", "video", str(w / "img_run"), "--out", str(w / "img_run" / "progress.mp4"), "--frames", "2",
            *CPU, "--quiet"], ["img_run"]


@case("image-eval-corrupt-reference")
def _(w, t):
    return ["image", "eval", str(w / "img_run"), "--reference", str(garbage(t / "ref.png")), *CPU], ["ref.png"]


@case("image-eval-training-image-gone")
def _(w, t):
    run = edit_config(copy_run(w, "img_run", t / "run"), lambda c: c["image"].update(path=str(t / "gone.png")))
    return ["image", "eval", str(run), *CPU], ["gone.png"]


# image convert / compress / decompress
@case("image-convert-onto-itself")
def _(w, t):
    shutil.copy(w / "tiny.npy", t / "a.npy")
    return ["image", "convert", str(t / "a.npy"), str(t / "a.npy")], ["a.npy"]


@case("image-convert-same-file-other-name")
def _(w, t):
    shutil.copy(w / "tiny.npy", t / "a.npy")
    os.link(t / "a.npy", t / "b.npy")
    return ["image", "convert", str(t / "a.npy"), str(t / "b.npy")], ["b.npy"]


@case("image-convert-into-run")
def _(w, t):
    return ["image", "convert", str(w / "tiny.png"), str(w / "img_run" / "x.npy")], ["img_run"]


@case("image-convert-scale-nan")
def _(w, t):
    return ["image", "convert", str(w / "tiny.png"), str(t / "x.npy"), "--scale", "nan"], ["--scale"]


@case("image-convert-scale-big")
def _(w, t):
    return ["image", "convert", str(w / "tiny.png"), str(t / "x.npy"), "--scale", "3"], ["--scale"]


@case("image-convert-corrupt")
def _(w, t):
    return ["image", "convert", str(garbage(t / "in.png")), str(t / "x.npy")], ["in.png"]


@case("image-compress-out-run-config")
def _(w, t):
    return ["image", "compress", str(w / "tiny.png"), "--out", str(w / "img_run" / "config.json"), "--steps", "1",
            "--quiet"], ["img_run"]


@case("image-compress-out-run-weights")
def _(w, t):
    return ["image", "compress", str(w / "tiny.png"), "--out", str(w / "img_run" / "model.safetensors"),
            "--steps", "1", "--quiet"], ["img_run"]


@case("image-compress-onto-input")
def _(w, t):
    shutil.copy(w / "tiny.png", t / "a.png")
    return ["image", "compress", str(t / "a.png"), "--out", str(t / "a.png"), "--steps", "1", "--quiet"], ["a.png"]


@case("image-compress-corrupt")
def _(w, t):
    return ["image", "compress", str(garbage(t / "in.png")), "--out", str(t / "x.ingp"), "--steps", "1",
            "--quiet"], ["in.png"]


@case("image-compress-bomb")
def _(w, t):
    return ["image", "compress", str(png_bomb(t / "bomb.png")), "--out", str(t / "x.ingp"), "--steps", "1",
            "--quiet"], ["bomb.png"]


@case("image-decompress-garbage")
def _(w, t):
    return ["image", "decompress", str(garbage(t / "x.ingp")), "--out", str(t / "x.png")], ["x.ingp"]


@case("image-decompress-empty")
def _(w, t):
    (t / "e.ingp").write_bytes(b"")
    return ["image", "decompress", str(t / "e.ingp"), "--out", str(t / "x.png")], ["e.ingp"]


@case("image-decompress-truncated")
def _(w, t):
    (t / "c.ingp").write_bytes(CODED[:len(CODED) // 2])
    return ["image", "decompress", str(t / "c.ingp"), "--out", str(t / "x.png")], ["c.ingp"]


@case("image-decompress-huge-header")
def _(w, t):
    (t / "h.ingp").write_bytes(patch_codec_size(CODED))
    return ["image", "decompress", str(t / "h.ingp"), "--out", str(t / "x.png")], ["h.ingp"]


@case("image-decompress-out-into-run")
def _(w, t):
    (t / "ok.ingp").write_bytes(CODED)
    return ["image", "decompress", str(t / "ok.ingp"), "--out", str(w / "img_run" / "preview.png")], ["img_run"]


# sdf
@case("sdf-fit-garbage-obj")
def _(w, t):
    (t / "bad.obj").write_text("v 1 2\nf 1 2 3 4 5\nv nan nan nan\nf a b c\n")
    return ["sdf", "fit", str(t / "bad.obj"), "--out", str(t / "out"), "--steps", "1", *CPU], ["bad.obj"]


@case("sdf-fit-truncated-ply")
def _(w, t):
    bad = truncated(w / "box.ply", t / "cut.ply", 0.5)
    return ["sdf", "fit", str(bad), "--out", str(t / "out"), "--steps", "1", *CPU], ["cut.ply"]


@case("sdf-fit-garbage-ply")
def _(w, t):
    return ["sdf", "fit", str(garbage(t / "g.ply")), "--out", str(t / "out"), "--steps", "1", *CPU], ["g.ply"]


@case("sdf-fit-empty-obj")
def _(w, t):
    (t / "empty.obj").write_text("# nothing\n")
    return ["sdf", "fit", str(t / "empty.obj"), "--out", str(t / "out"), "--steps", "1", *CPU], ["empty.obj"]


@case("sdf-fit-out-image-run")
def _(w, t):
    return ["sdf", "fit", str(w / "box.obj"), "--out", str(w / "img_run"), "--steps", "1", *CPU], ["img_run"]


@case("sdf-fit-pool-zero")
def _(w, t):
    config = copy.deepcopy(SDF_CONFIG)
    config["sampling"]["pool_size"] = 0
    (t / "c.json").write_text(json.dumps(config))
    return ["sdf", "fit", str(w / "box.obj"), "--out", str(t / "out"), "--steps", "1", "--config",
            str(t / "c.json"), *CPU], ["pool_size"]


@case("sdf-fit-batch-huge")
def _(w, t):
    return ["sdf", "fit", str(w / "box.obj"), "--out", str(t / "out"), "--steps", "1", "--config",
            str(w / "sdf.json"), "--batch-size", str(10**12), *CPU], ["--batch-size", "batch_size"]


@case("sdf-fit-eval-resolution-huge")
def _(w, t):
    return ["sdf", "fit", str(w / "box.obj"), "--out", str(t / "out"), "--steps", "1", "--config",
            str(w / "sdf.json"), "--eval-resolution", "100000", *CPU], ["--eval-resolution"]


@case("sdf-fit-eikonal-nan")
def _(w, t):
    return ["sdf", "fit", str(w / "box.obj"), "--out", str(t / "out"), "--steps", "1", "--eikonal", "nan", *CPU], \
        ["--eikonal"]


@case("sdf-mesh-resolution-huge")
def _(w, t):
    return ["sdf", "mesh", str(w / "sdf_run"), "--out", str(t / "m.ply"), "--resolution", "100000", *CPU], \
        ["--resolution"]


@case("sdf-mesh-out-over-input-mesh")
def _(w, t):
    return ["sdf", "mesh", str(w / "sdf_run"), "--out", str(w / "box.obj"), "--resolution", "8", *CPU], \
        ["box.obj"]


@case("sdf-mesh-out-into-image-run")
def _(w, t):
    return ["sdf", "mesh", str(w / "sdf_run"), "--out", str(w / "img_run" / "m.ply"), "--resolution", "8", *CPU], \
        ["img_run"]


@case("sdf-render-huge")
def _(w, t):
    return ["sdf", "render", str(w / "sdf_run"), "--out", str(t / "r.png"), "--width", "1000000", "--height",
            "1000000", *CPU], ["--width"]


def sdf_render(w, t, *extra):
    return ["sdf", "render", str(w / "sdf_run"), "--out", str(t / "r.png"), "--width", "8", "--height", "8", *CPU,
            *extra]


for flag, value in (("--elevation", "90"), ("--azimuth", "nan"), ("--fov", "180"), ("--distance", "-1"),
                    ("--width", "0"), ("--frames", "1e9")):
    @case(f"sdf-render{flag}-{value}")
    def _(w, t, flag=flag, value=value):
        return sdf_render(w, t, flag, value), [flag]


@case("sdf-eval-corrupt-mesh")
def _(w, t):
    return ["sdf", "eval", str(w / "sdf_run"), "--mesh", str(garbage(t / "m.obj")), "--points", "100",
            "--resolution", "8", *CPU], ["m.obj"]


@case("sdf-eval-points-huge")
def _(w, t):
    return ["sdf", "eval", str(w / "sdf_run"), "--points", str(10**13), "--resolution", "8", *CPU], ["--points"]


@case("sdf-eval-resolution-huge")
def _(w, t):
    return ["sdf", "eval", str(w / "sdf_run"), "--points", "100", "--resolution", "100000", *CPU], ["--resolution"]


# nerf
def nerf_fit(data, out, *extra):
    return ["nerf", "fit", str(data), "--out", str(out), "--steps", "1", "--quiet", *CPU, "--batch-samples", "512",
            "--grid-resolution", "8", "--n-views", "1", *extra]


@case("nerf-fit-transforms-garbage")
def _(w, t):
    (t / "data").mkdir()
    return nerf_fit(garbage(t / "data" / "transforms.json"), t / "out"), ["transforms.json"]


@case("nerf-fit-transforms-nested")
def _(w, t):
    (t / "data").mkdir()
    (t / "data" / "transforms.json").write_text(nested_json())
    return nerf_fit(t / "data" / "transforms.json", t / "out"), ["transforms.json"]


@case("nerf-fit-frame-without-file-path")
def _(w, t):
    data = shutil.copytree(w / "ball", t / "ball")
    meta = json.loads((data / "transforms_train.json").read_text())
    for frame in meta["frames"]:
        del frame["file_path"]
    (data / "transforms_train.json").write_text(json.dumps(meta))
    return nerf_fit(data, t / "out"), ["transforms_train.json"]


@case("nerf-fit-corrupt-photo")
def _(w, t):
    data = shutil.copytree(w / "ball", t / "ball")
    garbage(data / "train" / "r_0.png")
    return nerf_fit(data, t / "out"), ["r_0.png"]


@case("nerf-fit-grid-resolution-odd")
def _(w, t):
    return nerf_fit(w / "ball", t / "out", "--grid-resolution", "7"), ["--grid-resolution"]


@case("nerf-fit-grid-resolution-huge")
def _(w, t):
    return nerf_fit(w / "ball", t / "out", "--grid-resolution", "100000"), ["--grid-resolution"]


@case("nerf-fit-config-log2-40")
def _(w, t):
    (t / "c.json").write_text('{"encoding": {"otype": "HashGrid", "log2_hashmap_size": 40}}')
    return nerf_fit(w / "ball", t / "out", "--config", str(t / "c.json")), ["log2_hashmap_size"]


@case("nerf-fit-out-is-the-dataset")
def _(w, t):
    return nerf_fit(w / "ball", w / "ball"), ["ball"]


@case("nerf-fit-out-in-dataset")
def _(w, t):
    return nerf_fit(w / "ball", w / "ball" / "train"), ["ball"]


@case("nerf-fit-config-nan")
def _(w, t):
    (t / "c.json").write_text('{"optimizer": {"otype": "Adam", "learning_rate": NaN}}')
    return nerf_fit(w / "ball", t / "out", "--config", str(t / "c.json")), ["c.json", "learning_rate"]


@case("nerf-render-out-over-dataset-photos")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--out", str(w / "ball" / "test"), *CPU, "--quiet"], ["ball"]


@case("nerf-render-out-into-own-run")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--out", str(w / "nerf_run"), *CPU, "--quiet"], ["nerf_run"]


@case("nerf-render-min-transmittance-one")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--out", str(t / "f"), "--min-transmittance", "1", *CPU,
            "--quiet"], ["--min-transmittance"]


@case("nerf-fit-distortion-loss-negative")
def _(w, t):
    return nerf_fit(w / "ball", t / "out", "--distortion-loss", "-0.1"), ["--distortion-loss"]


@case("nerf-render-orbit-bad-suffix")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--out", str(t / "o.txt"), "--orbit", "2", *CPU, "--quiet"], \
        ["o.txt"]


@case("nerf-render-transforms-corrupt")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--out", str(t / "f"), "--transforms",
            str(garbage(t / "tr.json")), *CPU, "--quiet"], ["tr.json"]


@case("nerf-mesh-resolution-huge")
def _(w, t):
    return ["nerf", "mesh", str(w / "nerf_run"), "--out", str(t / "m.ply"), "--resolution", "100000", *CPU], \
        ["--resolution"]


@case("nerf-mesh-out-run-config")
def _(w, t):
    return ["nerf", "mesh", str(w / "nerf_run"), "--out", str(w / "nerf_run" / "config.json"), "--resolution", "8",
            *CPU], ["nerf_run"]


@case("nerf-eval-missing-data-keys")
def _(w, t):
    run = edit_config(copy_run(w, "nerf_run", t / "run"), lambda c: c["data"].pop("aabb"))
    return ["nerf", "eval", str(run), *CPU], ["config.json"]


@case("nerf-eval-transforms-nested")
def _(w, t):
    (t / "tr.json").write_text(nested_json())
    return ["nerf", "eval", str(w / "nerf_run"), "--transforms", str(t / "tr.json"), *CPU], ["tr.json"]


# nerf camera paths and poses
@case("nerf-path-out-into-run")
def _(w, t):
    return ["nerf", "path", str(w / "nerf_run"), "--out", str(w / "nerf_run" / "path.json")], ["nerf_run"]


@case("nerf-path-over-the-transforms")
def _(w, t):
    return ["nerf", "path", str(w / "nerf_run"), "--out", str(w / "ball" / "transforms_train.json")], \
        ["transforms_train.json", "ball"]


@case("nerf-path-of-an-image-run")
def _(w, t):
    return ["nerf", "path", str(w / "img_run"), "--out", str(t / "p.json")], ["img_run"]


@case("nerf-render-camera-path-nested")
def _(w, t):
    (t / "p.json").write_text(nested_json())
    return ["nerf", "render", str(w / "nerf_run"), "--camera-path", str(t / "p.json"), "--out", str(t / "v.mp4"),
            *CPU, "--quiet"], ["p.json"]


@case("nerf-render-camera-path-garbage")
def _(w, t):
    return ["nerf", "render", str(w / "nerf_run"), "--camera-path", str(garbage(t / "p.json")), "--out",
            str(t / "v.mp4"), *CPU, "--quiet"], ["p.json"]


@case("nerf-render-camera-path-huge-size")
def _(w, t):
    assert main(["nerf", "path", str(w / "nerf_run"), "--out", str(t / "p.json"), "--seconds", "0.2", "--fps",
                 "10"]) == 0
    path_file = json.loads((t / "p.json").read_text())
    path_file.update(render_width=10**6, render_height=10**6)
    (t / "p.json").write_text(json.dumps(path_file))
    return ["nerf", "render", str(w / "nerf_run"), "--camera-path", str(t / "p.json"), "--out", str(t / "v.mp4"),
            *CPU, "--quiet"], ["p.json"]


@case("nerf-pose-out-is-the-input")
def _(w, t):
    shutil.copytree(w / "ball" / "train", t / "photos")
    return ["nerf", "pose", str(t / "photos"), "--out", str(t / "photos"), "--quiet"], ["photos"]


@case("nerf-pose-out-inside-the-input")
def _(w, t):
    shutil.copytree(w / "ball" / "train", t / "photos")
    return ["nerf", "pose", str(t / "photos"), "--out", str(t / "photos" / "data"), "--quiet"], ["photos"]


# NeLF distillation and ONNX export
@case("nerf-distill-an-image-run")
def _(w, t):
    return ["nerf", "distill", str(w / "img_run"), "--out", str(t / "nelf"), "--steps", "1", "--quiet", *CPU], \
        ["img_run"]


@case("nerf-distill-out-into-the-teacher")
def _(w, t):
    return ["nerf", "distill", str(w / "nerf_run"), "--out", str(w / "nerf_run" / "nelf"), "--steps", "1",
            "--quiet", *CPU], ["nerf_run"]


@case("nerf-distill-out-over-an-sdf-run")
def _(w, t):
    return ["nerf", "distill", str(w / "nerf_run"), "--out", str(w / "sdf_run"), "--steps", "1", "--quiet", *CPU], \
        ["sdf_run"]


@case("export-onnx-out-over-run-weights")
def _(w, t):
    return ["export", "onnx", str(w / "img_run"), "--out", str(w / "img_run" / "model.safetensors")], ["img_run"]


@case("export-onnx-damaged-run")
def _(w, t):
    run = copy_run(w, "img_run", t / "run")
    (run / "checkpoint.pt").unlink()
    garbage(run / "model.safetensors")
    return ["export", "onnx", str(run), "--out", str(t / "m.onnx")], ["model.safetensors"]


# web export / view
@case("export-web-out-into-run")
def _(w, t):
    return ["export", "web", str(w / "img_run"), "--out", str(w / "img_run")], ["img_run"]


@case("export-web-out-into-other-run")
def _(w, t):
    return ["export", "web", str(w / "img_run"), "--out", str(w / "sdf_run" / "web")], ["sdf_run"]


@case("export-web-damaged-run")
def _(w, t):
    run = edit_config(copy_run(w, "img_run", t / "run"), lambda c: c.pop("image"))
    return ["export", "web", str(run), "--out", str(t / "web")], ["config.json"]


@case("view-not-a-run")
def _(w, t):
    (t / "empty").mkdir()
    return ["view", str(t / "empty"), "--port", "0"], ["empty"]


@case("view-foreign-config")
def _(w, t):
    (t / "foreign").mkdir()
    (t / "foreign" / "config.json").write_text('{"name": "not a run"}')
    return ["view", str(t / "foreign"), "--port", "0"], ["config.json"]


# nrc, experiment, sweep
@case("nrc-render-out-over-image-run")
def _(w, t):
    return ["nrc", "render", "cornell", "--out", str(w / "img_run"), "--frames", "1", "--width", "8", "--height", "8",
            "--quiet", *CPU], ["img_run"]


@case("nrc-render-huge")
def _(w, t):
    return ["nrc", "render", "cornell", "--out", str(t / "n"), "--frames", "1", "--width", "1000000", "--height",
            "1000000", "--quiet", *CPU], ["--width"]


@case("experiment-corrupt-image")
def _(w, t):
    return ["experiment", "budgets", "--image", str(garbage(t / "e.png")), "--out", str(t / "e"), "--quick"], \
        ["e.png"]


@case("experiment-out-into-run")
def _(w, t):
    return ["experiment", "budgets", "--image", str(w / "tiny.png"), "--out", str(w / "img_run" / "exp"),
            "--quick"], ["img_run"]


@case("sweep-num-cpus-zero")
def _(w, t):
    return ["sweep", str(t / "s.json"), "--num-cpus", "0"], ["--num-cpus"]


@case("image-fit-seed-text")
def _(w, t):
    return image_fit(w / "tiny.png", t / "out", "--seed", "abc"), ["--seed"]


@case("nerf-eval-n-views-zero")
def _(w, t):
    return ["nerf", "eval", str(w / "nerf_run"), "--n-views", "0", *CPU], ["--n-views"]


@case("image-eval-reference-is-a-folder")
def _(w, t):
    return ["image", "eval", str(w / "img_run"), "--reference", str(w / "ball"), *CPU], ["ball"]


@case("view-damaged-run")
def _(w, t):
    run = edit_config(copy_run(w, "sdf_run", t / "run"), lambda c: c.pop("normalization"))
    shutil.rmtree(run / "web", ignore_errors=True)
    return ["view", str(run), "--port", "0"], ["config.json"]


@case("export-web-weights-bad-choice")
def _(w, t):
    return ["export", "web", str(w / "img_run"), "--out", str(t / "w"), "--weights", "int4"], ["--weights"]


@case("sweep-nested-json")
def _(w, t):
    (t / "s.json").write_text(nested_json())
    return ["sweep", str(t / "s.json")], ["s.json"]


@case("sweep-out-into-run")
def _(w, t):
    (t / "s.json").write_text(json.dumps({"command": "image fit", "inputs": [str(w / "tiny.png")],
                                          "args": {"steps": 1}, "out": str(w / "img_run" / "sweep")}))
    return ["sweep", str(t / "s.json")], ["img_run"]


# --- the coded file the decompress cases damage -------------------------------------------------------------------

CODED: bytes = b""


def patch_codec_size(data: bytes, side: int = 1 << 14) -> bytes:
    """The coded file with its image size set to side x side (within the format's limit) and a valid CRC."""
    from ingp.codec import bitstream

    start = len(bitstream.MAGIC) + 1
    header = bitstream.Header.unpack(data[start:start + bitstream._SIZE])
    header.width = header.height = side
    head = header.pack()
    payload = data[start + bitstream._SIZE + 4:]
    return data[:start] + head + struct.pack("<I", zlib.crc32(head + payload)) + payload


@pytest.fixture(scope="module")
def coded(world):
    global CODED
    out = world / "tiny.ingp"
    assert main(["image", "compress", str(world / "one.png"), "--out", str(out), "--steps", "1", "--quiet"]) == 0
    CODED = out.read_bytes()
    return CODED


# --- the test -----------------------------------------------------------------------------------------------------

@pytest.fixture
def eight_gib(monkeypatch):
    from ingp import limits

    monkeypatch.setattr(limits, "available_memory", lambda device=None: 8 * GIB)
    monkeypatch.setattr(limits, "free_disk", lambda path: 8 * GIB)


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
def test_bad_input(bad: Case, world, coded, eight_gib, tmp_path, capsys):
    argv, words = bad.make(world, tmp_path)
    before = snapshot(world, tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text, text
    assert code == bad.code, text
    lines = [line for line in err.splitlines() if line.startswith("ingp: error:") or ": error:" in line]
    assert len(lines) == 1, text
    assert any(word in lines[0] for word in words), f"{lines[0]!r} names none of {words}"
    after = snapshot(world, tmp_path)
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"changed or removed: {changed}"
    assert not temporaries(world, tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "a half-made run folder"


def test_corpus_size():
    assert len(CASES) >= 60


# --- run folders: the schema's versions -----------------------------------------------------------------------------

def test_new_runs_are_stamped_and_old_ones_still_load(world, tmp_path, capsys):
    from ingp.runs import FORMAT, VERSION, RunDir

    config = json.loads((world / "img_run" / "config.json").read_text())
    assert (config["format"], config["version"]) == (FORMAT, VERSION) == ("ingp-run", 1)
    def unversioned(c):
        del c["format"], c["version"]

    old = edit_config(copy_run(world, "img_run", tmp_path / "old"), unversioned)
    assert "version" not in json.loads((old / "config.json").read_text())  # as written before the key existed
    assert RunDir(old, primitive="image").config()["image"] == config["image"]
    assert main(["image", "render", str(old), "--out", str(tmp_path / "old.png"), *CPU]) == 0
    assert main(["image", "render", str(world / "img_run"), "--out", str(tmp_path / "new.png"), *CPU]) == 0
    assert (tmp_path / "old.png").read_bytes() == (tmp_path / "new.png").read_bytes()


# --- writes: modes, full disks, memory maps, clean-up ---------------------------------------------------------------

def test_weights_have_the_mode_of_the_other_files(world):
    modes = {name: (world / "img_run" / name).stat().st_mode & 0o777
             for name in ("config.json", "model.safetensors", "checkpoint.pt", "metrics.json")}
    umask = os.umask(0o022)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_a_fit_leaves_nothing(world, tmp_path, capsys, monkeypatch):
    """The first checkpoint meets a full disk: exit 2 naming the file, no temporary file, and the fresh run folder
    is removed (no half-made run)."""
    monkeypatch.setattr(torch, "save", enospc)
    out = tmp_path / "nested" / "run"
    assert main(image_fit(world / "tiny.png", out)) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "No space left on device" in err and "Traceback" not in err
    assert not out.exists() and not temporaries(tmp_path)


def test_full_disk_during_the_demo_leaves_nothing(tmp_path, capsys, monkeypatch):
    from safetensors import torch as st

    monkeypatch.setattr(st, "save_file", enospc)
    assert main(demo(tmp_path / "demo")) == 2
    assert "model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_full_disk_for_a_memory_mapped_output_is_an_error(world, tmp_path, capsys, monkeypatch):
    """convert and render to .npy reserve the file's blocks before writing through the map: no reservation, no
    file, and no SIGBUS later."""
    monkeypatch.setattr(os, "posix_fallocate", enospc)
    assert main(["image", "convert", str(world / "tiny.png"), str(tmp_path / "a.npy")]) == 2
    assert main(["image", "render", str(world / "img_run"), "--out", str(tmp_path / "b.npy"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "a.npy: cannot write (No space left on device)" in err and "b.npy" in err
    assert list(tmp_path.iterdir()) == []


def test_npy_outputs_are_reserved_not_sparse(world, tmp_path, monkeypatch):
    from ingp.runs import npy_memmap

    array = npy_memmap(tmp_path / "r.npy", np.float32, (64, 256, 4))
    assert os.stat(tmp_path / "r.npy").st_blocks * 512 >= array.nbytes  # every block allocated up front
    unsupported = OSError(errno.EOPNOTSUPP, "not supported")
    monkeypatch.setattr(os, "posix_fallocate", lambda *a: (_ for _ in ()).throw(unsupported))
    array = npy_memmap(tmp_path / "z.npy", np.uint16, (100, 30, 3))  # the fallback writes the zeros itself
    assert os.stat(tmp_path / "z.npy").st_blocks * 512 >= array.nbytes and not array.any()
    array[:] = 7
    array.flush()
    assert np.load(tmp_path / "z.npy").sum() == 7 * 100 * 30 * 3
    assert main(["image", "convert", str(world / "tiny.png"), str(tmp_path / "c.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "c.npy"), np.asarray(Image.open(world / "tiny.png")))


def test_ssim_of_tiny_images_is_defined(world, capsys):
    """1x1 (eval of a run fitted on one pixel) and 3x5 images: a number, not nan and not scikit-image's
    'win_size exceeds image extent'."""
    from ingp.image.evaluate import ssim

    assert main(["image", "eval", str(world / "one_run"), *CPU]) == 0
    metrics = json.loads((world / "one_run" / "metrics.json").read_text())
    assert math.isfinite(metrics["ssim"]) and 0 < metrics["ssim"] <= 1
    from ingp.image.commands import load_run

    with torch.no_grad():  # the model at the pixel's centre, clipped as eval clips it, per channel
        y = load_run(world / "one_run", "cpu")[0](torch.tensor([[0.5, 0.5]])).clamp(0, 1).double().numpy()[0]
    x, c1 = 200 / 255, (0.01 * 1.0) ** 2
    assert metrics["ssim"] == pytest.approx(float(np.mean((2 * x * y + c1) / (x * x + y * y + c1))), rel=1e-5)
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 5, 3)), rng.random((3, 5, 3))
    assert ssim(a, a) == pytest.approx(1.0) and 0 < ssim(a, b) < 1


# --- Ctrl-C on `ingp view` ------------------------------------------------------------------------------------------

def test_ctrl_c_on_view_is_quiet(tmp_path):
    """Clients that hang up mid-download, a reader of stdout that goes away, then SIGINT: exit 0, one line, no
    BrokenPipeError / ConnectionResetError traceback."""
    import signal
    import socket
    import subprocess
    import sys

    from web_runs import image_run

    run = image_run(tmp_path / "run", encoding={"n_levels": 16, "log2_hashmap_size": 17, "per_level_scale": 1.5})
    read, write = os.pipe()
    # a suite started in the background by a non-interactive shell inherits SIGINT ignored, and so would the
    # server: give it the default disposition, as a terminal's Ctrl-C finds it
    proc = subprocess.Popen([sys.executable, "-m", "ingp", "view", str(run), "--port", "0"], stdout=write,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(write)
    try:
        line = os.read(read, 1000).decode()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /model/model.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not close
            s.close()
        os.close(read)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err and err.strip() == "ingp: stopped serving", err


def test_ctrl_c_before_the_first_checkpoint_removes_the_new_run(world, tmp_path, capsys, monkeypatch):
    """Ctrl-C (or SIGTERM) while a fresh fit has written only its config: the folder goes; an existing folder
    that was given stays."""
    import ingp.image.fit as image_fit_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(image_fit_module, "train", interrupted)
    assert main(image_fit(world / "tiny.png", tmp_path / "run")) == 130
    assert "interrupted; the last checkpoint is kept" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    (tmp_path / "given").mkdir()
    assert main(image_fit(world / "tiny.png", tmp_path / "given")) == 130
    assert (tmp_path / "given" / "config.json").is_file()  # not ours to remove; --resume says there is no checkpoint
