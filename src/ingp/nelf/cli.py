"""``ingp nerf distill``: argument parsing only (registered by ``ingp.nerf.cli``); the handler imports the heavy
code when it runs."""

from __future__ import annotations

from pathlib import Path

from ..cli import add_device_argument, positive_float, positive_int
from ..errors import InputError

DEFAULT_SECONDS = 600.0


def run_distill(args) -> int:
    from ..config import load_config
    from ..train import Budget
    from .distill import distill
    from .model import default_student_config

    config = None
    if args.config is not None and not args.resume:
        given = load_config(args.config)
        if not isinstance(given, dict):
            raise InputError(f"--config {args.config}: expected a JSON object")
        config = {**default_student_config(given.get("student", args.student)),
                  **{k: v for k, v in given.items() if k != "parent"}}
    training = {k: v for k, v in (("pseudo_rays", args.pseudo_rays), ("batch_size", args.batch_size)) if v}
    budget = Budget(steps=args.steps, seconds=args.seconds if args.steps or args.seconds else DEFAULT_SECONDS)
    m = distill(args.run, args.out, budget=budget, student=args.student, model_config=config, training=training,
                seed=args.seed, device=args.device, quiet=args.quiet, resume=args.resume,
                overwrite=args.force)
    teacher = f" (teacher {m['teacher_psnr']:.2f} dB)" if m.get("teacher_psnr") is not None else ""
    print(f"{m['student']} student: PSNR {m['psnr']:.2f} dB{teacher}, SSIM {m['ssim']:.4f} on {m['eval_views']} "
          f"held-out views after {m['steps']} steps in {m['seconds']:.1f} s + {m['pseudo_seconds']:.1f} s of "
          f"teacher pseudo-data; wrote {args.out}/")
    return 0


def add_distill_parser(verbs) -> None:
    p = verbs.add_parser("distill", help="distil a NeRF run into a light field (one network call per pixel)",
                         description="Train a neural light field (NeLF) student on RUN, a NeRF run: rays the NeRF "
                                     "renders from cameras around its training cameras (cached in OUT/pseudo/, "
                                     "resumable) plus the real training pixels. Writes config.json, "
                                     "model.safetensors, checkpoint.pt, metrics.json (PSNR/SSIM on the teacher's "
                                     "held-out views, beside the teacher's) and eval/.")
    p.add_argument("run", type=Path, help="the teacher: a NeRF run folder (ingp nerf fit --out)")
    p.add_argument("--out", type=Path, required=True, help="NeLF run folder to write (created if missing)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=positive_float,
                        help=f"training time budget in seconds, pseudo-data not counted (default: {DEFAULT_SECONDS:g})")
    budget.add_argument("--steps", type=positive_int, help="number of training steps")
    p.add_argument("--student", choices=("grid", "r2l"), default="grid",
                   help="grid: 4-D hash-grid light field (default); r2l: R2L-style residual MLP over ray points")
    p.add_argument("--config", type=Path, help="student config JSON (ingp.nelf.model.default_student_config's "
                                               "keys); // comments allowed")
    p.add_argument("--pseudo-rays", type=positive_int, help="teacher-rendered rays to cache (default 2^23, ~300 MB)")
    p.add_argument("--batch-size", type=positive_int, help="rays per step (default 2^14)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the result")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (its pseudo-data cache, then its training; budgets count the "
                        "whole run)")
    p.set_defaults(handler=run_distill)
