"""Tile farm: ``ingp image fit IMAGE --tiles KxM`` for images too big for one device.

The image is cut into K columns x M rows of equal *cores* (pixel ranges); each tile is its core grown by
``overlap`` pixels on every inner side. Every tile is an independent, ordinary image fit (its own model, its own
run folder ``RUN/tiles/rIcJ/`` on a crop ``RUN/tiles/rIcJ.npy`` in the stored type), so a job's memory is bounded by
its tile. Under torchrun the ranks share out the tiles (rank r fits tiles r, r + W, ...); with ``--ray`` each tile is
a Ray task (``pip install "ingp[ray]"``); otherwise they run one after the other. ``--steps``/``--seconds`` are
per tile.

``TiledModel`` puts them back together: at global pixel position X each tile's weight is a product of two 1-D
weights, 1 in its core away from the seams and falling to 0 across the band ``[c - overlap, c + overlap]`` around
each inner core boundary ``c`` as ``smoothstep``; the neighbour rises by exactly as much (``s(t) + s(1 - t) = 1``),
so the weights sum to 1 everywhere, the result is each tile's own model away from the seams, and a C1 blend of the
two (or four) tiles across them. ``ingp image render|video|eval`` read a tiled run through ``load_tiled``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write, environment, note, resolve_device

TILES_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_tiles(text: str) -> tuple[int, int]:
    """``"3x2"`` -> (3 columns, 2 rows)."""
    match = TILES_RE.match(str(text))
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise InputError(f"--tiles {text}: expected COLUMNSxROWS such as 2x2")
    return int(match[1]), int(match[2])


def tile_layout(width: int, height: int, columns: int, rows: int, overlap: int) -> list[dict]:
    """Tiles in row-major order: name, core ``cx``/``cy`` = [start, stop) and extent ``x``/``y`` = [start, stop)
    in pixels (the core grown by ``overlap`` on inner sides). Every core must be at least 2·overlap wide so the two
    blending bands of a tile do not meet."""
    cx = [round(i * width / columns) for i in range(columns + 1)]
    cy = [round(j * height / rows) for j in range(rows + 1)]
    narrowest = min(min(b - a for a, b in zip(cx, cx[1:])), min(b - a for a, b in zip(cy, cy[1:])))
    if overlap < 0 or (columns * rows > 1 and 2 * overlap > narrowest):
        raise InputError(f"--tile-overlap {overlap}: must be between 0 and half the narrowest tile core "
                         f"({narrowest // 2} px for {columns}x{rows} tiles of {width}x{height})")
    if narrowest < 1:
        raise InputError(f"--tiles {columns}x{rows}: more tiles than pixels in a {width}x{height} image")
    tiles = []
    for j in range(rows):
        for i in range(columns):
            tiles.append({"name": f"r{j}c{i}", "cx": [cx[i], cx[i + 1]], "cy": [cy[j], cy[j + 1]],
                          "x": [max(0, cx[i] - overlap), min(width, cx[i + 1] + overlap)],
                          "y": [max(0, cy[j] - overlap), min(height, cy[j + 1] + overlap)]})
    return tiles


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def axis_weight(p: torch.Tensor, core: list[int], size: int, overlap: int) -> torch.Tensor:
    """1-D blending weight (N,) at pixel positions ``p`` (N,) of a tile whose core is ``core`` on an axis of
    ``size`` pixels: 1 inside the core away from inner boundaries, smoothstep down to 0 across each inner band."""
    w = torch.ones_like(p)
    lo, hi = core
    if overlap == 0:
        if lo > 0:
            w = w * (p >= lo)
        if hi < size:
            w = w * (p < hi)
        return w
    if lo > 0:
        w = w * smoothstep((p - (lo - overlap)) / (2 * overlap))
    if hi < size:
        w = w * smoothstep(((hi + overlap) - p) / (2 * overlap))
    return w


class TiledModel(torch.nn.Module):
    """Tile models blended into one image model: ``forward(xy (N, 2) in [0, 1]) -> (N, C)``, each tile evaluated
    only where its weight is non-zero."""

    def __init__(self, models: list[torch.nn.Module], tiles: list[dict], width: int, height: int, overlap: int):
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        self.tiles, self.width, self.height, self.overlap = tiles, width, height, overlap
        self.n_output_dims = models[0].n_output_dims

    @property
    def n_params(self) -> int:
        return sum(m.params.numel() for m in self.models)

    def weights(self, xy: torch.Tensor) -> torch.Tensor:
        """(N, n_tiles) blending weights at ``xy``; rows sum to 1."""
        px, py = xy[:, 0].float() * self.width, xy[:, 1].float() * self.height
        return torch.stack([axis_weight(px, t["cx"], self.width, self.overlap)
                            * axis_weight(py, t["cy"], self.height, self.overlap) for t in self.tiles], dim=1)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        weights = self.weights(xy)
        px, py = xy[:, 0] * self.width, xy[:, 1] * self.height
        out = torch.zeros(len(xy), self.n_output_dims, dtype=torch.float32, device=xy.device)
        for k, (tile, model) in enumerate(zip(self.tiles, self.models)):
            idx = torch.nonzero(weights[:, k] > 0).squeeze(1)
            if idx.numel() == 0:
                continue
            (x0, x1), (y0, y1) = tile["x"], tile["y"]
            local = torch.stack([(px[idx] - x0) / (x1 - x0), (py[idx] - y0) / (y1 - y0)], dim=1)
            # weight 1 (a core away from seams) leaves the tile's own value unchanged, bit for bit
            out.index_add_(0, idx, weights[idx, k:k + 1] * model(local.to(xy.dtype)).float())
        return out


def tiled_config(config: dict) -> dict | None:
    return config.get("tiles")


def load_tiled(run: RunDir, device: torch.device) -> TiledModel:
    """The blended model of a tiled run folder (each tile loaded as the ordinary image run it is)."""
    from .commands import load_run

    config = run.config()
    spec = config["tiles"]
    models = []
    for tile in spec["layout"]:
        folder = run.path / "tiles" / tile["name"]
        if not (folder / "config.json").is_file():
            raise InputError(f"{run.path}: tile {tile['name']} has no run (did `--tiles` finish? continue with "
                             f"--resume)")
        models.append(load_run(folder, str(device))[0])
    image = config["image"]
    return TiledModel(models, spec["layout"], image["width"], image["height"], spec["overlap"]).eval()


def fit_tile(crop: str, folder: str, model_config: dict | None, steps: int | None, seconds: float | None,
             batch_size: int, seed: int, device: str, resume: bool, threads: int | None = None) -> dict:
    """One tile's ordinary fit (what a Ray task runs): {"metrics": ...} or {"error": its one-line message}."""
    from ..errors import ConfigError, TrainingDiverged
    from ..train import Budget
    from .fit import fit_image

    if threads:
        torch.set_num_threads(threads)
    try:
        return {"metrics": fit_image(Path(crop), Path(folder), model_config=model_config,
                                     budget=Budget(steps=steps, seconds=seconds), batch_size=batch_size, seed=seed,
                                     device=device, quiet=True, resume=resume, overwrite=True)}
    except (InputError, ConfigError, TrainingDiverged, ValueError, OSError) as err:
        return {"error": str(err)}


def _run_on_ray(jobs: list[dict], cpus_per_tile: float, address: str | None) -> list[dict]:
    """Every tile job as a Ray task (``cpus_per_tile`` CPUs and threads each) on the running Ray, the cluster at
    ``address``, or a local one started (and stopped) here."""
    try:
        import ray
    except ImportError:
        raise InputError('--ray needs Ray, an optional extra: pip install "ingp[ray]"') from None
    threads = max(1, int(cpus_per_tile))
    started = not ray.is_initialized()
    if started:
        env = {"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, logging_level="ERROR")
    try:
        task = ray.remote(num_cpus=cpus_per_tile, max_retries=0)(fit_tile)
        return ray.get([task.remote(**job, threads=threads) for job in jobs])
    finally:
        if started:
            ray.shutdown()


def fit_tiles(image_path: Path, out: Path, *, columns: int, rows: int, overlap: int, model_config_for, budget,
              batch_size: int, seed: int, device: str = "auto", quiet: bool = False, resume: bool = False,
              overwrite: bool = False, ray: bool = False, ray_address: str | None = None,
              cpus_per_tile: float = 1) -> dict:
    """Fit every tile (shared out over torchrun ranks, as Ray tasks with ``ray``, else one after the other), then
    blend, evaluate on the whole image and write ``RUN/metrics.json`` and ``preview.png``; returns the metrics.
    ``model_config_for(w, h)`` gives a tile's model config."""
    from .. import distributed
    from .evaluate import evaluate_model
    from .fit import image_record, write_preview
    from .io import read_image

    dev = resolve_device(device)
    world = distributed.world()
    with distributed.agree():
        if ray and world.distributed:
            raise InputError("--ray: the tiles already run on the torchrun ranks; use one or the other")
        image = read_image(image_path)
        layout = tile_layout(image.width, image.height, columns, rows, overlap)
        run_path = Path(out)
        if resume:
            run = RunDir(run_path, primitive="image")
            config = run.config()
            if "tiles" not in config or config["image"]["width"] != image.width or \
                    config["image"]["height"] != image.height:
                raise InputError(f"{image_path}: not the image the tiled run in {out} was trained on")
            layout, overlap = config["tiles"]["layout"], config["tiles"]["overlap"]
        elif (run_path / "config.json").exists() and not overwrite:
            raise InputError(f"--out {out}: already holds a run; continue it with --resume or choose another folder")
        else:
            config = {"primitive": "image", "image": image_record(image),
                      "tiles": {"columns": columns, "rows": rows, "overlap": overlap, "layout": layout},
                      "training": {"batch_size": batch_size, "seed": seed}}
    distributed.barrier()  # every rank has checked the folder before rank 0 writes into it
    with distributed.agree():  # (a collective: no rank starts before the folder exists)
        if not resume and world.rank == 0:
            (run_path / "tiles").mkdir(parents=True, exist_ok=True)
            RunDir.create(run_path, config)
    t0 = time.perf_counter()
    mine = [tile for k, tile in enumerate(layout) if k % world.size == world.rank]
    jobs = []
    for tile in mine:
        crop = run_path / "tiles" / f"{tile['name']}.npy"
        (x0, x1), (y0, y1) = tile["x"], tile["y"]
        if not crop.is_file():
            pixels = np.ascontiguousarray(image.pixels[y0:y1, x0:x1])  # only this tile is read into memory
            atomic_write(crop, lambda tmp: np.save(tmp, pixels))
        folder = run_path / "tiles" / tile["name"]
        again = resume and (folder / "checkpoint.pt").is_file()
        jobs.append({"crop": str(crop), "folder": str(folder), "resume": again, "steps": budget.steps,
                     "seconds": budget.seconds, "batch_size": batch_size, "seed": seed, "device": device,
                     "model_config": None if again else model_config_for(x1 - x0, y1 - y0)})
    # under torchrun, a rank whose tile fails tells the others at the end; note the collective's timeout
    # ($INGP_DIST_TIMEOUT) must exceed the longest rank's share of the fits
    with distributed.agree():
        if ray:
            results = _run_on_ray(jobs, cpus_per_tile, ray_address)
        else:
            with distributed.local():  # each tile is an ordinary single-process fit
                results = [fit_tile(**job) for job in jobs]
        failed = [(tile, result) for tile, result in zip(mine, results) if "error" in result]
        if failed:
            raise InputError(f"tile {failed[0][0]['name']}: {failed[0][1]['error']}")
    for tile, result in zip(mine, results):
        m = result["metrics"]
        if not quiet:
            note(f"tile {tile['name']} ({m['width']}x{m['height']} px, rank {world.rank}): PSNR {m['psnr']:.2f} dB "
                 f"after {m['steps']} steps in {m['seconds']:.1f} s")
    farm_seconds = time.perf_counter() - t0
    distributed.barrier()

    def finish() -> dict:
        run = RunDir(run_path, primitive="image")
        model = load_tiled(run, dev)
        t1 = time.perf_counter()
        quality = evaluate_model(model, image)
        eval_seconds = time.perf_counter() - t1
        write_preview(run.path / "preview.png", model, image)
        tiles = [RunDir(run.path / "tiles" / t["name"]).metrics() for t in layout]
        metrics = {"primitive": "image", "psnr": quality["psnr"], "ssim": quality["ssim"],
                   "tiles": f"{config['tiles']['columns']}x{config['tiles']['rows']}", "overlap": overlap,
                   "steps": sum(t.get("steps", 0) for t in tiles), "seconds": sum(t.get("seconds", 0.0) for t in tiles),
                   "farm_wall_seconds": farm_seconds, "n_params": model.n_params, "batch_size": batch_size,
                   "tile_psnr": {t["name"]: m.get("psnr") for t, m in zip(layout, tiles)},
                   "eval_seconds": eval_seconds, "width": image.width, "height": image.height,
                   "channels": image.channels, "ranks": world.size, **environment(dev)}
        run.save_metrics(metrics)
        return metrics

    return distributed.on_rank0(finish)


def run_fit_tiles(args, model_config_from_args, default_seconds: float) -> int:
    """``ingp image fit IMAGE --tiles KxM``: the CLI handler."""
    from ..train import Budget

    columns, rows = parse_tiles(args.tiles)
    budget = Budget(steps=args.steps, seconds=args.seconds if args.steps or args.seconds else default_seconds)
    metrics = fit_tiles(args.image, args.out, columns=columns, rows=rows, overlap=args.tile_overlap,
                        model_config_for=lambda w, h: model_config_from_args(args, w, h), budget=budget,
                        batch_size=args.batch_size, seed=args.seed, device=args.device, quiet=args.quiet,
                        resume=args.resume, overwrite=getattr(args, "overwrite", False),
                        ray=getattr(args, "ray", False),
                        ray_address=getattr(args, "ray_address", None))
    print(f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} from {metrics['tiles']} tiles "
          f"({metrics['n_params']:,} parameters, {metrics['seconds']:.1f} s of training); wrote {args.out}/")
    return 0
