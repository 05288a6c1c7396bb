"""``ingp sdf fit|mesh|render|eval``: argument parsing only; each handler imports the heavy code when it runs."""

from __future__ import annotations

from pathlib import Path

from ..cli import add_device_argument, add_fit_arguments, finite_float, positive_float, positive_int
from ..errors import InputError

DEFAULT_SECONDS = 60.0


def elevation(text: str) -> float:
    """Degrees strictly between -90 and 90 (at the poles the camera's up direction is undefined)."""
    import argparse

    value = finite_float(text)
    if not -90 < value < 90:
        raise argparse.ArgumentTypeError(f"expected degrees in (-90, 90), got {text}")
    return value


def field_of_view(text: str) -> float:
    import argparse

    value = positive_float(text)
    if not value < 180:
        raise argparse.ArgumentTypeError(f"expected degrees in (0, 180), got {text}")
    return value


def non_negative_float(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else positive_float(text)


def model_config_from_args(args) -> dict:
    """Defaults <- --config file (merged per section) <- flags."""
    from ..config import load_config
    from .model import default_model_config

    config = default_model_config()
    if args.config is not None:
        given = load_config(args.config)
        if not isinstance(given, dict):
            raise InputError(f"--config {args.config}: expected a JSON object")
        config.update(given)
    if args.eikonal is not None:
        config["eikonal_weight"] = args.eikonal
    if args.batch_size is not None or args.pool_size is not None:
        sampling = dict(config.get("sampling", {}))
        if args.batch_size is not None:
            sampling["batch_size"] = args.batch_size
        if args.pool_size is not None:
            sampling["pool_size"] = args.pool_size
        config["sampling"] = sampling
    return config


def run_fit(args) -> int:
    from ..errors import ConfigError
    from ..train import Budget
    from .fit import check_model_config, fit_sdf

    model_config = None
    if not args.resume:
        try:
            model_config = model_config_from_args(args)
            check_model_config(model_config)
        except (ConfigError, InputError) as err:  # name the file the mistake came from
            raise ConfigError(f"--config {args.config}: {err}" if args.config else str(err)) from None
    budget = Budget(steps=args.steps, seconds=args.seconds if args.steps or args.seconds else DEFAULT_SECONDS)
    from ..web.live import view_from_args

    with view_from_args(args) as view:
        m = fit_sdf(args.mesh, args.out, model_config=model_config, budget=budget, seed=args.seed, device=args.device,
                    quiet=args.quiet, resume=args.resume, eval_resolution=args.eval_resolution,
                    eval_points=args.eval_points, overwrite=args.force, view=view)
    chamfer = f"{m['chamfer']:.4g}" if m["chamfer"] is not None else "n/a (no surface)"
    print(f"IoU {m['iou']:.4f}, Chamfer {chamfer} after {m['steps']} steps in {m['seconds']:.1f} s "
          f"({m['n_params']:,} parameters; ground truth {m['sampling_seconds']:.1f} s); wrote {args.out}/")
    return 0


def run_mesh(args) -> int:
    from .commands import mesh_command

    n_vertices, n_faces = mesh_command(args.run, args.out, resolution=args.resolution, device=args.device)
    print(f"wrote {args.out} ({n_vertices:,} vertices, {n_faces:,} faces)")
    return 0


def run_render(args) -> int:
    from .commands import render_command

    render_command(args.run, args.out, width=args.width, height=args.height, azimuth=args.azimuth,
                   elevation=args.elevation, distance=args.distance, fov=args.fov, frames=args.frames, fps=args.fps,
                   device=args.device, quiet=args.quiet)
    print(f"wrote {args.out}")
    return 0


def run_eval(args) -> int:
    from .commands import eval_command

    r = eval_command(args.run, mesh=args.mesh, n_points=args.points, resolution=args.resolution,
                     device=args.device)
    if r["chamfer"] is None:
        print(f"IoU {r['iou']:.4f} ({r['eval_points']:,} points); no surface to extract")
    else:
        print(f"IoU {r['iou']:.4f} ({r['eval_points']:,} points), Chamfer {r['chamfer']:.4g} "
              f"({r['chamfer_relative']:.2e} of the bounding box), normal consistency "
              f"{r['normal_consistency']:.4f} (resolution {r['eval_resolution']}) against {r['mesh']}")
    return 0


def register(commands) -> None:
    sdf = commands.add_parser("sdf", help="learn, extract, render and evaluate signed distance functions of meshes",
                              description="Signed distance functions of triangle meshes as a hash grid + MLP.")
    verbs = sdf.add_subparsers(dest="verb", required=True, metavar="VERB")

    fit = verbs.add_parser("fit", help="learn a mesh's signed distance into a run folder",
                           description="Learn MESH (OBJ, PLY, STL, OFF; open meshes work: the sign comes from the "
                                       "winding number). Defaults: instant-ngp's SDF config. Writes config.json, "
                                       "model.safetensors, metrics.json, mesh.ply and preview.png.")
    fit.add_argument("mesh", type=Path, help="the mesh to learn")
    add_fit_arguments(fit, default_seconds=DEFAULT_SECONDS)
    fit.add_argument("--eikonal", type=non_negative_float,
                     help="weight of the eikonal term |grad f| = 1 (default 0: off; slow, it needs double backward)")
    fit.add_argument("--batch-size", type=positive_int,
                     help="points per step (default: 2^18 on CUDA, 2^16 elsewhere)")
    fit.add_argument("--pool-size", type=positive_int,
                     help="near + uniform ground-truth points computed before training (default: 2^19)")
    fit.add_argument("--eval-resolution", type=positive_int, default=256,
                     help="marching-cubes resolution for the Chamfer figures and mesh.ply (default: 256)")
    fit.add_argument("--eval-points", type=positive_int, default=1 << 20,
                     help="uniform points for the IoU (default: 2^20)")
    fit.set_defaults(handler=run_fit)

    mesh = verbs.add_parser("mesh", help="extract the surface with marching cubes (in the mesh's units)")
    mesh.add_argument("run", type=Path, help="run folder")
    mesh.add_argument("--out", type=Path, required=True, help="output .ply, .obj, .stl or .off")
    mesh.add_argument("--resolution", type=positive_int, default=512, help="grid points per axis (default: 512)")
    add_device_argument(mesh)
    mesh.set_defaults(handler=run_mesh)

    render = verbs.add_parser("render", help="sphere-traced, normal-shaded view (.png) or orbit (.mp4 / .gif)")
    render.add_argument("run", type=Path, help="run folder")
    render.add_argument("--out", type=Path, required=True, help="output .png, .jpg, .mp4 or .gif")
    render.add_argument("--width", type=positive_int, default=512)
    render.add_argument("--height", type=positive_int, default=512)
    render.add_argument("--azimuth", type=finite_float, default=30.0, help="degrees about +y from +z (default: 30)")
    render.add_argument("--elevation", type=elevation, default=20.0,
                        help="degrees above the horizon, in (-90, 90) (default: 20)")
    render.add_argument("--distance", type=positive_float, default=1.8,
                        help="camera distance from the centre, in unit-cube units (default: 1.8)")
    render.add_argument("--fov", type=field_of_view, default=40.0,
                        help="vertical field of view in degrees, in (0, 180) (default: 40)")
    render.add_argument("--frames", type=positive_int, default=90, help="orbit frames for video (default: 90)")
    render.add_argument("--fps", type=positive_float, default=30.0)
    add_device_argument(render)
    render.add_argument("--quiet", action="store_true")
    render.set_defaults(handler=run_render)

    evaluate = verbs.add_parser("eval", help="IoU, Chamfer distance and normal consistency against the mesh")
    evaluate.add_argument("run", type=Path, help="run folder")
    evaluate.add_argument("--mesh", type=Path, help="reference mesh (default: the training mesh)")
    evaluate.add_argument("--points", type=positive_int, default=1 << 20, help="uniform IoU points (default 2^20)")
    evaluate.add_argument("--resolution", type=positive_int, default=256,
                          help="marching-cubes resolution for Chamfer (default: 256)")
    add_device_argument(evaluate)
    evaluate.set_defaults(handler=run_eval)
