"""Where a NeRF view's render time goes, and what render-time cuts would buy: held-out view 0 of a run rendered as
``ingp nerf eval`` does, with the samples per ray, the seconds in the marcher and in the network, then with the
transmittance cut-off raised and with the occupancy grid thresholded harder (PSNR against the photo and against the
exact render). Prints one markdown table.

    python benchmarks/nerf_render_cuts.py RUN [--downscale 4]
"""

from __future__ import annotations

import argparse
import time

import ingp.nerf.march as march_module
from ingp.nerf.commands import load_run
from ingp.nerf.evaluate import ground_truth, psnr, render_view
from ingp.nerf.fit import load_splits

CUTS = [(None, 1e-4), (None, 1e-3), (None, 1e-2), (0.03, 1e-4), (0.1, 1e-4)]  # (occupancy threshold, T cut-off)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--downscale", type=int, default=4, help="of the held-out photos (default 4)")
    args = ap.parse_args()
    model, grid, cfg = load_run(args.run, "cpu")
    _, test = load_splits(cfg["data"]["path"], args.downscale)
    cone = cfg["training"]["cone_angle"]
    stats = {"samples": 0, "march": 0.0, "network": 0.0}
    march, forward = march_module.march, model.forward

    def timed_march(*a, **k):  # render_rays looks the marcher up in its module at each call
        t = time.perf_counter()
        s = march(*a, **k)
        stats["march"] += time.perf_counter() - t
        stats["samples"] += len(s)
        return s

    def timed_forward(*a, **k):
        t = time.perf_counter()
        out = forward(*a, **k)
        stats["network"] += time.perf_counter() - t
        return out

    march_module.march, model.forward = timed_march, timed_forward
    truth, bits, exact = ground_truth(test, 0), grid.bitfield.clone(), None
    print(f"{args.run}: view 0 at {test.width}x{test.height}, occupied {grid.occupancy_fraction():.3f}\n")
    print("| occupied above | transmittance cut | s / view | march s | network s | samples / ray | occupied "
          "| PSNR vs photo | PSNR vs exact |\n|---|---|---|---|---|---|---|---|---|")
    for tau, cut in CUTS:
        grid.bitfield = bits if tau is None else bits & (grid.density > tau)
        stats.update(samples=0, march=0.0, network=0.0)
        t = time.perf_counter()
        image = render_view(model, grid, test, 0, cone=cone, min_transmittance=cut)[0]
        seconds = time.perf_counter() - t
        exact = image if exact is None else exact
        vs_exact = "-" if image is exact else f"{psnr(image, exact):.2f}"
        print(f"| {'-' if tau is None else tau} | {cut:g} | {seconds:.1f} | {stats['march']:.1f} "
              f"| {stats['network']:.1f} | {stats['samples'] / (test.width * test.height):.1f} "
              f"| {float(grid.bitfield.float().mean()):.3f} | {psnr(image, truth):.2f} | {vs_exact} |")


if __name__ == "__main__":
    main()
