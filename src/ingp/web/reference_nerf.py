"""A NumPy NeRF renderer that reads only an export (``model.json`` + ``model.bin``): the slow, obviously-correct
reference for the export and for ``static/nerf.js``. Loops over rays, no skipping, no early termination.

Example::

    model = load_export("web/")
    o, d = orbit_rays({"azimuth": 30}, 32, 32)      # camera.py
    rgb, opacity = nerf_render(model, o, d)          # (1024, 3), (1024,) over the export's background
"""

from __future__ import annotations

import math

import numpy as np

from .export_nerf import unpack_bits
from .reference import ExportedModel, field_eval, mlp


def sh_encode(v: np.ndarray, degree: int) -> np.ndarray:
    """(N, 3) directions mapped to [0, 1]^3 (tcnn's convention) -> (N, degree^2) real SH, float32.

    Index l^2 + l + m. Y = K P_l^|m|(z) times C_|m| (m > 0, with sqrt 2), S_|m| (m < 0, with sqrt 2) or 1 (m = 0),
    where C_m + i S_m = (x + i y)^m and P is the associated Legendre polynomial without its (1 - z^2)^(m/2) factor
    (the recurrences of ``encodings/spherical_harmonics.py``), evaluated here term by term in float64.
    """
    x, y, z = (v.astype(np.float64) * 2 - 1).T
    C, S = [np.ones_like(x)], [np.zeros_like(x)]
    for _ in range(1, degree):
        C, S = C + [x * C[-1] - y * S[-1]], S + [x * S[-1] + y * C[-1]]
    P = {(0, 0): np.ones_like(z)}
    for m in range(degree):
        if m > 0:
            P[m, m] = (1 - 2 * m) * P[m - 1, m - 1]
        if m + 1 < degree:
            P[m + 1, m] = (2 * m + 1) * z * P[m, m]
        for l in range(m + 2, degree):
            P[l, m] = ((2 * l - 1) * z * P[l - 1, m] - (l + m - 1) * P[l - 2, m]) / (l - m)
    out = []
    for l in range(degree):
        for m in range(-l, l + 1):
            a = abs(m)
            k = math.sqrt((2 * l + 1) * math.factorial(l - a) / (4 * math.pi * math.factorial(l + a)))
            trig = 1.0 if m == 0 else math.sqrt(2) * (C[a] if m > 0 else S[a])
            out.append(k * trig * P[l, a])
    return np.stack(out, axis=1).astype(np.float32)


def encode_position(n: dict, x: np.ndarray) -> np.ndarray:
    """The export's ``nerf`` record, (N, 3) scene points -> (N, 3) density-grid inputs u, float32: without a
    contraction u = clamp((x - lo) / (hi - lo), 0, 1); with one y = 2 x - 1, r = |y| (max |y_i| for "linf",
    sqrt(sum y_i^2) for "l2"), c = y where r <= 1 else (2 - 1 / r) y / r, u = (c + 2) / 4."""
    f = np.float32
    x = x.astype(f)
    norm = n.get("contraction")
    if not norm:
        lo, hi = n["aabb"]
        return np.clip((x - f(lo)) / f(hi - lo), 0, 1)
    if norm not in ("linf", "l2"):
        raise ValueError(f"contraction {norm!r}")
    y = f(2) * x - f(1)
    r = np.abs(y).max(axis=1, keepdims=True) if norm == "linf" else np.sqrt((y * y).sum(axis=1, keepdims=True))
    outer = r > 1
    safe = np.where(outer, r, f(1))
    c = np.where(outer, (f(2) - f(1) / safe) * y / safe, y)
    return (c + f(2)) * f(0.25)


def nerf_features(model: ExportedModel, x: np.ndarray) -> np.ndarray:
    """(N, 3) scene points -> (N, 16) density-network outputs at u = ``encode_position(x)``."""
    return field_eval(model, "density", encode_position(model.meta["nerf"], x))


def nerf_color(model: ExportedModel, features: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(N, 16) density outputs, (N, 3) unit directions -> (N, 3) rgb = sigmoid(colour MLP of [features, SH(d),
    the export's appearance code])."""
    n = model.meta["nerf"]
    sh = sh_encode((d.astype(np.float32) + 1) * 0.5, n["sh_degree"])
    code = np.asarray(n.get("appearance_code", []), np.float32)  # (D,)
    code = np.broadcast_to(code, (len(d), len(code)))
    f = model.meta["fields"]["color"]
    out = mlp(f["network"], model.arrays, np.concatenate([features, sh, code], axis=1), f["n_output_dims"])
    return 1 / (1 + np.exp(-out.astype(np.float64)))


def occupied(model: ExportedModel, x: np.ndarray) -> np.ndarray:
    """(N, 3) scene points -> (N,) bool: is the point's cell set in the finest cascade that holds it?"""
    n = model.meta["nerf"]
    K, R = n["cascades"], n["resolution"]
    bits = unpack_bits(model.arrays[n["bitfield"]], K * R ** 3)
    r = np.abs(x - np.float32(0.5)).max(axis=1)
    k = np.zeros(len(x), np.int64)
    for c in range(K - 1):  # k = clamp(floor(log2 r) + 2, 0, K - 1)
        k += r >= np.float32(2.0 ** (c - 1))
    half = (2.0 ** (k - 1)).astype(np.float32)
    lo, size = np.float32(0.5) - half, np.float32(2) * half
    ijk = np.floor((x - lo[:, None]) / size[:, None] * np.float32(R)).astype(np.int64)
    inside = ((ijk >= 0) & (ijk < R)).all(axis=1)
    ijk = ijk.clip(0, R - 1)
    return inside & bits[k * R ** 3 + (ijk[:, 0] * R + ijk[:, 1]) * R + ijk[:, 2]]


def step_starts(t0: float, n: int, dt_min: float, dt_max: float, cone: float) -> np.ndarray:
    """t_k, k < n, of t_{k+1} = t_k + clamp(t_k cone, dt_min, dt_max), float32, in march.py's closed form
    (linear, geometric, linear phases) so that rounding matches the PyTorch marcher."""
    f = np.float32
    k = np.arange(n, dtype=f)
    t0 = f(t0)
    if cone <= 0:
        return t0 + k * f(dt_min)
    g = f(math.log1p(cone))
    n_a = f(np.ceil(max((f(dt_min) / f(cone) - t0) / f(dt_min), f(0))))
    t_a = t0 + n_a * f(dt_min)
    n_b = f(np.ceil(max(np.log(f(dt_max) / f(cone) / max(t_a, f(1e-9))) / g, f(0))))
    t_b = t_a * np.exp(n_b * g)
    return np.where(k <= n_a, t0 + k * f(dt_min),
                    np.where(k - n_a <= n_b, t_a * np.exp((k - n_a) * g), t_b + (k - n_a - n_b) * f(dt_max)))


def march_ray(model: ExportedModel, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ray (3,), (3,) float32 -> sample distances t (S,) (step middles in occupied cells) and their dt (S,)."""
    n = model.meta["nerf"]
    lo, hi = n["aabb"]
    inv = 1 / np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)
    t_near = np.minimum((lo - o) * inv, (hi - o) * inv).max()
    t_far = np.maximum((lo - o) * inv, (hi - o) * inv).min()
    t_near = max(t_near, np.float32(n["near"]))
    if not t_far > t_near:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    steps = min(n["max_steps"], math.ceil((t_far - t_near) / n["min_step"]) + 1)
    if n["cone_angle"] > 0:  # steps grow: march.py then lays out the whole budget
        steps = n["max_steps"]
    t = step_starts(t_near, steps, n["min_step"], n["max_step"], n["cone_angle"])
    dt = (np.clip(t * np.float32(n["cone_angle"]), np.float32(n["min_step"]), np.float32(n["max_step"]))
          if n["cone_angle"] > 0 else np.full_like(t, np.float32(n["min_step"])))
    tm = t + np.float32(0.5) * dt
    keep = tm < t_far
    tm, dt = tm[keep], dt[keep]
    keep = occupied(model, o[None] + tm[:, None] * d[None])
    return tm[keep], dt[keep]


def nerf_render(model: ExportedModel, o: np.ndarray, d: np.ndarray, background=None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rays (N, 3) float32 -> colour (N, 3) float64 over ``background`` (default: the export's), opacity (N,).

    colour = sum_i T_i alpha_i rgb_i + (1 - sum_i T_i alpha_i) background, alpha_i = 1 - exp(-sigma_i dt_i),
    T_i = exp(-sum_{j<i} sigma_j dt_j); samples with T_i below the export's ``min_transmittance`` are left out
    (the ray stops there, as ``nerf/render.py`` and the shader do)."""
    bg = np.asarray(model.meta["nerf"]["background"] if background is None else background, np.float64)
    colour, opacity = np.zeros((len(o), 3)), np.zeros(len(o))
    for r in range(len(o)):
        t, dt = march_ray(model, o[r], d[r])
        if len(t):
            x = o[r][None] + t[:, None] * d[r][None]
            h = nerf_features(model, x)
            rgb = nerf_color(model, h, np.broadcast_to(d[r], x.shape))
            tau = np.exp(h[:, 0].astype(np.float64)) * dt
            trans = np.exp(-(np.cumsum(tau) - tau))
            w = np.where(trans >= model.meta["nerf"]["min_transmittance"], trans * (1 - np.exp(-tau)), 0)
            colour[r], opacity[r] = w @ rgb, w.sum()
        colour[r] += (1 - opacity[r]) * bg
    return colour, opacity
