"""``ingp nrc render SCENE --frames N --out DIR``: argument parsing only; the handler imports the heavy code."""

from __future__ import annotations

import os
from pathlib import Path

from ..cli import add_device_argument, positive_int, seed_number
from ..errors import InputError


QUERY_DEFAULT = "first"
EDGE_SAMPLES_DEFAULT = 16  # render.Settings.edge_samples (not imported here: this module stays light)
MAX_EDGE_SAMPLES = 1024  # each is an array of rays over the emitters' pixels per frame; 64 already cost more than gave


def settings_options(args) -> dict:
    """The render Settings fields the options --query, --cache-light, --cache-weight-power, --light-samples,
    --edge-samples set."""
    if not (args.cache_weight_power >= 0 and args.cache_weight_power <= 8):
        raise InputError(f"--cache-weight-power must be in [0, 8], got {args.cache_weight_power}")
    if not 0 <= getattr(args, "edge_samples", 0) <= MAX_EDGE_SAMPLES:
        raise InputError(f"--edge-samples must be in [0, {MAX_EDGE_SAMPLES}], got {args.edge_samples}")
    return {"query_primary": args.query == "first", "nee_at_query": args.cache_light == "indirect",
            "cache_weight_power": args.cache_weight_power, "light_samples": getattr(args, "light_samples", 1),
            "edge_samples": getattr(args, "edge_samples", EDGE_SAMPLES_DEFAULT)}


def cache_threads(requested: int | None, tracer_threads: int) -> int:
    """Torch threads for the cache: ``requested``, else the tracer's count on an idle machine and 1 on a busy one.

    Tracer and cache take turns, so both may use every core (quiet 2-core machine: 0.105 vs 0.125 s per cached
    frame with 2 cache threads vs 1). But on a busy CPU each of the cache's hundreds of small ops per frame waits
    at a barrier for a descheduled thread (measured: 2-3 ms vs 5-130 us per op; frames 10x slower or worse), so
    there it gets one. Busy: the 1-minute load average is above (cores - 1)."""
    if requested:
        return requested
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) - 1
    except OSError:  # no load average on this platform
        busy = False
    return 1 if busy else tracer_threads


def run_render(args) -> int:
    from .commands import render_command

    import numba
    import torch

    from .tracer import set_threads

    set_threads(args.threads)
    torch.set_num_threads(cache_threads(args.cache_threads, numba.get_num_threads()))
    metrics = render_command(args.scene, args.out, frames=args.frames, use_cache=not args.no_cache,
                             animate=args.animate, width=args.width, height=args.height,
                             reference_spp=args.reference_spp, position_encoding=args.encoding, seed=args.seed,
                             device=args.device, quiet=args.quiet, reference_folder=args.reference_dir,
                             options=settings_options(args))
    t = metrics["seconds_per_frame"]
    print(f"MSE {metrics['mse']:.4e} after {metrics['frames']} frames in {metrics['seconds']:.1f} s "
          f"({t['tracing']:.3f} s tracing, {t['inference']:.3f} s inference, {t['training']:.3f} s training per "
          f"frame); wrote {args.out}/")
    return 0


def register(commands) -> None:
    nrc = commands.add_parser("nrc", help="path tracing with a neural radiance cache trained while it renders",
                              description="Neural radiance caching (Müller et al. 2021) with a hash-grid cache.")
    verbs = nrc.add_subparsers(dest="verb", required=True, metavar="VERB")
    render = verbs.add_parser("render", help="render frames of a built-in scene into a run folder",
                              description="Render SCENE (cornell or glossy) one path per pixel per frame, the cache "
                                          "learning as it goes; writes frames/*.png, render.mp4, final.png and "
                                          "metrics.json (MSE against a converged reference, time split per frame).")
    render.add_argument("scene", help="built-in scene: cornell or glossy")
    render.add_argument("--out", type=Path, required=True, help="run folder to write (created if missing)")
    render.add_argument("--frames", type=positive_int, default=30, help="frames to render (default: 30)")
    render.add_argument("--no-cache", action="store_true", help="plain path tracing (same tracer, no cache)")
    render.add_argument("--animate", action="store_true",
                        help="the Cornell box light jumps from x = 0.5 to x = 0.25 halfway through")
    render.add_argument("--width", type=positive_int, default=256, help="image width (default: 256)")
    render.add_argument("--height", type=positive_int, default=256, help="image height (default: 256)")
    render.add_argument("--reference-spp", type=positive_int, default=256,
                        help="paths per pixel of the reference (computed once, then cached; default: 256)")
    render.add_argument("--reference-dir", type=Path,
                        help="folder of cached references (default: $INGP_CACHE_DIR/nrc or ~/.cache/ingp/nrc)")
    render.add_argument("--encoding", choices=("hashgrid", "trianglewave", "oneblob"), default="hashgrid",
                        help="the cache's position encoding (default: hashgrid)")
    render.add_argument("--query", choices=("first", "spread"), default=QUERY_DEFAULT,
                        help="where a rendering path ends in the cache: at its first vertex, or where NRC's "
                             f"path-spread heuristic says (default: {QUERY_DEFAULT})")
    render.add_argument("--cache-light", choices=("indirect", "scattered"), default="indirect",
                        help="what the cache learns: indirect light, each query vertex taking its own next-event "
                             "estimate (default), or all scattered light (NRC as published)")
    render.add_argument("--cache-weight-power", type=float, default=2.0, metavar="P",
                        help="the shown image weights frame k's cache part by k^P, so the young cache of the first "
                             "frames fades (0: plain mean of the frames; default: 2)")
    render.add_argument("--light-samples", type=positive_int, default=1, metavar="K",
                        help="next-event samples at each pixel's first vertex, with or without the cache "
                             "(default: 1)")
    render.add_argument("--edge-samples", type=int, default=EDGE_SAMPLES_DEFAULT, metavar="K",
                        help="extra camera rays per frame, for directly seen emission only, at the pixels of "
                             f"emitters' images (0: none; default: {EDGE_SAMPLES_DEFAULT})")
    render.add_argument("--threads", type=positive_int,
                        help="CPU threads for the path tracer (default: numba's)")
    render.add_argument("--cache-threads", type=positive_int,
                        help="torch threads for the cache (default: as many as the tracer, or 1 if the machine is "
                             "busy at the start)")
    render.add_argument("--seed", type=seed_number, default=1337)
    add_device_argument(render)
    render.add_argument("--quiet", action="store_true", help="print only the result line")
    render.set_defaults(handler=run_render)
