"""The ``ingp`` command line: ``ingp <command> ...``. User mistakes print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingp", description="Instant Neural Graphics Primitives in Python.")
    parser.add_argument("--version", action="version", version=f"ingp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit a small image with a hash grid + MLP and write the result",
                               description="Fit an image (default: a bundled 256x256 portrait) with tcnn's image "
                                           "sample settings, write the reconstruction as PNG, print PSNR and time.")
    demo.add_argument("--image", type=Path, help="PNG or JPEG to fit instead of the bundled one")
    demo.add_argument("--out", type=Path, default=Path("ingp_demo"), help="output folder (default: ingp_demo)")
    demo.add_argument("--steps", type=positive_int, default=300, help="training steps (default: 300)")
    demo.add_argument("--batch-size", type=positive_int, default=2**14, help="points per step (default: 16384)")
    demo.add_argument("--seed", type=int, default=1337)
    demo.add_argument("--quiet", action="store_true", help="print only the result line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            if args.image is not None and not args.image.is_file():
                raise ValueError(f"--image: no such file: {args.image}")
            result = run_demo(args.image, args.out, args.steps, args.batch_size, args.seed, args.quiet)
            print(f"PSNR {result['psnr']:.2f} dB after {result['steps']} steps in {result['seconds']:.1f} s "
                  f"({result['n_params']:,} parameters); wrote {result['output']}")
    except (ConfigError, ValueError, OSError) as err:
        print(f"ingp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ingp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
