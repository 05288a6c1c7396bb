"""The ``ingp`` command line: ``ingp <command> [<verb>] ...``.

Each primitive registers its own sub-commands from a small ``cli`` module (``ingp.image.cli`` ...) whose handlers
import the heavy code lazily. User mistakes print one line ``ingp: error: ...`` and exit with status 2; a diverged
run exits with 1; Ctrl-C or SIGTERM with 130 / 143 after the last checkpoint was kept.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, InputError, TrainingDiverged
from .limits import check_command as check_sizes
from .outputs import add_force_flags, check_command, removed_on_failure

# Modules with ``register(commands)``; each adds its sub-parsers and sets ``handler`` on them.
COMMAND_MODULES = ["ingp.image.cli", "ingp.sdf.cli", "ingp.nerf.cli", "ingp.scratch.cli", "ingp.web.cli", "ingp.nrc.cli",
                   "ingp.sweep"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed_number(text: str) -> int:
    """A random seed: an integer in 0 .. 2^63 - 1 (what torch and numpy both accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. 2^63 - 1, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: auto)")


def add_fit_arguments(parser: argparse.ArgumentParser, *, default_seconds: float | None = None) -> None:
    """The options every ``ingp <primitive> fit`` shares: --out, --seconds/--steps, --config, --seed, --device,
    --quiet, --resume, --view/--port/--open."""
    parser.add_argument("--out", type=Path, required=True, help="run folder to write (created if missing)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=positive_float, default=None,
                        help=f"training time budget in seconds (default: {default_seconds})" if default_seconds
                        else "training time budget in seconds")
    budget.add_argument("--steps", type=positive_int, default=None, help="number of training steps")
    parser.add_argument("--config", type=Path, help="tcnn/instant-ngp JSON config (encoding, network, loss, "
                                                    "optimizer); // comments and 'parent' are allowed")
    parser.add_argument("--seed", type=seed_number, default=1337, help="random seed (default: 1337)")
    add_device_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print only the result")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (budgets count the whole run)")
    from .web.cli import port_number

    parser.add_argument("--view", action="store_true", help="watch the training in the browser (snapshots, loss "
                                                            "and quality curves; served on 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8000, help="--view's port on 127.0.0.1 (default: 8000; "
                                                                       "0: any free port)")
    parser.add_argument("--open", action="store_true", help="with --view: open the page in the default browser")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingp", description="Instant Neural Graphics Primitives in Python.")
    parser.add_argument("--version", action="version", version=f"ingp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not (name == err.name or name.startswith(f"{err.name}.")):
                raise  # a primitive not written yet is fine; a broken import inside one is not
            continue
        module.register(commands)
    add_force_flags(parser)
    return parser


def _terminate(signum, frame):
    raise SystemExit(143)  # unwinds like Ctrl-C, so temporary files are removed and checkpoints stay whole


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        check_command(args)  # the output-path policy (outputs.py), before anything is read or written
        check_sizes(args)  # absurd sizes refused before anything is allocated (limits.py)
        with removed_on_failure(args):
            return args.handler(args) or 0
    except (ConfigError, InputError, ValueError, OSError) as err:
        print(f"ingp: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"ingp: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = "; the last checkpoint is kept (continue with --resume)" if hasattr(args, "resume") else ""
        print(f"ingp: interrupted{kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read our output has gone (`| head`, a closed terminal): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    except (MemoryError, RuntimeError) as err:  # the size checks are estimates: a busy machine can still run out
        if not (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or
                "can't allocate memory" in str(err)):
            raise
        print(f"ingp: error: out of memory ({str(err).splitlines()[0][:200]}); use smaller sizes (--batch-size, "
              f"--resolution, --width/--height, the config's table)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
