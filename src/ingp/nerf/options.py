"""``ingp nerf fit``'s real-capture quality options (argument parsing only, no heavy imports); each maps onto a
``training`` key of ``fit.py`` and, left out, means the default for the kind of scene (``fit.SCENE_DEFAULTS``)."""

from __future__ import annotations

import argparse

from ..cli import positive_float

OPTIONS = (("appearance_dims", "appearance_dims"), ("ema_decay", "ema"), ("error_map", "error_map"),
           ("contraction", "contraction"), ("occupancy_decay", "occupancy_decay"),
           ("occupancy_threshold", "occupancy_threshold"), ("occupancy_below_mean", "occupancy_below_mean"),
           ("distortion", "distortion_loss"))


def _fraction(text: str) -> float:
    x = float(text)
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return x


def _weight(text: str) -> float:
    x = float(text)
    if not 0 <= x < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return x


def _count(text: str) -> int:
    x = int(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return x


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("real-capture quality (defaults depend on the scene: see docs/ARCHITECTURE.md)")
    g.add_argument("--appearance-dims", type=_count, metavar="D",
                   help="learnable appearance code per training image (0: off)")
    g.add_argument("--ema", type=_fraction, metavar="DECAY",
                   help="EMA decay of the weights evaluation renders with (0: off)")
    g.add_argument("--error-map", action=argparse.BooleanOptionalAction, default=None,
                   help="draw training pixels by a running per-image error map")
    g.add_argument("--contraction", choices=("none", "linf", "l2"),
                   help="contract the background outside the unit cube for the hash grid (default: linf for real "
                        "captures, aabb_scale > 1; none for synthetic objects)")
    g.add_argument("--occupancy-decay", type=_fraction, metavar="DECAY",
                   help="occupancy grid decay per update (instant-ngp 0.95)")
    g.add_argument("--occupancy-threshold", type=positive_float, metavar="TAU",
                   help="occupied above min(this, mean) optical thickness (instant-ngp 0.01)")
    g.add_argument("--occupancy-below-mean", action=argparse.BooleanOptionalAction, default=None,
                   help="cap the threshold at the grid's mean (instant-ngp's rule; --no-occupancy-below-mean: the "
                        "threshold alone)")
    g.add_argument("--distortion-loss", type=_weight, metavar="W",
                   help="weight of mip-NeRF 360's distortion loss, which gathers each ray's weights (0: off)")


def quality_training(args: argparse.Namespace) -> dict:
    """The given quality options as ``training`` entries (left-out ones are absent)."""
    return {key: getattr(args, attr) for key, attr in OPTIONS if getattr(args, attr, None) is not None}
