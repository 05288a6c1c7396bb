"""``ingp nerf fit|eval|render|path|pose|mesh``: argument parsing only; handlers import the heavy code when they run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_device_argument, add_fit_arguments, positive_float, positive_int
from ..errors import InputError
from .options import add_quality_arguments, quality_training

DEFAULT_SECONDS = 300.0


def transmittance(text: str) -> float:
    """A transmittance cut-off in (0, 1)."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


def run_fit(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from ..train import Budget
    from .fit import check_config, fit_nerf
    from .model import default_model_config

    config = None
    if not args.resume:
        config = default_model_config()
        if args.config is not None:
            given = load_config(args.config)
            if not isinstance(given, dict):
                raise InputError(f"--config {args.config}: expected a JSON object")
            config = {**config, **{k: v for k, v in given.items() if k != "parent"}}
        try:
            check_config(config)
        except ConfigError as err:
            raise ConfigError(f"--config {args.config}: {err}" if args.config else str(err)) from None
    budget = Budget(steps=args.steps, seconds=args.seconds if args.steps or args.seconds else DEFAULT_SECONDS)
    training = {k: v for k, v in (("target_samples", args.batch_samples), ("grid_resolution", args.grid_resolution))
                if v is not None}
    training.update(quality_training(args))
    from ..web.live import view_from_args

    with view_from_args(args) as view:
        m = fit_nerf(args.data, args.out, model_config=config, budget=budget, seed=args.seed, device=args.device,
                     quiet=args.quiet, resume=args.resume, overwrite=args.force, downscale=args.downscale,
                     training=training, n_eval_views=args.n_views, view=view)
    print(f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} on {m['eval_views']} held-out views after {m['steps']} "
          f"steps in {m['seconds']:.1f} s ({m['samples_per_second']:,.0f} samples/s, {m['rays_per_second']:,.0f} "
          f"rays/s); wrote {args.out}/")
    return 0


def run_eval(args) -> int:
    from .commands import eval_command

    r = eval_command(args.run, transforms=args.transforms, n_views=args.n_views, device=args.device)
    for v in r["per_view"]:
        print(f"{v['view']}\tPSNR {v['psnr']:.2f}\tSSIM {v['ssim']:.4f}")
    print(f"mean PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f} over {r['views']} views "
          f"({r['seconds_per_view']:.2f} s per view)")
    return 0


def run_render(args) -> int:
    from .commands import render_command

    n = render_command(args.run, args.out, transforms=args.transforms, depth=args.depth, orbit=args.orbit,
                       camera_path=args.camera_path, spiral=args.spiral, along_capture=args.along_capture,
                       fps=args.fps, min_transmittance=args.min_transmittance, device=args.device,
                       quiet=args.quiet)
    print(f"wrote {n} frames to {args.out}")
    return 0


def run_path(args) -> int:
    from .commands import path_command

    n = path_command(args.run, args.out, kind=args.kind, seconds=args.seconds, fps=args.fps,
                     transforms=args.transforms)
    print(f"wrote {args.out} ({n} keyframes, {args.seconds:g} s at {args.fps:g} fps; edit the keyframes, then "
          f"ingp nerf render {args.run} --camera-path {args.out} --out video.mp4)")
    return 0


def run_pose(args) -> int:
    from .pose import pose_command, report

    summary = pose_command(args.input, args.out, mapper=args.mapper, frames=args.frames,
                           max_image_size=args.max_image_size, threads=args.threads, quiet=args.quiet)
    print(report(summary, args.out))
    return 0


def run_mesh(args) -> int:
    from .commands import mesh_command

    nv, nf = mesh_command(args.run, args.out, resolution=args.resolution, threshold=args.threshold,
                          device=args.device)
    print(f"wrote {args.out} ({nv:,} vertices, {nf:,} faces)")
    return 0


def register(commands) -> None:
    nerf = commands.add_parser("nerf", help="neural radiance fields from posed photos",
                               description="NeRF with a hash grid, occupancy grid and packed ray marching.")
    verbs = nerf.add_subparsers(dest="verb", required=True, metavar="VERB")

    fit = verbs.add_parser("fit", help="train on a transforms JSON (NeRF-synthetic, instant-ngp, nerfstudio)",
                           description="Train on DATA (a folder with transforms_train.json / transforms.json, or the "
                                       "JSON). Writes config.json, model.safetensors (weights + occupancy grid), "
                                       "checkpoint.pt, metrics.json and eval/ renders of the held-out views.")
    fit.add_argument("data", type=Path, help="dataset folder or transforms JSON")
    add_fit_arguments(fit, default_seconds=DEFAULT_SECONDS)
    fit.add_argument("--downscale", type=positive_int, default=1, help="shrink images by this factor (default 1)")
    fit.add_argument("--batch-samples", type=positive_int,
                     help="samples per step the ray count adapts to (default: 2^18 on CUDA, 2^16 elsewhere)")
    fit.add_argument("--grid-resolution", type=positive_int,
                     help="occupancy grid cells per axis per cascade (default 128, the paper's)")
    fit.add_argument("--n-views", type=positive_int, default=20,
                     help="held-out views evaluated at the end, evenly spread (default 20)")
    add_quality_arguments(fit)
    fit.set_defaults(handler=run_fit)

    ev = verbs.add_parser("eval", help="PSNR / SSIM on held-out views (white background, sRGB)")
    ev.add_argument("run", type=Path, help="run folder")
    ev.add_argument("--transforms", type=Path, help="transforms JSON (default: the run's test split)")
    ev.add_argument("--n-views", type=positive_int, help="evenly spread subset of views (default: all)")
    add_device_argument(ev)
    ev.set_defaults(handler=run_eval)

    render = verbs.add_parser("render", help="render the frames of a transforms file, or an orbit video")
    render.add_argument("run", type=Path, help="run folder")
    render.add_argument("--out", type=Path, required=True, help="output folder, or .mp4 / .gif with --orbit")
    render.add_argument("--transforms", type=Path, help="transforms JSON (default: the run's test split)")
    video = render.add_mutually_exclusive_group()
    video.add_argument("--orbit", type=positive_int, help="render a turntable of this many frames instead")
    video.add_argument("--camera-path", type=Path, help="render a nerfstudio camera_path.json (keyframes, fov, fps; "
                                                         "in the units of the run's transforms file) to --out")
    video.add_argument("--spiral", type=positive_int, help="render this many frames on a spiral round the capture")
    video.add_argument("--along-capture", type=positive_int,
                       help="render this many frames on a smooth path through the training cameras")
    render.add_argument("--depth", action="store_true",
                        help="also write <frame>_depth.png (videos: <out>_depth.mp4, one depth scale)")
    render.add_argument("--fps", type=positive_float, help="video frame rate (default: the camera path's, else 30)")
    render.add_argument("--min-transmittance", type=transmittance,
                        help="a ray stops once less light than this reaches it (default 0.01, instant-ngp's render "
                             "default; 1e-4 renders what `nerf eval` scores)")
    add_device_argument(render)
    render.add_argument("--quiet", action="store_true")
    render.set_defaults(handler=run_render)

    path = verbs.add_parser("path", help="write an editable nerfstudio camera_path.json for a run",
                            description="Keyframes of an orbit, a spiral or a path along the capture, in the units "
                                        "of the run's transforms file, with the path sampled at --fps.")
    path.add_argument("run", type=Path, help="run folder")
    path.add_argument("--out", type=Path, required=True, help="camera_path.json to write")
    path.add_argument("--kind", choices=("orbit", "spiral", "capture"), default="orbit", help="(default: orbit)")
    path.add_argument("--seconds", type=positive_float, default=6.0, help="duration (default 6)")
    path.add_argument("--fps", type=positive_float, default=30.0, help="frame rate (default 30)")
    path.add_argument("--transforms", type=Path, help="transforms JSON whose units and cameras to use "
                                                      "(default: the run's training data)")
    path.set_defaults(handler=run_path)

    pose = verbs.add_parser("pose", help="camera poses for your photos or video (pycolmap, CPU) -> transforms.json",
                            description="Structure from motion on a folder of photos or a video file: SIFT, "
                                        "matching (sequential for video, exhaustive for photos), mapping, one "
                                        "OPENCV camera. Writes DATA/transforms.json (instant-ngp dialect), "
                                        "DATA/images/, DATA/sparse_points.ply; train with ingp nerf fit DATA. "
                                        'Needs pycolmap: pip install "ingp[pose]".')
    pose.add_argument("input", type=Path, help="folder of photos, or a video file")
    pose.add_argument("--out", type=Path, required=True, help="dataset folder to create (must not exist)")
    pose.add_argument("--mapper", choices=("incremental", "global"), default="incremental",
                      help="COLMAP's incremental mapper or GLOMAP's global one (default: incremental)")
    pose.add_argument("--frames", type=positive_int, default=100,
                      help="video: keep the sharpest frame of each of this many windows (default 100)")
    pose.add_argument("--max-image-size", type=positive_int, default=1600,
                      help="SIFT runs on images shrunk to this longest side (default 1600)")
    pose.add_argument("--threads", type=int, default=-1, help="CPU threads (default: all)")
    pose.add_argument("--quiet", action="store_true", help="no progress bars")
    pose.set_defaults(handler=run_pose)

    mesh = verbs.add_parser("mesh", help="marching cubes on density, with vertex colours")
    mesh.add_argument("run", type=Path, help="run folder")
    mesh.add_argument("--out", type=Path, required=True, help="output .ply")
    mesh.add_argument("--resolution", type=positive_int, default=256, help="grid points per axis (default 256)")
    mesh.add_argument("--threshold", type=positive_float, default=2.5, help="density level (default 2.5)")
    add_device_argument(mesh)
    mesh.set_defaults(handler=run_mesh)

    from ..nelf.cli import add_distill_parser

    add_distill_parser(verbs)
