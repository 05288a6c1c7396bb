"""The training loop every primitive shares: a budget in steps or seconds, a progress bar, periodic checkpoints,
and a clear stop when the loss turns NaN.

Only time spent inside ``step`` counts as training time, so checkpoints, previews and progress frames do not eat
into a ``--seconds`` budget and "PSNR after 60 s" means 60 s of training.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .errors import TrainingDiverged


@dataclass
class Budget:
    """Stop after ``steps`` total steps or ``seconds`` of total training time, whichever comes first."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.steps is None and self.seconds is None:
            raise ValueError("a budget needs steps or seconds")

    def done(self, step: int, seconds: float) -> bool:
        return (self.steps is not None and step >= self.steps) or (self.seconds is not None and seconds >= self.seconds)


@dataclass
class Progress:
    """Where a run is: steps taken, training seconds spent, last loss (as a float)."""

    step: int = 0
    seconds: float = 0.0
    loss: float = math.nan


def train(step: Callable[[int], torch.Tensor], budget: Budget, *, progress: Progress | None = None,
          save: Callable[[Progress], None] | None = None, save_every: float | None = None,
          after_step: Callable[[Progress], None] | None = None, quiet: bool = False,
          label: str = "training", hooks: Sequence = ()) -> Progress:
    """Call ``step(i)`` (one optimiser step; returns the loss) until the budget is spent.

    ``save(progress)`` runs every ``save_every`` wall seconds (default: $INGP_SAVE_EVERY, else 30; the kill tests
    save after every step with 0) and at the end; ``after_step(progress)`` after every
    step (outside the timed part). Each of ``hooks`` (e.g. ``web.live.LiveView``) has ``after_step(progress)``, called
    after every step outside the timed part, and ``close(progress)``, called once when the loop ends, however it
    ends (after the final save). A non-finite loss raises ``TrainingDiverged`` without saving, so the last
    checkpoint stays the last good one. Returns the final progress (``progress`` is updated in place).
    """
    from tqdm import tqdm

    p = progress or Progress()
    by_steps = budget.steps is not None
    total = budget.steps if by_steps else budget.seconds
    bar = tqdm(total=total, initial=p.step if by_steps else min(p.seconds, total), desc=label, leave=False,
               disable=True if quiet else None, unit="step" if by_steps else "s",
               bar_format=None if by_steps else "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{postfix}]")
    if save_every is None:
        save_every = float(os.environ.get("INGP_SAVE_EVERY", 30.0))
    last_save = time.perf_counter()
    try:
        while not budget.done(p.step, p.seconds):
            t0 = time.perf_counter()
            loss = float(step(p.step))
            dt = time.perf_counter() - t0
            if not math.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss} at step {p.step}; stopped. The last good checkpoint "
                                       f"is kept; lower the learning rate or check the input")
            p.step, p.seconds, p.loss = p.step + 1, p.seconds + dt, loss
            bar.update(1 if by_steps else min(dt, total - bar.n))
            if p.step % 16 == 0:
                bar.set_postfix_str(f"loss {loss:.4g}, step {p.step}", refresh=False)
            if after_step is not None:
                after_step(p)
            for hook in hooks:
                hook.after_step(p)
            if save is not None and time.perf_counter() - last_save >= save_every:
                save(p)
                last_save = time.perf_counter()
        if save is not None:
            save(p)
    finally:
        bar.close()
        for hook in hooks:
            hook.close(p)
    return p
