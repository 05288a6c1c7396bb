"""``ingp demo`` and ``ingp image ...`` argument parsing; handlers import the heavy code lazily."""

from __future__ import annotations

from pathlib import Path

from ..cli import positive_int
from ..errors import InputError


def run_demo_command(args) -> int:
    from ..demo import run_demo

    if args.image is not None and not args.image.is_file():
        raise InputError(f"--image: no such file: {args.image}")
    result = run_demo(args.image, args.out, args.steps, args.batch_size, args.seed, args.quiet)
    print(f"PSNR {result['psnr']:.2f} dB after {result['steps']} steps in {result['seconds']:.1f} s "
          f"({result['n_params']:,} parameters); wrote {result['output']}")
    return 0


def register(commands) -> None:
    demo = commands.add_parser("demo", help="fit a small image with a hash grid + MLP and write the result",
                               description="Fit an image (default: a bundled 256x256 portrait) with tcnn's image "
                                           "sample settings, write the reconstruction as PNG, print PSNR and time.")
    demo.add_argument("--image", type=Path, help="PNG or JPEG to fit instead of the bundled one")
    demo.add_argument("--out", type=Path, default=Path("ingp_demo"), help="output folder (default: ingp_demo)")
    demo.add_argument("--steps", type=positive_int, default=300, help="training steps (default: 300)")
    demo.add_argument("--batch-size", type=positive_int, default=2**14, help="points per step (default: 16384)")
    demo.add_argument("--seed", type=int, default=1337)
    demo.add_argument("--quiet", action="store_true", help="print only the result line")
    demo.set_defaults(handler=run_demo_command)
