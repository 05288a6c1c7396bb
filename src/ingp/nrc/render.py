"""The per-frame loop of neural radiance caching, and converged reference renders.

One frame (``Renderer.frame``), for a ``width x height`` image at one path per pixel:

1. trace (numba): every path gathers emission and next-event estimates until it ends in a cache query; a random
   ``train_fraction`` of the paths go on as training paths, recording each vertex, and end in the cache again at
   their tail by NRC's path-spread heuristic (``unbiased_fraction`` of them ignore the cache and run until Russian
   roulette stops them);
2. inference (torch): one batched cache query for all rendering ends and training tails; the pixel is what the path
   gathered plus its throughput times the cache's radiance (``cache_term``);
3. training (torch): targets walk back from each tail (``L_s(v) = nee_v + ratio_v L_s(v+1)``) and the cache takes
   ``steps`` optimiser steps on batches of those vertices -- after the frame used it, as NRC does.

Where a rendering path ends and what the cache holds (measured in ``benchmarks/nrc.py``; docs/benchmarks.md):

* default: the cache holds the *indirect* scattered light only (``nee_at_query``: each query vertex takes its own
  next-event estimate, so sharp shadows of direct light never go through the network) and every rendering path
  ends at its first vertex (``query_primary``): the pixel is emission + one light sample + the cache, so its noise
  is that of direct lighting alone. This deviates from NRC, whose paths end where the spread heuristic says, in a
  cache of all scattered light; on a CPU at 1 path per pixel, ending after the first bounce kept the first bounce's
  noise (the Cornell box's paths end at their second vertex anyway) and cost as much as a plain frame.
* NRC as published: ``query_primary=False, nee_at_query=False`` (``ingp nrc render --query spread --cache-light
  scattered``).

Pixel jitter and the first vertex's light sample are stratified over frames (``stratified``: Roberts' R2 / R3
sequences, rotated per pixel), for the plain path tracer too; with iid jitter the light's edges alone made 90 % of
the Cornell box's per-frame variance at 256², which no cache can remove. What was left of it (most of the
Cornell box's error after 10 s, the same with or without a cache) shrinks with ``edge_samples`` extra camera rays
per frame, for the directly seen emission only, at the pixels of emitters' images. The shown image is
:class:`Progressive`: the mean of what the paths gathered plus a ``k^p``-weighted mean of the cache's part, so
the young cache of the first frames fades fast.

``use_cache=False`` is the plain path tracer (same code, paths end by Russian roulette only).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import atomic_write
from .cache import RadianceCache, cache_config
from .scene import Scene
from .tracer import first_emission, trace_paths

TRACER_VERSION = 2  # bump when the estimator changes: cached references are keyed on it


@dataclass
class Settings:
    width: int = 256
    height: int = 256
    use_cache: bool = True
    spread_c: float = 0.01          # NRC's c: end the path once its spread exceeds c * a0
    train_fraction: float = 1 / 8   # share of the paths extended as training paths (8192 at 256²)
    unbiased_fraction: float = 1 / 16  # training paths whose tail ignores the cache
    steps: int = 4                  # optimiser steps per frame
    warmup_steps: int = 8           # ... in the first warmup_frames frames: the young cache learns faster
    warmup_frames: int = 16
    batch_size: int = 4096          # training vertices per step
    max_vertices: int = 12          # recorded vertices per training path
    max_depth: int = 64             # hard cap on path length (Russian roulette ends nearly all paths before)
    rr_depth: int = 3
    position_encoding: str = "hashgrid"
    seed: int = 1337
    query_primary: bool = True      # end every rendering path in the cache at its first vertex (not NRC's spread)
    nee_at_query: bool = True       # the cache holds indirect light only; query vertices take their own NEE
    stratified: bool = True         # pixel jitter from a per-pixel rotated R2 sequence over frames (else uniform)
    cache_weight_power: float = 2.0  # the shown image weights frame k's cache part by k^p (see Progressive)
    light_samples: int = 1          # next-event samples at the first vertex (plain path tracing and cache alike)
    edge_samples: int = 16          # extra camera rays per frame for directly seen emission at emitters' pixels


class Renderer:
    """Renders frames of ``scene`` with (or without) a radiance cache trained on the fly."""

    def __init__(self, scene: Scene, settings: Settings | None = None, *, device: str = "cpu",
                 config: dict | None = None):
        """``config``: the cache's tcnn config (default: ``cache_config(settings.position_encoding)``)."""
        self.scene = scene
        self.settings = settings or Settings()
        s = self.settings
        self.cache = RadianceCache(config or cache_config(s.position_encoding), seed=s.seed, device=device) \
            if s.use_cache else None
        self.rng = np.random.default_rng(s.seed)
        self.index = 0
        self.cache_term = None  # (H, W, 3) after each cached frame: the part of its image the cache gave
        # per-pixel Cranley-Patterson rotation of the R2 sequence: each frame's jitter is uniform in the pixel, and
        # a pixel's jitters over frames are well spread, so edge aliasing averages out faster than with iid jitter
        # (the first vertex's light sample likewise, from R3)
        self.rotation = self.rng.random((s.height * s.width, 2 + 3 * s.light_samples)) if s.stratified else None
        self.sees_emitter = np.zeros((s.height, s.width), dtype=np.bool_)  # find_emitters or a camera ray saw one
        self.emitters_of = None  # the scene find_emitters last looked at
        self.edge_rotation = np.random.default_rng(s.seed + 1).random((s.height * s.width, 2))

    def camera_rays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """This frame's camera rays ``(orig, dirs)`` (H*W, 3) and first-vertex light samples (H*W, 3 k) (None
        without ``stratified``: then the jitter comes from ``self.rng`` and the light sample from the tracer)."""
        s = self.settings
        if self.rotation is None:
            return (*self.scene.camera.rays(s.width, s.height, self.rng), None)
        jitter = ((self.rotation[:, :2] + r_sequence(self.index, 2)) % 1.0).reshape(s.height, s.width, 2)
        orig, dirs = self.scene.camera.rays(s.width, s.height, jitter=jitter)
        k = s.light_samples  # frame n's light samples are points n k .. n k + k - 1 of R3
        light = np.concatenate([r_sequence(self.index * k + j, 3) for j in range(k)])
        return orig, dirs, (self.rotation[:, 2:] + light) % 1.0

    def frame(self) -> tuple[np.ndarray, dict]:
        """One frame: ``(image (H, W, 3) linear radiance, seconds {"tracing", "inference", "training"})``."""
        s, scene = self.settings, self.scene
        n = s.width * s.height
        orig, dirs, prim_u = self.camera_rays()
        slots = np.full(n, -1, dtype=np.int64)
        n_train = max(1, round(s.train_fraction * n)) if self.cache is not None else 0
        unbiased = np.zeros(max(n_train, 1), dtype=np.bool_)
        if n_train:
            slots[self.rng.choice(n, n_train, replace=False)] = np.arange(n_train)
            unbiased[:n_train] = self.rng.random(n_train) < s.unbiased_fraction
        seed = int(self.rng.integers(1 << 62))
        t0 = time.perf_counter()
        fr = trace_paths(scene, orig, dirs, seed, use_cache=self.cache is not None, spread_c=s.spread_c,
                         max_depth=s.max_depth, rr_depth=s.rr_depth, train_slot=slots, train_unbiased=unbiased,
                         max_vertices=s.max_vertices, query_primary=s.query_primary, nee_at_query=s.nee_at_query,
                         prim_u=prim_u, first_light=s.light_samples)
        if s.edge_samples:
            if self.emitters_of is not self.scene:  # the first frame, or the scene changed (a light moved)
                self.find_emitters()
            self.supersample_emission(fr.radiance, fr.emitted)
        t1 = time.perf_counter()
        image = fr.radiance
        if self.cache is not None:
            queries = np.concatenate([fr.q_feat[fr.q_valid], fr.tail_feat[:n_train]])
            predicted = self.cache.predict(queries)
            n_q = int(fr.q_valid.sum())
            self.cache_term = np.zeros_like(image)
            self.cache_term[fr.q_valid] = fr.q_beta[fr.q_valid] * predicted[:n_q]
            image = image + self.cache_term
            t2 = time.perf_counter()
            if n_train:
                from .tracer import training_targets

                features, targets = training_targets(fr, predicted[n_q:])
                steps = s.warmup_steps if self.index < s.warmup_frames else s.steps
                self.cache.train(features, targets, steps=steps, batch_size=s.batch_size)
            t3 = time.perf_counter()
        else:
            t2 = t3 = t1
        if not np.isfinite(image).all():
            raise InputError(f"scene {scene.name!r}: the path tracer produced non-finite radiance in frame "
                             f"{self.index} (check emission values)")
        self.index += 1
        if self.cache is not None:
            self.cache_term = self.cache_term.reshape(s.height, s.width, 3)
        return image.reshape(s.height, s.width, 3), {"tracing": t1 - t0, "inference": t2 - t1, "training": t3 - t2}

    def emitter_pixels(self) -> np.ndarray:
        """(H, W) bool: the pixels of emitters' images -- ``find_emitters`` or a camera ray of theirs saw an
        emitter -- and their 8 neighbours."""
        return dilate(self.sees_emitter)

    def find_emitters(self, grid: int = 2) -> None:
        """Mark the pixels whose ``grid`` x ``grid`` regular points see an emitter; run before the first frame of
        a scene (the frame's own rays may not choose its pixels to supersample, and an unsupersampled first frame
        weighs on the mean for long)."""
        s = self.settings
        points = (np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1).reshape(-1, 1, 2) + 0.5) / grid
        n = s.width * s.height
        jitter = np.broadcast_to(points, (grid * grid, n, 2)).reshape(-1, 2)
        seen = first_emission(self.scene, *self.scene.camera.rays(s.width, s.height, jitter=jitter,
                                                                   pixels=np.tile(np.arange(n), grid * grid)))
        self.sees_emitter |= seen.reshape(grid * grid, s.height, s.width, 3).any(axis=(0, 3))
        self.emitters_of = self.scene

    def supersample_emission(self, radiance: np.ndarray, seen: np.ndarray) -> None:
        """Replace, in place, the directly seen emission ``seen`` (H*W, 3) in ``radiance`` (H*W, 3) at the
        pixels of emitters' images (``emitter_pixels``) by the mean over the frame's ray and ``edge_samples``
        more, stratified over frames (R2 rotated per pixel). Each pixel's estimate stays unbiased: the set of
        pixels comes from a pre-pass and earlier frames only (this frame's hits join it afterwards; chosen by
        them, a pixel would be averaged exactly when its own ray hit). The aliasing of an emitter's edges -- at
        1 path per pixel most of the Cornell box's error, the same with or without a cache -- falls
        several-fold."""
        s, scene = self.settings, self.scene
        pixels = np.flatnonzero(self.emitter_pixels())
        self.sees_emitter |= seen.any(axis=1).reshape(s.height, s.width)
        if not len(pixels):
            return
        k = s.edge_samples
        points = np.stack([r_sequence(self.index * k + j, 2) for j in range(k)])  # (k, 2)
        jitter = (self.edge_rotation[pixels][None] + points[:, None]) % 1.0  # (k, M, 2)
        o, d = scene.camera.rays(s.width, s.height, jitter=jitter.reshape(-1, 2), pixels=np.tile(pixels, k))
        extra = first_emission(scene, o, d).reshape(k, len(pixels), 3).sum(axis=0)
        radiance[pixels] += (seen[pixels] + extra) / (k + 1) - seen[pixels]

    def cache_image(self, light_samples: int = 16) -> np.ndarray:
        """What the cache says the image is at the pixel centres' first hits: emission plus the cache's scattered
        radiance there, (H, W, 3); with ``nee_at_query`` the cache holds the indirect part and the direct part is
        the mean of ``light_samples`` stratified next-event samples. Noise-free (nearly, with ``nee_at_query``), so
        its MSE against the reference measures the cache's error (plus pixel-centre aliasing at edges); it does
        not train the cache."""
        s = self.settings
        orig, dirs = self.scene.camera.rays(s.width, s.height)
        rounds = light_samples if s.nee_at_query else 1
        rotation = np.random.default_rng(0).random((len(orig), 3))
        direct = np.zeros((len(orig), 3))
        for k in range(rounds):
            fr = trace_paths(self.scene, orig, dirs, k, use_cache=True, query_primary=True, max_depth=2,
                             nee_at_query=s.nee_at_query, prim_u=(rotation + r_sequence(k, 3)) % 1.0)
            direct += fr.radiance / rounds
        image = direct
        if self.cache is not None:
            image[fr.q_valid] += fr.q_beta[fr.q_valid] * self.cache.predict(fr.q_feat[fr.q_valid])
        return image.reshape(s.height, s.width, 3)


class Progressive:
    """The shown image after n frames: the plain mean of what the paths gathered themselves (emission, next-event
    estimates: unbiased and noisy) plus a ``k^power``-weighted mean of the frames' cache parts (throughput times
    the cache's answer: nearly noise-free, but biased while the cache is young). Weighting frame k by k^p makes the
    first frames' untrained cache fade as 1/n^(p+1) instead of 1/n, at no cost in noise, since that part has
    almost none; p = 0 is the plain mean of the frames. Without a cache the image is the plain mean."""

    def __init__(self, shape: tuple, power: float = 0.0):
        self.power = float(power)
        self.gathered = np.zeros(shape)
        self.cached = np.zeros(shape)
        self.weight = 0.0
        self.count = 0

    def add(self, image: np.ndarray, cache_term: np.ndarray | None = None) -> None:
        """One frame: ``image`` (H, W, 3) as :meth:`Renderer.frame` returns it, ``cache_term`` its cache part
        (``Renderer.cache_term``; None: no cache)."""
        self.count += 1
        if cache_term is None:
            self.gathered += image
            return
        w = float(self.count) ** self.power
        self.gathered += image - cache_term
        self.cached += w * cache_term
        self.weight += w

    def image(self) -> np.ndarray:
        """The current estimate (H, W, 3)."""
        shown = self.gathered / max(self.count, 1)
        return shown + self.cached / self.weight if self.weight > 0 else shown

    def reset(self) -> None:
        self.gathered[:] = 0
        self.cached[:] = 0
        self.weight, self.count = 0.0, 0


def r_sequence(index: int, dims: int) -> np.ndarray:
    """The ``index``-th point of Roberts' R_d low-discrepancy sequence in [0, 1)^dims, shape (dims,): the fractional
    parts of ``0.5 + (index + 1) * phi_d^-(k+1)``, with ``phi_d`` the root of ``x^(d+1) = x + 1`` above 1."""
    phi = 2.0
    for _ in range(60):  # fixed-point iteration, converges to double precision well within 60 steps
        phi = (1.0 + phi) ** (1.0 / (dims + 1))
    alpha = phi ** -np.arange(1, dims + 1, dtype=np.float64)
    return (0.5 + alpha * (index + 1)) % 1.0


def dilate(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: ``mask`` (H, W) or any of its 8 neighbours."""
    h, w = mask.shape
    padded = np.pad(mask, 1)
    return np.logical_or.reduce([padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                                 for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def mse(image: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean((np.asarray(image, np.float64) - reference) ** 2))


def reference_dir() -> Path:
    """Where converged references are kept: ``$INGP_CACHE_DIR/nrc`` or ``~/.cache/ingp/nrc``."""
    root = os.environ.get("INGP_CACHE_DIR")
    return Path(root) / "nrc" if root else Path.home() / ".cache" / "ingp" / "nrc"


def reference(scene: Scene, width: int, height: int, spp: int = 256, *, folder: Path | None = None,
              seed: int = 7, progress=None) -> dict:
    """A converged plain path-traced render, computed once and cached on disk (keyed by scene, size, spp and the
    tracer version). Returns ``{"image": (H, W, 3), "noise": the estimated MSE of the reference itself, "spp"}``;
    ``noise`` is the mean squared difference of two independent halves divided by 4 (the variance of the mean), so
    ``MSE - noise`` estimates a render's error against the true image."""
    key = json.dumps({"scene": scene.name, "params": scene.params, "w": width, "h": height, "spp": spp,
                      "tracer": TRACER_VERSION, "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(folder) if folder is not None else reference_dir()
    path = folder / f"{scene.name}_{width}x{height}_{spp}spp_{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return {"image": data["image"], "noise": float(data["noise"]), "spp": spp, "path": str(path)}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed
    settings = Settings(width=width, height=height, use_cache=False, seed=seed)
    renderer = Renderer(scene, settings)
    halves = [np.zeros((height, width, 3)), np.zeros((height, width, 3))]
    for k in range(spp):
        image, _ = renderer.frame()
        halves[k % 2] += image
        if progress is not None:
            progress(k + 1, spp)
    a, b = halves[0] / ((spp + 1) // 2), halves[1] / max(spp // 2, 1)
    image = (halves[0] + halves[1]) / spp
    noise = float(np.mean((a - b) ** 2) / 4)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: np.savez(tmp, image=image.astype(np.float32), noise=noise))
    return {"image": image, "noise": noise, "spp": spp, "path": str(path)}


def settings_dict(settings: Settings) -> dict:
    return asdict(settings)
