"""Neural radiance caching at 256² on the CPU: plain path tracing vs path tracing + cache at equal wall time.

    python benchmarks/nrc.py [--seconds 60] [--encoding-seconds 20] [--threads 2]

Prints markdown tables:

1. per scene, the MSE against the converged reference after 1 / 10 / 60 s of each contender's own frame time, and
   ``MSE - reference noise`` (the reference's own variance, estimated from two halves), for plain path tracing,
   the cache with the default settings (shown image: ``render.Progressive``, also as the plain mean of its frames)
   and the cache as NRC publishes it (paths end by the spread heuristic in a cache of all scattered light);
2. work: CPU seconds per frame (process time: robust to other jobs' load, unlike wall time), the wall split into
   tracing / inference / training, and the MSE after 10 / 30 / 100 frames;
3. the cache's position encoding: hash grid vs triangle wave (NRC's) vs one-blob, at equal time;
4. the animated case: the light jumps; a cache trained on the old light vs a fresh cache vs plain path tracing,
   MSE of the accumulation since the change at 0.5 / 1 / 2 / 5 s after it, and how soon the cache's own error
   (noise-free cache image, away from the lights' pixels) is back to what a cache trained on the new light settles
   at.

Contenders are run *interleaved* (one frame each in turn, each with its own clock), so that a machine shared with
other jobs slows them alike; the load average is printed. References are computed once and cached
(``~/.cache/ingp/nrc``); computing them takes a while (2048 paths per pixel, ~3 min each; "ref noise" is their
own variance).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


class Contender:
    """A renderer with its own clock, its progressive image and MSE checkpoints."""

    def __init__(self, label, renderer, reference, probe=None):
        from ingp.nrc.render import Progressive

        self.label, self.renderer, self.ref = label, renderer, reference
        self.probe, self.probes = probe, []
        self.elapsed, self.cpu, self.count = 0.0, 0.0, 0
        shape = reference["image"].shape
        self.progressive = Progressive(shape, renderer.settings.cache_weight_power)
        self.plain = Progressive(shape)  # the plain mean of the frames, for comparison
        self.split = {"tracing": 0.0, "inference": 0.0, "training": 0.0}
        self.curve = []  # (elapsed seconds, mse of the progressive image, mse of the plain mean, frames)

    def step(self):
        t0, c0 = time.perf_counter(), time.process_time()
        image, split = self.renderer.frame()
        self.elapsed += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        if self.probe is not None:  # outside the clock
            self.probes.append((self.elapsed, self.probe(self)))
        for k, v in split.items():
            self.split[k] += v
        self.progressive.add(image, self.renderer.cache_term)
        self.plain.add(image)
        self.count += 1
        ref = self.ref["image"]
        self.curve.append((self.elapsed, float(np.mean((self.progressive.image() - ref) ** 2)),
                           float(np.mean((self.plain.image() - ref) ** 2)), self.count))

    def mse_at(self, seconds, plain=False):
        """MSE of the progressive image (or of the plain mean of the frames) as it stood after ``seconds`` of this
        contender's time (None if no frame had finished by then)."""
        done = [c[2 if plain else 1] for c in self.curve if c[0] <= seconds + 1e-9]
        return done[-1] if done else None

    def mse_at_frame(self, frames):
        return self.curve[frames - 1][1] if len(self.curve) >= frames else None


def interleave(contenders, seconds):
    while any(c.elapsed < seconds for c in contenders):
        for c in contenders:
            if c.elapsed < seconds:
                c.step()


FRAME_CHECKS = (10, 30, 100)


def fmt(x):
    return "–" if x is None else f"{x:.3e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--encoding-seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reference-spp", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--light-samples", type=int, default=1,
                        help="next-event samples at each pixel's first vertex, for every contender (default 1)")
    parser.add_argument("--torch-threads", type=int,
                        help="torch threads for the cache (default: --threads, or 1 on a busy machine: see "
                             "ingp.nrc.cli.cache_threads)")
    parser.add_argument("--scenes", nargs="+", default=["cornell", "glossy"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["equal-time", "encodings", "animated"])
    args = parser.parse_args(argv)

    import torch

    from ingp.nrc.render import Renderer, Settings, reference
    from ingp.nrc.scene import load_scene
    from ingp.nrc.tracer import set_threads

    from ingp.nrc.cli import cache_threads

    args.torch_threads = cache_threads(args.torch_threads, args.threads)
    torch.set_num_threads(args.torch_threads)  # the cache's small ops (see ingp/nrc/cli.py); the tracer: --threads
    set_threads(args.threads)
    size = args.size
    print(f"# NRC benchmark: {size}x{size}, tracer {args.threads} threads, cache {args.torch_threads} thread(s), "
          f"{args.light_samples} light sample(s) at the first vertex, torch {torch.__version__}, "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    refs = {}

    def ref(name, **params):
        key = (name, tuple(sorted(params.items())))
        if key not in refs:
            t0 = time.perf_counter()
            refs[key] = reference(load_scene(name, **params), size, size, args.reference_spp)
            print(f"reference {name} {params}: {args.reference_spp} spp, noise MSE {refs[key]['noise']:.2e} "
                  f"({time.perf_counter() - t0:.0f} s, {refs[key]['path']})", file=sys.stderr)
        return refs[key]

    def contender(label, name, use_cache, encoding="hashgrid", seed=1337, scene=None, **overrides):
        """``scene``: the scene's parameters; ``overrides``: further Settings fields."""
        scene = scene or {}
        overrides.setdefault("light_samples", args.light_samples)
        settings = Settings(width=size, height=size, use_cache=use_cache, position_encoding=encoding, seed=seed,
                            **overrides)
        return Contender(label, Renderer(load_scene(name, **scene), settings), ref(name, **scene))

    # compile / load the numba kernels (tracer, grid encoding, Adam) outside every contender's clock
    for warm_settings in (Settings(width=8, height=8, use_cache=False),
                          Settings(width=8, height=8, query_primary=False, nee_at_query=False),
                          Settings(width=8, height=8)):
        Renderer(load_scene("cornell"), warm_settings).frame()
    default = Settings()
    default_label = (f"+ cache ({'first vertex' if default.query_primary else 'spread'}, "
                     f"{'indirect' if default.nee_at_query else 'all scattered light'})")
    checkpoints = sorted({1.0, 10.0, args.seconds})
    if "equal-time" not in args.skip:
        rows, work_rows = [], []
        for name in args.scenes:
            pt = contender("path tracing", name, False)
            caches = [contender(default_label, name, True),
                      contender("+ cache (NRC as published: spread, all scattered light)", name, True,
                                query_primary=False, nee_at_query=False, cache_weight_power=0.0)]
            interleave([pt, *caches], args.seconds)
            noise = pt.ref["noise"]
            for c in (pt, *caches):
                for label, plain in (("", False), (", plain mean of the frames", True)):
                    if plain and (c is pt or c.renderer.settings.cache_weight_power == 0):
                        continue
                    ms = [c.mse_at(s, plain) for s in checkpoints]
                    rows.append(f"| {name} | {c.label}{label} | " + " | ".join(fmt(m) for m in ms) + " | "
                                + " | ".join(fmt(None if m is None else m - noise) for m in ms) + f" | {c.count} |")
                work_rows.append(f"| {name} | {c.label} | {c.cpu / c.count:.3f} | {c.elapsed / c.count:.3f} | "
                                 + " | ".join(f"{c.split[k] / c.count:.3f}" for k in ("tracing", "inference",
                                                                                      "training"))
                                 + " | " + " | ".join(fmt(c.mse_at_frame(n)) for n in FRAME_CHECKS) + " |")
            for c in caches:
                ratio = [None if pt.mse_at(s) is None or c.mse_at(s) is None else pt.mse_at(s) / c.mse_at(s)
                         for s in checkpoints]
                rows.append(f"| {name} | **MSE ratio PT / {c.label[2:]}** | " + " | ".join(
                    "–" if r is None else f"**{r:.2f}×**" for r in ratio) + " | " * (len(checkpoints) + 1) + "|")
            print(f"{name} done, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        s_cols = " | ".join(f"{s:g} s" for s in checkpoints)
        print("## MSE vs the reference at equal time (own frame time; interleaved)\n")
        print(f"| scene | renderer | {s_cols} | {' | '.join(f'{s:g} s − ref noise' for s in checkpoints)} | frames |")
        print("|---|---|" + "---|" * (2 * len(checkpoints) + 1))
        print("\n".join(rows))
        print("\n## Work: seconds per frame (CPU = process time, all threads) and MSE after a fixed number of frames\n")
        print("| scene | renderer | CPU s | wall s | tracing | inference | training | "
              + " | ".join(f"MSE @ {n} frames" for n in FRAME_CHECKS) + " |")
        print("|---|---|---|---|---|---|---|" + "---|" * len(FRAME_CHECKS))
        print("\n".join(work_rows))
        print(f"\nload average now {os.getloadavg()[0]:.1f}\n")

    if "encodings" not in args.skip:
        print(f"## Cache position encoding, MSE after {args.encoding_seconds:g} s (interleaved)\n")
        print("| scene | hash grid | triangle wave (NRC) | one-blob | path tracing |")
        print("|---|---|---|---|---|")
        for name in args.scenes:
            cs = [contender(e, name, True, encoding=e) for e in ("hashgrid", "trianglewave", "oneblob")]
            cs.append(contender("path tracing", name, False))
            interleave(cs, args.encoding_seconds)
            print(f"| {name} | " + " | ".join(f"{fmt(c.curve[-1][1])} ({c.count} fr)" for c in cs) + " |",
                  flush=True)
        print(f"\nload average now {os.getloadavg()[0]:.1f}\n")

    if "animated" not in args.skip:
        from ingp.nrc.render import dilate, mse

        old_ref, new_ref = ref("cornell", light_x=0.5), ref("cornell", light_x=0.25)
        # the noise-free cache image's MSE away from both lights' pixels (reference > 1, and their neighbours):
        # at the pixel centres the lights' aliased edges would swamp what the cache does
        away = ~dilate((old_ref["image"].max(axis=-1) > 1) | (new_ref["image"].max(axis=-1) > 1))

        def cache_error(c):
            return mse(c.renderer.cache_image()[away], c.ref["image"][away])

        # what the cache settles at on the new light: 10 s of training on it from the start (the two lights'
        # plateaus differ, so "recovered" is measured against the new light's, not the old light's error)
        settled = contender("cache trained on the new light", "cornell", True, scene={"light_x": 0.25}, seed=7)
        interleave([settled], 10.0)
        target = cache_error(settled)
        warm = contender("cache trained on the old light", "cornell", True, scene={"light_x": 0.5})
        interleave([warm], 10.0)
        before = cache_error(warm)
        warm.renderer.scene = load_scene("cornell", light_x=0.25)
        warm = Contender(warm.label, warm.renderer, new_ref, probe=cache_error)  # new accumulation and clock
        jump = cache_error(warm)
        cold = contender("fresh cache", "cornell", True, scene={"light_x": 0.25}, seed=99)
        cold.probe = cache_error
        pt = contender("path tracing", "cornell", False, scene={"light_x": 0.25})
        horizon = [0.5, 1.0, 2.0, 5.0]
        interleave([warm, cold, pt], horizon[-1])
        print("## Animated: the Cornell light jumps from x = 0.5 to 0.25 after 10 s; MSE of the accumulation "
              "since the jump\n")
        print("| renderer | " + " | ".join(f"{s:g} s" for s in horizon)
              + " | first frame after the jump (its time) | frames in 5 s |")
        print("|---|" + "---|" * (len(horizon) + 2))
        for c in (warm, cold, pt):
            print(f"| {c.label} | " + " | ".join(fmt(c.mse_at(s)) for s in horizon)
                  + f" | {fmt(c.curve[0][1])} ({c.curve[0][0]:.2f} s) | {c.count} |")
        print("\nThe cache's own error (noise-free: emission + cache at the pixel centres' first hits, vs the "
              "reference, away from the pixels of the light's images):\n")
        print(f"* before the jump (vs the old light's reference): {before:.3e}; right after it (vs the new): "
              f"{jump:.3e}; a cache trained 10 s on the new light: {target:.3e}")

        def reached(c, factor):
            t = next((t for t, e in c.probes if e <= factor * target), None)
            return "not within 5 s" if t is None else f"{t:.2f} s"

        for c in (warm, cold):
            curve = ", ".join(f"{t:.2f} s: {e:.2e}" for t, e in c.probes[:10])
            print(f"* {c.label}: within 10 % / 25 % of the settled error after {reached(c, 1.1)} / "
                  f"{reached(c, 1.25)} ({curve})")
        print(f"\nload average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
