"""Quantised Laplace probabilities as integer tables, identical on every machine.

A latent ``q`` is coded as ``r = q - floor(mu)`` (``r`` in ``-R..R``) under a Laplace of mean ``frac(mu)`` and scale
``b``, with ``mu`` rounded to 1/``MU_STEPS`` and ``log b`` (nats) to 1/``LOG_SCALE_STEPS`` in
``[LOG_SCALE_MIN, LOG_SCALE_MAX]``. The CDF at the bin edges is built in Q30 integers: the three needed exponentials
per (scale, fraction) come from ``decimal`` (correctly rounded, so platform independent) and the rest from exact
integer products, so the tables never depend on a platform's libm. Masses are integers; ``constriction`` turns
them into its own fixed-point model by deterministic IEEE arithmetic (and gives every symbol a nonzero probability).
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np

LOG_SCALE_MIN, LOG_SCALE_MAX, LOG_SCALE_STEPS = -4, 4, 8   # log b in nats, 1/8 nat steps: 65 scales
N_SCALES = (LOG_SCALE_MAX - LOG_SCALE_MIN) * LOG_SCALE_STEPS + 1
MU_STEPS = 8                                                  # the mean's fraction in 1/8
ONE = 1 << 30                                                 # Q30: CDF values are integers in 0..2^30
MAX_RANGE = 4096                                              # |r| bound a file may declare


def _exp_q30(x: Decimal) -> int:
    """round(exp(-x) * 2^30) for x >= 0, correctly rounded (decimal arithmetic, no libm)."""
    with localcontext() as ctx:
        ctx.prec = 40
        return int((-x).exp() * ONE + Decimal("0.5"))


@lru_cache(maxsize=1)
def _bases() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Q30 e^(-1/b) (N_SCALES, 1); e^(-c/b), e^(-(1 - c)/b) (N_SCALES, MU_STEPS); j0 (MU_STEPS,) (see ``masses``)."""
    step = np.zeros((N_SCALES, 1), dtype=np.int64)
    right = np.zeros((N_SCALES, MU_STEPS), dtype=np.int64)
    left = np.zeros((N_SCALES, MU_STEPS), dtype=np.int64)
    j0 = np.array([2 if 2 * f > MU_STEPS else 1 for f in range(MU_STEPS)])
    for s in range(N_SCALES):
        with localcontext() as ctx:
            ctx.prec = 40
            inv_b = (Decimal(-(LOG_SCALE_MIN * LOG_SCALE_STEPS + s)) / LOG_SCALE_STEPS).exp()   # 1 / b
        step[s] = _exp_q30(inv_b)                                                              # e^(-1/b)
        for f in range(MU_STEPS):
            c = Decimal(int(j0[f])) - Decimal(1) / 2 - Decimal(f) / MU_STEPS
            right[s, f], left[s, f] = _exp_q30(c * inv_b), _exp_q30((1 - c) * inv_b)
    return step, right, left, j0


@lru_cache(maxsize=16)
def masses(R: int) -> np.ndarray:
    """(N_SCALES, MU_STEPS, 2R + 1) int64: Q30 probability mass of ``r = -R..R`` for each (scale, mean fraction).

    Mass of r = CDF(r + 1/2 - f/MU_STEPS) - CDF(r - 1/2 - f/MU_STEPS), CDF(x) = e^(x/b)/2 (x < 0), 1 - e^(-x/b)/2.
    """
    if not 0 <= R <= MAX_RANGE:
        raise ValueError(f"range {R} outside 0..{MAX_RANGE}")
    # edge j = -R .. R + 1 (column j + R) sits at j - 1/2 - f/MU_STEPS from the integer part of the mean.
    # j0 = first edge right of the mean (1, or 2 when f/MU_STEPS > 1/2); c = its distance to the mean, in [0, 1).
    cdf = np.zeros((N_SCALES, MU_STEPS, 2 * R + 2), dtype=np.int64)
    step, right, left, j0 = _bases()
    fs = np.arange(MU_STEPS)
    for k in range(R + 2):  # k-th edge on each side of the mean: e^(-(c + k)/b) and e^(-(1 - c + k)/b), exact ints
        col = j0 + k + R
        ok = col <= 2 * R + 1
        cdf[:, fs[ok], col[ok]] = ONE - (right[:, ok] >> 1)
        col = j0 - 1 - k + R
        ok = col >= 0
        cdf[:, fs[ok], col[ok]] = left[:, ok] >> 1
        right, left = (right * step) >> 30, (left * step) >> 30
    return np.diff(cdf, axis=2)


def mass_reference(R: int, scale_index: int, fraction: int) -> np.ndarray:
    """Float64 reference of one row of ``masses(R) / 2^30`` (for tests)."""
    b = np.exp(LOG_SCALE_MIN + scale_index / LOG_SCALE_STEPS)
    mu = fraction / MU_STEPS
    r = np.arange(-R, R + 2) - 0.5 - mu
    e = 0.5 * np.exp(-np.abs(r) / b)
    cdf = np.where(r < 0, e, 1 - e)
    return np.diff(cdf)


@lru_cache(maxsize=8)
def probabilities(R: int) -> np.ndarray:
    """``masses(R)`` as float64 (exact: every value is below 2^31), the form constriction takes."""
    return masses(R).astype(np.float64)


def scale_index(log_scale: np.ndarray) -> np.ndarray:
    """Float log b -> nearest table index, clipped (the float model's view of what the coder will use)."""
    return np.clip(np.rint((log_scale - LOG_SCALE_MIN) * LOG_SCALE_STEPS), 0, N_SCALES - 1).astype(np.int64)


def bits_of(symbols: np.ndarray, R: int, scales: np.ndarray, fractions: np.ndarray) -> float:
    """Ideal code length in bits of ``symbols`` (r + R, int) under rows (scales, fractions) of the table."""
    m = masses(R)
    p = m[scales, fractions, symbols].astype(np.float64) / m.sum(axis=-1)[scales, fractions]
    return float(-np.log2(np.maximum(p, 2.0 ** -24)).sum())
