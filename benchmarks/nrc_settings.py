"""Neural radiance caching: contenders with different render Settings side by side at equal wall time.

    python benchmarks/nrc_settings.py SCENE SECONDS LABEL=FIELD:VALUE,FIELD:VALUE ... [--torch-threads N]

e.g. ``python benchmarks/nrc_settings.py cornell 10 pt=use_cache:False cache= e0=edge_samples:0`` -- the first
contender is the baseline of the ratios. Contenders run interleaved (one frame each in turn, each with its own
clock); prints, per contender, seconds per frame, frames, and the MSE against the cached 2048-path reference after
1, 3 and SECONDS s (also minus the reference's noise, and the baseline's / its ratio of those), then the final
image's MSE split into the pixels that see the light (reference > 1.5, dilated by one pixel) and the rest. The side
runs quoted in docs/benchmarks.md (emitter supersampling, warm-up steps, query amortisation) are this script.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def parse_contender(spec: str, fields: dict) -> tuple[str, dict]:
    """``label=field:value,field:value`` -> (label, {field: value of the field's type})."""
    label, _, items = spec.partition("=")
    overrides = {}
    for item in filter(None, items.split(",")):
        key, _, value = item.partition(":")
        if key not in fields:
            raise SystemExit(f"{spec!r}: no Settings field {key!r}")
        kind = type(fields[key])
        overrides[key] = (value == "True") if kind is bool else kind(float(value)) if kind is int else kind(value)
    return label, overrides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene")
    parser.add_argument("seconds", type=float)
    parser.add_argument("contenders", nargs="+", metavar="LABEL=FIELD:VALUE,...")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--reference-spp", type=int, default=2048)
    args = parser.parse_args(argv)

    import dataclasses

    import torch
    from nrc import Contender, interleave

    from ingp.nrc.render import Renderer, Settings, dilate, reference
    from ingp.nrc.scene import load_scene
    from ingp.nrc.tracer import set_threads

    set_threads(2)
    torch.set_num_threads(args.torch_threads)
    fields = {f.name: getattr(Settings(), f.name) for f in dataclasses.fields(Settings)}
    specs = [parse_contender(s, fields) for s in args.contenders]
    ref = reference(load_scene(args.scene), 256, 256, args.reference_spp)
    for warm in (Settings(width=8, height=8, use_cache=False), Settings(width=8, height=8)):
        Renderer(load_scene("cornell"), warm).frame()  # compile outside every clock
    cs = [Contender(label, Renderer(load_scene(args.scene), Settings(**over)), ref) for label, over in specs]
    interleave(cs, args.seconds)
    noise, base = ref["noise"], cs[0]
    checks = sorted({s for s in (1.0, 3.0) if s < args.seconds} | {args.seconds})
    print(f"{args.scene}: torch {args.torch_threads} threads, reference noise {noise:.2e}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for c in cs:
        cells = []
        for s in checks:
            m, b = c.mse_at(s), base.mse_at(s)
            cells.append("-" if m is None or b is None else f"@{s:g}s {m:.3e} (-noise {m - noise:.2e}, "
                                                             f"x{(b - noise) / (m - noise):.2f})")
        print(f"{c.label:>14}  {c.elapsed / c.count:.3f} s/frame  {c.count:4d} frames  " + "  ".join(cells))
    image = ref["image"]
    light = dilate(image.max(axis=-1) > 1.5)
    for c in cs:
        err = ((c.progressive.image() - image) ** 2).mean(axis=-1)
        print(f"{c.label:>14}  final MSE: light pixels {err[light].sum() / err.size:.3e}, "
              f"the rest {err[~light].sum() / err.size:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
