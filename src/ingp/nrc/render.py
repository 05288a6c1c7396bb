"""The per-frame loop of neural radiance caching, and converged reference renders.

One frame (``Renderer.frame``), for a ``width x height`` image at one path per pixel:

1. trace (numba): every path gathers emission + next-event estimates until the path-spread heuristic ends it in
   the cache; a random ``train_fraction`` of the paths go on as training paths, recording each vertex, and end in
   the cache again at their tail (``unbiased_fraction`` of them ignore the cache and run until Russian roulette
   stops them);
2. inference (torch): one batched cache query for all rendering ends and training tails; the pixel is what the path
   gathered plus its throughput times the cache's radiance;
3. training (torch): targets walk back from each tail (``L_s(v) = nee_v + ratio_v L_s(v+1)``) and the cache takes
   ``steps`` optimiser steps on batches of those vertices -- after the frame used it, as NRC does.

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
from .tracer import trace_paths

TRACER_VERSION = 1  # bump when the estimator changes: cached references are keyed on it


@dataclass
class Settings:
    width: int = 256
    height: int = 256
    use_cache: bool = True
    spread_c: float = 0.01          # NRC's c: end the path once its spread exceeds c * a0
    train_fraction: float = 1 / 16  # share of the paths extended as training paths (4096 at 256²)
    unbiased_fraction: float = 1 / 16  # training paths whose tail ignores the cache
    steps: int = 2                  # optimiser steps per frame
    batch_size: int = 4096          # training vertices per step
    max_vertices: int = 12          # recorded vertices per training path
    max_depth: int = 64             # hard cap on path length (Russian roulette ends nearly all paths before)
    rr_depth: int = 3
    position_encoding: str = "hashgrid"
    seed: int = 1337


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

    def frame(self) -> tuple[np.ndarray, dict]:
        """One frame: ``(image (H, W, 3) linear radiance, seconds {"tracing", "inference", "training"})``."""
        s, scene = self.settings, self.scene
        n = s.width * s.height
        orig, dirs = scene.camera.rays(s.width, s.height, self.rng)
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
                         max_vertices=s.max_vertices)
        t1 = time.perf_counter()
        image = fr.radiance
        if self.cache is not None:
            queries = np.concatenate([fr.q_feat[fr.q_valid], fr.tail_feat[:n_train]])
            predicted = self.cache.predict(queries)
            n_q = int(fr.q_valid.sum())
            image = image.copy()
            image[fr.q_valid] += fr.q_beta[fr.q_valid] * predicted[:n_q]
            t2 = time.perf_counter()
            if n_train:
                from .tracer import training_targets

                features, targets = training_targets(fr, predicted[n_q:])
                self.cache.train(features, targets, steps=s.steps, batch_size=s.batch_size)
            t3 = time.perf_counter()
        else:
            t2 = t3 = t1
        if not np.isfinite(image).all():
            raise InputError(f"scene {scene.name!r}: the path tracer produced non-finite radiance in frame "
                             f"{self.index} (check emission values)")
        self.index += 1
        return image.reshape(s.height, s.width, 3), {"tracing": t1 - t0, "inference": t2 - t1, "training": t3 - t2}


    def cache_image(self) -> np.ndarray:
        """What the cache alone says the image is: emission seen at the pixel centres' first hits plus the cache's
        scattered radiance there, (H, W, 3). Noise-free, so its MSE against the reference measures the cache's
        error directly (plus pixel-centre aliasing at edges); it does not train the cache."""
        s = self.settings
        orig, dirs = self.scene.camera.rays(s.width, s.height)
        # spread_c = -1: every path "spreads" at its first vertex, so it ends there in a cache query
        fr = trace_paths(self.scene, orig, dirs, 0, use_cache=True, spread_c=-1.0, max_depth=2)
        image = fr.radiance.copy()
        if self.cache is not None:
            image[fr.q_valid] += fr.q_beta[fr.q_valid] * self.cache.predict(fr.q_feat[fr.q_valid])
        return image.reshape(s.height, s.width, 3)


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
