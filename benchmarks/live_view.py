"""``fit --view`` cost: training steps per wall second with and without ``--view`` on the image default (the bundled
Albert, instant-ngp's image config, 2^16 points per step) and the NeRF default (lego 400 px, instant-ngp's base
config), run alternately in one process (A B A B ..., after an unmeasured warm-up fit), and each primitive's snapshot size and write time (image and
NeRF from those runs; SDF from a short default-config fit of the bunny).

Steps per *wall* second of the training loop (first step to last, so the copy on the training thread and the writer
thread's share of the CPU both count), with periodic checkpoints off (they would cost the slower run more); the run
folders go to a temporary folder. Prints markdown tables.

    nice python benchmarks/live_view.py [--image-steps 150] [--nerf-steps 60] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class Timed:
    """Wraps a fit module's ``train`` to record the wall time from the first step's end to the last's."""

    def __init__(self, module):
        self.module, self.real = module, module.train

    def __enter__(self):
        import ingp.train

        timer = self

        class Clock:
            def after_step(self, p):
                if timer.first is None:
                    timer.first = (time.perf_counter(), p.step)
                timer.last = (time.perf_counter(), p.step)

            def close(self, p):
                pass

        def train(*args, hooks=(), **kwargs):
            self.first = self.last = None
            return ingp.train.train(*args, hooks=[*hooks, Clock()], **kwargs)

        self.module.train = train
        return self

    def __exit__(self, *exc):
        self.module.train = self.real

    def steps_per_second(self) -> float:
        (t0, s0), (t1, s1) = self.first, self.last
        return (s1 - s0) / (t1 - t0)


def run_image(out: Path, steps: int, view) -> float:
    from ingp.image import fit as module
    from ingp.image.cli import bundled_image
    from ingp.image.io import read_image
    from ingp.image.model import default_model_config
    from ingp.train import Budget

    image = read_image(bundled_image())
    with Timed(module) as timed:
        module.fit_image(bundled_image(), out, model_config=default_model_config(image.width, image.height),
                         budget=Budget(steps=steps), batch_size=1 << 16, seed=1337, device="cpu", quiet=True,
                         overwrite=True, view=view)
    return timed.steps_per_second()


def run_nerf(out: Path, steps: int, view, data: Path) -> float:
    from ingp.nerf import fit as module
    from ingp.train import Budget

    with Timed(module) as timed:
        module.fit_nerf(data, out, budget=Budget(steps=steps), device="cpu", quiet=True, overwrite=True,
                        n_eval_views=1, view=view)
    return timed.steps_per_second()


def run_sdf(out: Path, steps: int, view, mesh: Path) -> None:
    from ingp.sdf.fit import fit_sdf
    from ingp.sdf.model import default_model_config
    from ingp.train import Budget

    fit_sdf(mesh, out, model_config=default_model_config(), budget=Budget(steps=steps), device="cpu", quiet=True,
            overwrite=True, eval_resolution=32, eval_points=1 << 12, view=view)


def make_view(out: Path):
    from ingp.web.live import LiveView

    return LiveView(out, 0, announce=lambda line: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-steps", type=int, default=150)
    ap.add_argument("--nerf-steps", type=int, default=60)
    ap.add_argument("--sdf-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nerf-data", type=Path, default=SHARED / "nerf_lego_400")
    ap.add_argument("--mesh", type=Path, default=SHARED / "meshes_instant_ngp" / "bunny.obj")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["INGP_SAVE_EVERY"] = "1e9"  # only the final save: periodic checkpoints would tax the slower run more
    rows, snaps = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [("image", lambda out, view, steps=args.image_steps: run_image(out, steps, view)),
                 ("nerf", lambda out, view, steps=args.nerf_steps: run_nerf(out, steps, view, args.nerf_data))]
        for name, run in cases:
            run(tmp / f"{name}_warm", None, 3)  # numba compilation, caches, first-touch: outside the measurement
            speeds = {False: [], True: []}
            for _ in range(args.repeats):
                for with_view in (False, True):
                    out = tmp / f"{name}_{int(with_view)}"
                    view = make_view(out) if with_view else None
                    try:
                        speeds[with_view].append(run(out, view))
                    finally:
                        if view is not None:
                            view.shutdown()
                            snaps[name] = (view.snapshot_bytes, view.write_seconds)
                    print(f"{name} view={with_view}: {speeds[with_view][-1]:.3f} steps/s", flush=True)
            a, b = statistics.mean(speeds[False]), statistics.mean(speeds[True])
            rows.append((name, speeds[False], speeds[True], a, b))
        view = make_view(tmp / "sdf")
        try:
            run_sdf(tmp / "sdf", args.sdf_steps, view, args.mesh)
        finally:
            view.shutdown()
        snaps["sdf"] = (view.snapshot_bytes, view.write_seconds)

    print("\n| primitive (default config) | steps/s without --view | steps/s with --view | mean without | "
          "mean with | change |")
    print("|---|---|---|---|---|---|")
    for name, a_all, b_all, a, b in rows:
        print(f"| {name} | {', '.join(f'{x:.3f}' for x in a_all)} | {', '.join(f'{x:.3f}' for x in b_all)} "
              f"| {a:.3f} | {b:.3f} | {100 * (b - a) / a:+.1f} % |")
    print("\n| primitive | snapshot (model.bin) | snapshots written | write time median | write time max |")
    print("|---|---|---|---|---|")
    for name, (size, seconds) in snaps.items():
        print(f"| {name} | {size / 2 ** 20:.2f} MiB | {len(seconds)} | {1000 * statistics.median(seconds):.0f} ms "
              f"| {1000 * max(seconds):.0f} ms |")


if __name__ == "__main__":
    main()
