"""Cheap held-out quality of a NeRF run: PSNR on fixed random pixels of its held-out views (white background, as
``ingp nerf eval``), with the samples the model evaluated per ray, the render seconds and the occupied fraction.
For runs whose full-view evaluation is too slow (a hazy early real scene: hundreds of samples per ray).

    python benchmarks/nerf_heldout_pixels.py RUN [--pixels 8192] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

from ingp.nerf.commands import load_run
from ingp.nerf.fit import load_splits
from ingp.nerf.rays import pixel_rays
from ingp.nerf.render import render_rays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--pixels", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model, grid, config = load_run(args.run, "cpu")
    _, test = load_splits(config["data"]["path"], config["data"]["downscale"])
    g = torch.Generator().manual_seed(args.seed)
    n = args.pixels
    img = torch.randint(0, len(test), (n,), generator=g)
    v = torch.randint(0, test.height, (n,), generator=g)
    u = torch.randint(0, test.width, (n,), generator=g)
    o, d = pixel_rays(test.c2w[img], test.intrinsics[img], test.distortion[img], u.float() + 0.5, v.float() + 0.5,
                      test.fisheye)
    px = test.images[img, v, u].float() / 255
    ref = px[:, :3] * px[:, 3:] + (1 - px[:, 3:])
    evaluated = [0]
    forward = model.forward

    def counting(x, dirs, image=None, ray=None):
        evaluated[0] += len(x)
        return forward(x, dirs, image, ray=ray)

    model.forward = counting
    t0 = time.perf_counter()
    colour, _, _ = render_rays(model, grid, o, d, test.aabb(), cone=config["training"]["cone_angle"],
                               background=torch.ones(3))
    seconds = time.perf_counter() - t0
    mse = float(((colour.clamp(0, 1) - ref) ** 2).mean())
    per_cascade = [round(float(b.float().mean()), 3) for b in grid.bitfield]
    print(f"{args.run}: PSNR {-10 * torch.log10(torch.tensor(mse)):.2f} dB on {n} pixels of {len(test)} held-out "
          f"{test.width}x{test.height} views; {evaluated[0] / n:.1f} samples per ray; {seconds:.1f} s; occupied "
          f"{grid.occupancy_fraction():.3f} (per cascade {per_cascade})")


if __name__ == "__main__":
    main()
