"""Neural radiance caching at 256² on the CPU: plain path tracing vs path tracing + cache at equal wall time.

    python benchmarks/nrc.py [--seconds 60] [--encoding-seconds 20] [--threads 2]

Prints markdown tables:

1. per scene, the MSE against the converged reference after 1 / 10 / 60 s of each contender's own frame time, and
   ``MSE - reference noise`` (the reference's own variance, estimated from two independent halves); the cached
   render both as the plain mean of its frames and weighted by frame index (its untrained first frames fade);
2. the bias the cache adds: the long accumulation's MSE split into its variance (even vs odd frames) and the rest;
3. seconds per frame split into tracing / inference / training;
4. the cache's position encoding: hash grid vs triangle wave (NRC's) vs one-blob, at equal time;
5. the animated case: the light jumps; a cache trained on the old light vs a fresh cache vs plain path tracing,
   MSE of the accumulation since the change at 0.5 / 1 / 2 / 5 s after it.

Contenders are run *interleaved* (one frame each in turn, each with its own clock), so that a machine shared with
other jobs slows them alike; the load average is printed. References are computed once and cached
(``~/.cache/ingp/nrc``); computing them takes a while (256 paths per pixel; "ref noise" is their own variance).
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
        self.label, self.renderer, self.ref = label, renderer, reference
        self.probe, self.probes = probe, []
        self.elapsed, self.count = 0.0, 0
        self.total = np.zeros_like(reference["image"], dtype=np.float64)
        self.halves = [np.zeros_like(self.total), np.zeros_like(self.total)]
        self.split = {"tracing": 0.0, "inference": 0.0, "training": 0.0}
        self.curve = []  # (elapsed seconds, mse of the progressive image)
        # frames weighted by their index (1, 2, 3, ...): a cache's untrained first frames fade as 1/n² instead
        # of 1/n, at 4/3 the variance of the plain mean for equal per-frame noise
        self.weighted, self.weight = np.zeros_like(self.total), 0.0
        self.weighted_curve = []

    def step(self):
        t0 = time.perf_counter()
        image, split = self.renderer.frame()
        self.elapsed += time.perf_counter() - t0
        if self.probe is not None:  # outside the clock
            self.probes.append((self.elapsed, self.probe(self)))
        for k, v in split.items():
            self.split[k] += v
        self.total += image
        self.halves[self.count % 2] += image
        self.count += 1
        self.curve.append((self.elapsed, float(np.mean((self.total / self.count - self.ref["image"]) ** 2))))
        self.weighted += self.count * image
        self.weight += self.count
        self.weighted_curve.append((self.elapsed,
                                    float(np.mean((self.weighted / self.weight - self.ref["image"]) ** 2))))

    def mse_at(self, seconds, weighted=False):
        """MSE of the progressive image as it stood after ``seconds`` of this contender's time (None if no frame
        had finished by then)."""
        done = [m for t, m in (self.weighted_curve if weighted else self.curve) if t <= seconds + 1e-9]
        return done[-1] if done else None

    def variance(self):
        """Variance of the progressive mean, from the even and odd frames' means."""
        n = self.count
        a, b = self.halves[0] / ((n + 1) // 2), self.halves[1] / max(n // 2, 1)
        return float(np.mean((a - b) ** 2) / 4)


def interleave(contenders, seconds):
    while any(c.elapsed < seconds for c in contenders):
        for c in contenders:
            if c.elapsed < seconds:
                c.step()


def fmt(x):
    return "–" if x is None else f"{x:.3e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--encoding-seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reference-spp", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scenes", nargs="+", default=["cornell", "glossy"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["equal-time", "encodings", "animated"])
    args = parser.parse_args(argv)

    import torch

    from ingp.nrc.render import Renderer, Settings, reference
    from ingp.nrc.scene import load_scene
    from ingp.nrc.tracer import set_threads

    torch.set_num_threads(1)  # the cache's small ops: one thread (see ingp/nrc/cli.py); the tracer gets --threads
    set_threads(args.threads)
    size = args.size
    print(f"# NRC benchmark: {size}x{size}, tracer {args.threads} threads, cache 1 thread, torch {torch.__version__}, "
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

    def contender(label, name, use_cache, encoding="hashgrid", seed=1337, **params):
        settings = Settings(width=size, height=size, use_cache=use_cache, position_encoding=encoding, seed=seed)
        return Contender(label, Renderer(load_scene(name, **params), settings), ref(name, **params))

    checkpoints = sorted({1.0, 10.0, args.seconds})
    if "equal-time" not in args.skip:
        rows, bias_rows, time_rows = [], [], []
        for name in args.scenes:
            pt = contender("path tracing", name, False)
            caches = [contender("+ cache (hash grid)", name, True),
                      contender("+ cache (triangle wave)", name, True, encoding="trianglewave")]
            interleave([pt, *caches], args.seconds)
            noise = pt.ref["noise"]
            for c in (pt, *caches):
                for label, weighted in (("", False), (", index-weighted mean", True)):
                    if weighted and c is pt:
                        continue
                    ms = [c.mse_at(s, weighted) for s in checkpoints]
                    rows.append(f"| {name} | {c.label}{label} | " + " | ".join(fmt(m) for m in ms) + " | "
                                + " | ".join(fmt(None if m is None else m - noise) for m in ms) + f" | {c.count} |")
                var = c.variance()
                final = c.curve[-1][1]
                bias_rows.append(f"| {name} | {c.label} | {c.count} | {fmt(final)} | {fmt(var)} | {fmt(noise)} | "
                                 f"{fmt(final - var - noise)} |")
                time_rows.append(f"| {name} | {c.label} | " + " | ".join(
                    f"{c.split[k] / c.count:.3f}" for k in ("tracing", "inference", "training"))
                    + f" | {c.elapsed / c.count:.3f} |")
            for c in caches:
                for label, weighted in (("", False), (", index-weighted", True)):
                    ratio = [None if pt.mse_at(s) is None or c.mse_at(s, weighted) is None
                             else pt.mse_at(s) / c.mse_at(s, weighted) for s in checkpoints]
                    rows.append(f"| {name} | **MSE ratio PT / {c.label[2:]}{label}** | " + " | ".join(
                        "–" if r is None else f"**{r:.2f}×**" for r in ratio) + " | " * (len(checkpoints) + 1) + "|")
            print(f"{name} done, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        s_cols = " | ".join(f"{s:g} s" for s in checkpoints)
        print(f"## MSE vs the reference at equal time (own frame time; interleaved)\n")
        print(f"| scene | renderer | {s_cols} | {' | '.join(f'{s:g} s − ref noise' for s in checkpoints)} | frames |")
        print("|---|---|" + "---|" * (2 * len(checkpoints) + 1))
        print("\n".join(rows))
        print(f"\n## Bias: the {args.seconds:g} s accumulation's MSE = variance (even/odd frames) + reference noise "
              "+ bias²\n")
        print("| scene | renderer | frames | MSE | variance | reference noise | bias² (rest) |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(bias_rows))
        print("\n## Seconds per frame\n")
        print("| scene | renderer | tracing | inference | training | total |")
        print("|---|---|---|---|---|---|")
        print("\n".join(time_rows))
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
        from ingp.nrc.render import mse

        def cache_error(c):
            return mse(c.renderer.cache_image(), c.ref["image"])

        old_ref, new_ref = ref("cornell", light_x=0.5), ref("cornell", light_x=0.25)
        warm = contender("cache trained on the old light", "cornell", True, light_x=0.5)
        interleave([warm], 10.0)
        before = cache_error(warm)
        warm.renderer.scene = load_scene("cornell", light_x=0.25)
        warm = Contender(warm.label, warm.renderer, new_ref, probe=cache_error)  # new accumulation and clock
        jump = cache_error(warm)
        cold = contender("fresh cache", "cornell", True, light_x=0.25, seed=99)
        cold.probe = cache_error
        pt = contender("path tracing", "cornell", False, light_x=0.25)
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
              "reference; includes edge aliasing):\n")
        print(f"* before the jump (vs the old light's reference): {before:.3e}; right after it (vs the new): "
              f"{jump:.3e}")
        for c in (warm, cold):
            recovered = next((t for t, e in c.probes if e <= 1.1 * before), None)
            curve = ", ".join(f"{t:.2f} s: {e:.2e}" for t, e in c.probes[:8])
            print(f"* {c.label}: back within 10% of the pre-jump error after "
                  f"{'not within 5 s' if recovered is None else f'{recovered:.2f} s'} ({curve})")
        print(f"\nload average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
