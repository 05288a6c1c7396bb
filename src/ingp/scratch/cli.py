"""``ingp experiment NAME [--image PATH ...] [--out DIR] [--quick]``: argument parsing only."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError

DESCRIPTIONS = {
    "budgets": "first seed's table: plain MLP vs 8x8 level vs 5-level grid at its budgets, seed-way vs our way",
    "activations": "tanh vs ReLU vs leaky ReLU at several learning rates: why ReLU is unstable",
    "losses": "L2, L1, relative L2, SSIM and gradient losses measured on the background region",
    "embeddings": "second seed's zoo: embeddings x activations x widths x pixel subsets on two portraits",
    "grid-vs-embeddings": "hash grids added to that zoo at equal parameter budgets",
}


def register(commands) -> None:
    parser = commands.add_parser(
        "experiment", help="run one of the seeds' toy experiments and write tables, figures and animations",
        description="Experiments: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=list(DESCRIPTIONS), metavar="NAME",
                        help="one of: " + ", ".join(DESCRIPTIONS))
    parser.add_argument("--image", type=Path, nargs="+", default=None,
                        help="image file(s) instead of the bundled skimage defaults (embeddings experiments take "
                             "two, stacked vertically)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: experiments/NAME)")
    parser.add_argument("--quick", action="store_true", help="CI smoke size: a few seconds")
    parser.set_defaults(handler=run_experiment)


def run_experiment(args) -> int:
    import importlib
    import shlex
    import sys

    from .experiments import EXPERIMENTS
    from .experiments.common import Output, read_image

    for path in args.image or []:
        read_image(path)  # a bad path fails now, naming the file, not after minutes of training
    if args.image and args.name in ("budgets", "activations", "losses") and len(args.image) > 1:
        raise InputError(f"--image: experiment {args.name} takes one image, got {len(args.image)}")
    if args.image and len(args.image) > 2:
        raise InputError(f"--image: at most two images, got {len(args.image)}")
    out = args.out if args.out is not None else Path("experiments") / args.name
    command = "ingp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("ingp") else \
        f"ingp experiment {args.name}" + (" --quick" if args.quick else "")
    output = Output(out, args.name, command)
    module = importlib.import_module(f".experiments.{EXPERIMENTS[args.name]}", __package__)
    image = args.image if args.name in ("embeddings", "grid-vs-embeddings") else (args.image or [None])[0]
    results = module.run(output, image, quick=args.quick)
    table = output.finish(results)
    print(table.read_text())
    print(f"wrote {out}/")
    return 0
