"""Issue 22's kill series: SIGKILL an image fit and a NeRF fit (tiny synthetic data, a save after every step)
``--kills`` times each, alternately at a random moment and as soon as a checkpoint/weights temporary file appears;
after each kill open the run and count stale temporary files, snapshots whose two files' steps differed, and cases
where eval and resume would load different weights. Prints a markdown table.

    nice python benchmarks/kill_series.py [--kills 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kill_runs import ball_scene, kill_series, tiny_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| primitive | kills (random / during a write) | temporaries left by the kills | stale temporaries "
          "after the next open | steps of the two files differed (checkpoint used) | eval != resume weights "
          "| last step |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind in ("image", "nerf"):
            data = tiny_image(tmp / "tiny.png") if kind == "image" else ball_scene(tmp / "ball")
            results = kill_series(kind, data, tmp / f"run_{kind}", args.kills, args.seed)
            modes = [r["mode"] for r in results]
            print(f"| {kind} | {len(results)} ({modes.count('random')} / {modes.count('write')}) "
                  f"| {sum(r['temporaries_before'] for r in results)} | {sum(r['temporaries_after'] for r in results)} "
                  f"| {sum(r['steps_differed'] for r in results)} | {sum(not r['same_weights'] for r in results)} "
                  f"| {results[-1]['step']} |", flush=True)


if __name__ == "__main__":
    main()
