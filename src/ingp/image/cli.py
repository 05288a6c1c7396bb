"""``ingp demo`` and ``ingp image fit|render|video|eval|convert|compress|decompress``: argument parsing only;
each handler imports the heavy code when it runs."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from ..cli import add_device_argument, add_fit_arguments, finite_float, positive_float, positive_int, seed_number
from ..errors import InputError

DEFAULT_SECONDS = 60.0
CODEC_SECONDS = 240.0  # compress: per-image fitting budget
DEFAULT_BATCH = 1 << 16  # measured on 2 CPU cores: more steps of 2^16 beat fewer of 2^18 at equal time


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def bundled_image() -> Path:
    """The demo image: Albert Einstein, 256x256 grayscale (public domain; instant-ngp's image demo subject)."""
    return Path(str(resources.files("ingp") / "data" / "albert_256.png"))


def model_config_from_args(args, width: int, height: int) -> dict:
    """Defaults <- --config file <- individual flags."""
    from ..config import load_config
    from .model import default_model_config, encoding_from_options

    config = default_model_config(width, height)
    if args.config is not None:
        given = load_config(args.config)
        unknown = set(given) - {"encoding", "network", "loss", "optimizer"}
        if unknown:
            raise InputError(f"--config {args.config}: unknown sections {', '.join(sorted(unknown))} "
                             f"(expected encoding, network, loss, optimizer)")
        for section, value in given.items():
            if not isinstance(value, dict):
                raise InputError(f"--config {args.config}: '{section}' must be a JSON object, got "
                                 f"{type(value).__name__}")
        config.update(given)
    grid_flags = dict(n_levels=args.n_levels, n_features_per_level=args.n_features_per_level,
                      log2_hashmap_size=args.log2_hashmap_size, base_resolution=args.base_resolution,
                      finest_resolution=args.finest_resolution)
    if args.encoding is not None or any(v is not None for v in grid_flags.values()):
        kind = args.encoding or {"DenseGrid": "dense", "Frequency": "frequency", "Identity": "none"}.get(
            config["encoding"].get("otype"), "hashgrid")
        config["encoding"] = encoding_from_options(kind, width, height, config["encoding"], **grid_flags)
    if args.lr is not None:
        config["optimizer"] = _set_learning_rate(dict(config["optimizer"]), args.lr)
    if args.loss is not None:
        config["loss"] = {"otype": args.loss}
    return config


def _set_learning_rate(optimizer: dict, lr: float) -> dict:
    """Set the innermost optimiser's learning rate (wrappers such as EMA nest theirs under 'nested')."""
    if isinstance(optimizer.get("nested"), dict):
        optimizer["nested"] = _set_learning_rate(dict(optimizer["nested"]), lr)
    else:
        optimizer["learning_rate"] = lr
    return optimizer


def run_fit(args) -> int:
    from ..train import Budget
    from .fit import fit_image
    from .io import read_image

    if getattr(args, "tiles", None) is not None:  # a tile farm: one fit per tile, blended (image/tiles.py)
        from .tiles import run_fit_tiles

        if getattr(args, "view", False):
            raise InputError("--view watches one fit; it does not apply to --tiles (view a tile's run folder "
                             "with `ingp view`)")
        return run_fit_tiles(args, model_config_from_args, DEFAULT_SECONDS)
    if args.resume:
        model_config = None
    else:
        image = read_image(args.image)
        model_config = model_config_from_args(args, image.width, image.height)
    budget = Budget(steps=args.steps, seconds=args.seconds if args.steps or args.seconds else DEFAULT_SECONDS)
    from ..web.live import view_from_args

    with view_from_args(args) as view:
        metrics = fit_image(args.image, args.out, model_config=model_config, budget=budget,
                            batch_size=args.batch_size, seed=args.seed, device=args.device, quiet=args.quiet,
                            resume=args.resume, visualize=args.visualize,
                            overwrite=getattr(args, "overwrite", False) or getattr(args, "force", False),
                            view=view)
    print(f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} after {metrics['steps']} steps in "
          f"{metrics['seconds']:.1f} s ({metrics['n_params']:,} parameters); wrote {args.out}/")
    return 0


def run_demo(args) -> int:
    args.image = args.image or bundled_image()
    args.overwrite = True  # the demo starts fresh each time
    for name in ("config", "encoding", "n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution",
                 "finest_resolution", "lr", "loss"):
        setattr(args, name, None)
    args.resume = args.visualize = False
    args.seconds = None
    return run_fit(args)


def run_render(args) -> int:
    from .commands import render_command

    path = render_command(args.run, args.out, width=args.width, height=args.height, zoom=args.zoom,
                          center=tuple(args.center), device=args.device)
    print(f"wrote {path}")
    return 0


def run_video(args) -> int:
    from .commands import video_command

    video_command(args.run, args.out, width=args.width, height=args.height, zoom=args.zoom,
                  center=tuple(args.center), n_frames=args.frames, fps=args.fps, device=args.device,
                  quiet=args.quiet)
    print(f"wrote {args.out}")
    return 0


def run_eval(args) -> int:
    from .commands import eval_command

    result = eval_command(args.run, args.reference, device=args.device)
    print(f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} against {result['reference']}")
    return 0


def run_convert(args) -> int:
    from .commands import convert_command

    shape = convert_command(args.input, args.output, scale=args.scale)
    print(f"wrote {args.output} ({shape[1]}x{shape[0]}, {shape[2]} channels)")
    return 0


def run_compress(args) -> int:
    from ..codec.commands import compress_command
    from ..codec.fit import CodecOptions

    steps = args.steps
    seconds = None if steps and args.seconds is None else (args.seconds or CODEC_SECONDS)
    options = CodecOptions(lam=args.lam, steps=steps, seconds=seconds, seed=args.seed, quiet=args.quiet)
    report = compress_command(args.image, args.out, options, bpp=args.bpp, psnr=args.psnr)
    print(f"wrote {args.out}: {report['bytes']:,} bytes, {report['bpp']:.3f} bits per pixel, "
          f"PSNR {report['psnr']:.2f} dB (lambda {report['lambda']:.3g}, encoded in {report['encode_seconds']:.0f} s)")
    return 0


def run_decompress(args) -> int:
    from ..codec.commands import decompress_command

    decompress_command(args.file, args.out)
    print(f"wrote {args.out}")
    return 0


def _view_arguments(parser: argparse.ArgumentParser, zoom: float = 1.0, zoom_help: str = "magnification") -> None:
    parser.add_argument("--width", type=positive_int, help="output width (default: the image's, or from --height)")
    parser.add_argument("--height", type=positive_int, help="output height (default: keeps the aspect)")
    parser.add_argument("--zoom", type=positive_float, default=zoom, help=f"{zoom_help} (default: {zoom:g})")
    parser.add_argument("--center", type=finite_float, nargs=2, default=(0.5, 0.5), metavar=("X", "Y"),
                        help="view centre in [0, 1] image coordinates, x right, y down (default: 0.5 0.5)")
    add_device_argument(parser)


def register(commands) -> None:
    demo = commands.add_parser("demo", help="fit the bundled 256x256 portrait and write a run folder",
                               description="Fit a small bundled image (or --image) with the image defaults and "
                                           "write a run folder with preview.png, metrics.json and the weights.")
    demo.add_argument("--image", type=Path, help="image to fit instead of the bundled one")
    demo.add_argument("--out", type=Path, default=Path("ingp_demo"), help="run folder (default: ingp_demo)")
    demo.add_argument("--steps", type=positive_int, default=100, help="training steps (default: 100)")
    demo.add_argument("--batch-size", type=positive_int, default=1 << 16, help="points per step (default: 65536)")
    demo.add_argument("--seed", type=seed_number, default=1337)
    add_device_argument(demo)
    demo.add_argument("--quiet", action="store_true", help="print only the result line")
    demo.set_defaults(handler=run_demo)

    image = commands.add_parser("image", help="fit, render, evaluate and compress images",
                                description="Images from 64x64 to gigapixel as a hash grid + MLP.")
    verbs = image.add_subparsers(dest="verb", required=True, metavar="VERB")

    fit = verbs.add_parser("fit", help="learn an image into a run folder",
                           description="Learn IMAGE (PNG, JPEG, 16-bit PNG, EXR, .npy; gray, RGB, RGBA). Defaults: "
                                       "instant-ngp's image recipe with N_max = max(width, height) / 2.")
    fit.add_argument("image", type=Path, help="the image to learn")
    add_fit_arguments(fit, default_seconds=DEFAULT_SECONDS)
    fit.add_argument("--encoding", choices=("hashgrid", "dense", "frequency", "none"),
                     help="input encoding (default: hashgrid)")
    fit.add_argument("--n-levels", type=positive_int, help="grid levels (default: 16)")
    fit.add_argument("--n-features-per-level", type=int, choices=(1, 2, 4, 8), help="features per level (default 2)")
    fit.add_argument("--log2-hashmap-size", type=positive_int, help="log2 of the hash table size (default: 24)")
    fit.add_argument("--base-resolution", type=positive_int, help="coarsest grid resolution (default: 16)")
    fit.add_argument("--finest-resolution", type=positive_float,
                     help="finest grid resolution (default: max(width, height) / 2)")
    fit.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH, help="points per step (default: 2^16; instant-ngp uses 2^18 on GPUs)")
    fit.add_argument("--lr", type=positive_float, help="learning rate (default: 1e-2)")
    fit.add_argument("--loss", help="tcnn loss otype: L2, L1, RelativeL2, Huber, ... (default: L2)")
    fit.add_argument("--visualize", action="store_true",
                     help="save progress frames (prediction | reference) and progress.gif / progress.mp4")
    fit.add_argument("--tiles", metavar="KxM", help="tile farm for images too big for one device: K columns x M "
                     "rows of overlapping tiles, each its own model and job (torchrun ranks share them out); "
                     "--steps/--seconds and the model options apply per tile")
    fit.add_argument("--tile-overlap", type=non_negative_int, default=32, metavar="PX",
                     help="pixels a tile reaches into each neighbour; tiles cross-fade over twice this (default: 32)")
    fit.add_argument("--ray", action="store_true",
                     help='with --tiles: fit the tiles as Ray tasks, one CPU each (pip install "ingp[ray]")')
    fit.add_argument("--ray-address", help="with --ray: an existing Ray cluster (auto or host:port; default: a local "
                                           "one)")
    fit.set_defaults(handler=run_fit)

    render = verbs.add_parser("render", help="render a run's image, whole or zoomed, at any size")
    render.add_argument("run", type=Path, help="run folder")
    render.add_argument("--out", type=Path, required=True, help="output .png, .exr, .npy, .jpg or .webp")
    _view_arguments(render)
    render.set_defaults(handler=run_render)

    video = verbs.add_parser("video", help="a smooth zoom into a point, as MP4 or GIF")
    video.add_argument("run", type=Path, help="run folder")
    video.add_argument("--out", type=Path, required=True, help="output .mp4 or .gif")
    _view_arguments(video, zoom=64.0, zoom_help="final magnification")
    video.add_argument("--frames", type=positive_int, default=120, help="number of frames (default: 120)")
    video.add_argument("--fps", type=positive_float, default=30.0, help="frames per second (default: 30)")
    video.add_argument("--quiet", action="store_true")
    video.set_defaults(handler=run_video)

    evaluate = verbs.add_parser("eval", help="PSNR and SSIM of a run against its image (tiled for large images)")
    evaluate.add_argument("run", type=Path, help="run folder")
    evaluate.add_argument("--reference", type=Path, help="image to compare with (default: the training image)")
    add_device_argument(evaluate)
    evaluate.set_defaults(handler=run_eval)

    convert = verbs.add_parser("convert", help="convert an image to .npy for memory-mapped training",
                               description="Decode IN once and write OUT.npy in its stored type (uint8, uint16 or "
                                           "float32), optionally scaled; fit then memory-maps it.")
    convert.add_argument("input", type=Path, help="input image")
    convert.add_argument("output", type=Path, help="output .npy")
    convert.add_argument("--scale", type=positive_float, default=1.0, help="resize factor in (0, 1] (default: 1)")
    convert.set_defaults(handler=run_convert)

    compress = verbs.add_parser("compress", help="fit and code an image into a small .ingp file",
                                description="A fitted neural codec: quantised multiresolution latent grids, a small "
                                            "synthesis MLP and a learned autoregressive entropy model, range-coded. "
                                            "8- or 16-bit gray, RGB or RGBA in; decodes to 8 bit.")
    compress.add_argument("image", type=Path, help="the image to compress")
    compress.add_argument("--out", type=Path, required=True, help="output file (.ingp)")
    rate = compress.add_mutually_exclusive_group()
    rate.add_argument("--lambda", dest="lam", type=positive_float, default=1e-3,
                      help="rate weight: MSE + lambda * bits / pixel; larger is smaller (default: 1e-3)")
    rate.add_argument("--bpp", type=positive_float, help="search lambda for at most this many bits per pixel")
    rate.add_argument("--psnr", type=positive_float, help="search lambda for at least this PSNR (dB)")
    compress.add_argument("--seconds", type=positive_float,
                          help=f"fitting time budget, shared by the trials of a search (default: {CODEC_SECONDS:g})")
    compress.add_argument("--steps", type=positive_int, help="fitting steps instead of (or as well as) --seconds")
    compress.add_argument("--seed", type=seed_number, default=0)
    compress.add_argument("--quiet", action="store_true", help="no progress bar")
    compress.set_defaults(handler=run_compress)

    decompress = verbs.add_parser("decompress", help="decode a .ingp file to an 8-bit image")
    decompress.add_argument("file", type=Path, help="file written by `ingp image compress`")
    decompress.add_argument("--out", type=Path, required=True, help="output .png, .webp, .npy, ...")
    decompress.set_defaults(handler=run_decompress)
