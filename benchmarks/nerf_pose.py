"""``ingp nerf pose`` on the fox's photos with its poses removed: seconds per stage, images registered, and the
rotation / camera-centre errors after the similarity that best maps our camera centres onto the shipped ones.

    python benchmarks/nerf_pose.py --out /tmp/fox_posed [--mapper incremental] [--max-image-size 1600]

The shipped transforms.json lists 67 frames; only the 50 whose photos exist are compared. Writes DATA to --out and
the figures to --out.json; prints one markdown table row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

FOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_fox"


def main() -> None:
    from ingp.nerf.pose import pose_command, pose_errors

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=FOX, help="folder with images/ and the shipped transforms.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mapper", default="incremental")
    ap.add_argument("--max-image-size", type=int, default=1600)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    t0 = time.perf_counter()
    summary = pose_command(args.data / "images", args.out, mapper=args.mapper, max_image_size=args.max_image_size,
                           threads=args.threads)
    total = time.perf_counter() - t0
    ours = json.loads((args.out / "transforms.json").read_text())
    shipped = json.loads((args.data / "transforms.json").read_text())
    ref = {Path(f["file_path"]).name: np.array(f["transform_matrix"]) for f in shipped["frames"]}
    names = [Path(f["file_path"]).name for f in ours["frames"]]
    rot, centre, info = pose_errors(np.stack([np.array(f["transform_matrix"]) for f in ours["frames"]]),
                                    np.stack([ref[n] for n in names]))
    result = {**summary, "total_seconds": total, "mapper": args.mapper, "max_image_size": args.max_image_size,
              "rotation_deg": {"mean": float(rot.mean()), "median": float(np.median(rot)), "max": float(rot.max())},
              "centre": {"mean": float(centre.mean()), "median": float(np.median(centre)), "max": float(centre.max())},
              "extent": info["extent"], "fl_x": ours["fl_x"], "fl_y": ours["fl_y"],
              "shipped_fl": [shipped["fl_x"], shipped["fl_y"]]}
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2))
    stages = " | ".join(f"{v:.0f}" for v in summary["seconds"].values())
    print(f"| {args.mapper} | {args.max_image_size} | {stages} | {total:.0f} | {summary['registered']}/"
          f"{summary['images']} | {rot.mean():.2f} / {rot.max():.2f} | {centre.mean():.4f} / {centre.max():.4f} "
          f"({100 * centre.mean() / info['extent']:.2f} % / {100 * centre.max() / info['extent']:.2f} %) |")
    print(f"stages: {', '.join(summary['seconds'])}; focal {ours['fl_x']:.1f} {ours['fl_y']:.1f} vs shipped "
          f"{shipped['fl_x']} {shipped['fl_y']}; aabb_scale {ours['aabb_scale']} (shipped {shipped['aabb_scale']})")


if __name__ == "__main__":
    main()
