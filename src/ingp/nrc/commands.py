"""``ingp nrc render``: frames of a scene with (or without) the radiance cache, written to a run folder.

    OUT/config.json    scene, settings, cache config
    OUT/frames/*.png   the progressive image after each frame (sRGB, clipped)
    OUT/render.mp4     those frames as a video
    OUT/final.png      the last one
    OUT/metrics.json   per frame: MSE against the converged reference, seconds split into tracing / inference /
                       training, the cache's loss; and the totals

The shown image is the progressive estimate of the frames since the start (or since the last change of the scene in
the animated case, where the Cornell box light jumps from x = 0.5 to x = 0.25 halfway through): the mean of what
the paths gathered plus a weighted mean of the cache's part (``render.Progressive``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import RunDir, atomic_write, environment, resolve_device
from .render import Progressive, Renderer, Settings, mse, reference, settings_dict
from .scene import load_scene

ANIMATED_LIGHT_X = (0.5, 0.25)


def scene_states(name: str, animate: bool) -> list:
    """The scene (one state) or the animated case's two states."""
    if not animate:
        return [load_scene(name)]
    if name != "cornell":
        raise InputError(f"--animate moves the Cornell box light; scene {name!r} has no animated case (use cornell)")
    return [load_scene(name, light_x=x) for x in ANIMATED_LIGHT_X]


def render_command(scene_name: str, out: Path, *, frames: int = 30, use_cache: bool = True, animate: bool = False,
                   width: int = 256, height: int = 256, reference_spp: int = 256, position_encoding: str = "hashgrid",
                   seed: int = 1337, device: str = "cpu", quiet: bool = False, fps: float = 10.0,
                   reference_folder: Path | None = None, options: dict | None = None) -> dict:
    """Render ``frames`` frames and write the run folder ``out``; returns the metrics. ``options``: further
    :class:`Settings` fields (``query_primary``, ``nee_at_query``, ``cache_weight_power``, ...)."""
    from ..image.io import display_rgb8, write_image, write_mp4

    states = scene_states(scene_name, animate)
    dev = resolve_device(device)
    settings = Settings(width=width, height=height, use_cache=use_cache, position_encoding=position_encoding,
                        seed=seed, **(options or {}))
    renderer = Renderer(states[0], settings, device=str(dev))
    change = frames // 2 if animate else None

    def note(text):
        if not quiet:
            print(text, flush=True)

    refs = []
    for state in states:
        note(f"reference for {state.name} {state.params}: {reference_spp} spp at {width}x{height} "
             f"(computed once, then cached)")
        refs.append(reference(state, width, height, reference_spp, folder=reference_folder))
    config = {"primitive": "nrc", "scene": scene_name, "animate": animate, "frames": frames,
              "settings": settings_dict(settings), "reference_spp": reference_spp,
              "cache": renderer.cache.config if renderer.cache is not None else None}
    run = RunDir.create(out, config)
    frame_dir = run.path / "frames"
    frame_dir.mkdir(exist_ok=True)
    rows, video = [], []
    progressive = Progressive((height, width, 3), settings.cache_weight_power)
    state, elapsed = 0, 0.0
    for index in range(frames):
        if change is not None and index == change:
            state = 1
            renderer.scene = states[1]
            progressive.reset()
        t0 = time.perf_counter()
        image, split = renderer.frame()
        elapsed += time.perf_counter() - t0
        progressive.add(image, renderer.cache_term)
        count = progressive.count
        shown = progressive.image()
        ref = refs[state]
        row = {"frame": index, "seconds": elapsed, "state": state, "frames_accumulated": count,
               "mse": mse(shown, ref["image"]), "mse_frame": mse(image, ref["image"]), **split,
               "loss": renderer.cache.last_loss if renderer.cache is not None else None,
               "cache_resets": renderer.cache.resets if renderer.cache is not None else None}
        rows.append(row)
        pixels = display_rgb8(shown, linear=True)
        video.append(pixels)
        write_image(frame_dir / f"frame_{index:04d}.png", shown, linear=True)
        note(f"frame {index + 1}/{frames}: MSE {row['mse']:.3e} ({split['tracing']:.2f} s tracing, "
             f"{split['inference']:.2f} s inference, {split['training']:.2f} s training)")
    write_image(run.path / "final.png", progressive.image(), linear=True)
    even = [v[: v.shape[0] // 2 * 2, : v.shape[1] // 2 * 2] for v in video]
    atomic_write(run.path / "render.mp4", lambda tmp: write_mp4(tmp, even, fps=fps))
    times = {k: float(np.mean([r[k] for r in rows])) for k in ("tracing", "inference", "training")}
    metrics = {"primitive": "nrc", "scene": scene_name, "cache": use_cache, "animate": animate, "frames": frames,
               "width": width, "height": height, "seconds": elapsed, "mse": rows[-1]["mse"],
               "mse_minus_reference_noise": rows[-1]["mse"] - refs[-1]["noise"],
               "seconds_per_frame": times,
               "reference": [{"spp": r["spp"], "noise_mse": r["noise"], "path": r["path"]} for r in refs],
               "cache_resets": renderer.cache.resets if renderer.cache is not None else None,
               "n_params": renderer.cache.n_params if renderer.cache is not None else 0,
               "per_frame": rows, **environment(dev)}
    run.save_metrics(metrics)
    return metrics
