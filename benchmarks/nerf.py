"""Lego NeRF benchmark: test PSNR / SSIM after cumulative training budgets (default 5, 10, 30 minutes) on a fixed,
evenly spread set of test views, with samples/s, rays/s, peak memory and the time to render one view.

    python benchmarks/nerf.py --out /tmp/nerf_bench [--minutes 5 10 30] [--n-views 20] [--threads 2]

One run is trained and resumed from its checkpoint for each budget, so the budgets are cumulative training time.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_lego_400"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 30])
    ap.add_argument("--n-views", type=int, default=20)
    ap.add_argument("--downscale", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ingp.nerf.commands import eval_command
    from ingp.nerf.evaluate import view_indices
    from ingp.nerf.fit import fit_nerf
    from ingp.train import Budget

    rows = []
    for i, minutes in enumerate(sorted(args.minutes)):
        m = fit_nerf(args.data, args.out, budget=Budget(seconds=60 * minutes), resume=i > 0, quiet=True,
                     downscale=args.downscale, n_eval_views=1, overwrite=i == 0)
        t0 = time.perf_counter()
        r = eval_command(args.out, n_views=args.n_views)
        rows.append((minutes, m["steps"], r["psnr"], r["ssim"], m["samples_per_second"], m["rays_per_second"],
                     r["seconds_per_view"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        print(f"{minutes:g} min: {r['psnr']:.2f} dB ({time.perf_counter() - t0:.0f} s to evaluate)", flush=True)
    from ingp.nerf.data import load_scene

    n_test = len(load_scene(args.data, "test", downscale=8))
    print(f"\nlego, {args.threads} threads, test views {view_indices(n_test, args.n_views)} of {n_test}, "
          f"downscale {args.downscale}\n")
    print("| training | steps | PSNR (dB) | SSIM | trained samples/s | rays/s | render s/view | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for mins, steps, p, s, sps, rps, rt, mem in rows:
        print(f"| {mins:g} min | {steps} | {p:.2f} | {s:.4f} | {sps:,.0f} | {rps:,.0f} | {rt:.2f} | {mem:,.0f} |")


if __name__ == "__main__":
    main()
