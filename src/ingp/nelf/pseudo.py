"""Pseudo-data: rays from cameras around the teacher's training cameras, coloured by the teacher NeRF, cached on disk.

A pseudo camera is a training camera turned about the scene centre by a random rotation (uniform axis, angle up to
``max_angle`` degrees) and moved along its line to the centre by a factor in [1 - ``distance_jitter``, 1 +
``distance_jitter``]; one ray goes through a uniformly random point of its image. The cache is two memory-mapped
``.npy`` files in RUN/pseudo/ -- ``rays.npy`` (N, 6) float32 origin + unit direction, ``rgb.npy`` (N, 3) float32
(the teacher's colour over white) -- and ``progress.json`` with how many leading rows are done. Chunk ``j`` is drawn
from a generator seeded with (seed, j), so an interrupted cache continues where it stopped, bit for bit the same.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..nerf.data import Scene
from ..nerf.rays import pixel_rays
from ..runs import read_json, write_json

CHUNK = 1 << 15  # rays per teacher call and per progress record


def random_rotations(n: int, max_angle: float, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations about uniformly random axes by angles uniform in [0, max_angle] radians (Rodrigues)."""
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=1)
    angle = torch.rand(n, generator=gen) * max_angle
    k = torch.zeros(n, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    return torch.eye(3) + s * k + (1 - c) * (k @ k)


def pseudo_rays(scene: Scene, n: int, gen: torch.Generator, centre: torch.Tensor, max_angle_deg: float = 20.0,
                distance_jitter: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """n rays (origins (n, 3), unit directions (n, 3)) through random pixels of perturbed training cameras."""
    cam = torch.randint(len(scene), (n,), generator=gen)
    rot = random_rotations(n, math.radians(max_angle_deg), gen)
    c2w = scene.c2w[cam]  # (n, 3, 4)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * distance_jitter
    pos = centre + scale[:, None] * torch.einsum("nij,nj->ni", rot, c2w[:, :, 3] - centre)
    new = torch.cat([rot @ c2w[:, :, :3], pos[:, :, None]], dim=2)
    u = torch.rand(n, generator=gen) * scene.width
    v = torch.rand(n, generator=gen) * scene.height
    return pixel_rays(new, scene.intrinsics[cam], scene.distortion[cam], u, v, scene.fisheye)


class PseudoCache:
    """RUN/pseudo/: ``total`` rays, of which the first ``done`` are written (see the module docstring)."""

    def __init__(self, folder: Path, total: int, seed: int):
        self.folder, self.total, self.seed = Path(folder), int(total), int(seed)
        self.folder.mkdir(parents=True, exist_ok=True)
        progress = self.folder / "progress.json"
        info = read_json(progress) if progress.is_file() else None
        fresh = info is None or info.get("total") != self.total or info.get("seed") != self.seed
        mode = "w+" if fresh or not (self.folder / "rays.npy").is_file() else "r+"
        if mode == "w+":
            info = {"total": self.total, "seed": self.seed, "done": 0, "seconds": 0.0}
        self.rays = np.lib.format.open_memmap(self.folder / "rays.npy", mode=mode, dtype=np.float32,
                                              shape=(self.total, 6))
        self.rgb = np.lib.format.open_memmap(self.folder / "rgb.npy", mode=mode, dtype=np.float32,
                                             shape=(self.total, 3))
        self.done, self.seconds = int(info["done"]), float(info["seconds"])
        if mode == "w+":
            self._record()

    def _record(self) -> None:
        write_json(self.folder / "progress.json", {"total": self.total, "seed": self.seed, "done": self.done,
                                                   "seconds": self.seconds})

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def fill(self, teacher, scene: Scene, centre: torch.Tensor, *, quiet: bool = False, **camera) -> None:
        """Render the missing rows with ``teacher(o, d) -> rgb (N, 3)``, one chunk at a time; each chunk is flushed
        before ``done`` moves past it, so a kill loses at most the chunk in flight."""
        from tqdm import tqdm

        bar = tqdm(total=self.total, initial=self.done, desc="teacher pseudo-data", unit="ray", unit_scale=True,
                   leave=False, disable=True if quiet else None)
        while self.done < self.total:
            t0 = time.perf_counter()
            j = self.done // CHUNK
            n = min(CHUNK, self.total - j * CHUNK)
            o, d = pseudo_rays(scene, n, torch.Generator().manual_seed(self.seed * 1_000_003 + j), centre, **camera)
            rgb = teacher(o, d)
            rows = slice(j * CHUNK, j * CHUNK + n)
            self.rays[rows] = torch.cat([o, d], 1).numpy()
            self.rgb[rows] = rgb.clamp(0, 1).cpu().numpy()
            self.rays.flush()
            self.rgb.flush()
            self.done = j * CHUNK + n
            self.seconds += time.perf_counter() - t0
            self._record()
            bar.update(n)
        bar.close()

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n random cached rays: origins (n, 3), directions (n, 3), colours (n, 3)."""
        idx = np.sort(torch.randint(self.done, (n,), generator=gen).numpy())  # sorted: friendlier to the page cache
        rays = torch.from_numpy(np.asarray(self.rays[idx]))
        return rays[:, :3], rays[:, 3:], torch.from_numpy(np.asarray(self.rgb[idx]))
