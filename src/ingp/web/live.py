"""``ingp <primitive> fit --view``: watch a fit in the browser while it trains.

The training loop calls ``LiveView.after_step`` after every step (a ``train`` hook). When a snapshot is due (every
``interval`` wall seconds, and at least ``20 x`` the last snapshot's write time after it, so writing costs at most
~5 % of the wall time) and the writer thread is idle, the weights are copied on the training thread -- between two
steps, so the copy is consistent -- and handed to the one writer thread; while it is busy nothing is taken (at most
one pending snapshot; a step never waits for it, nor for any browser). The thread loads the copy into a CPU model of
its own, exports it (``export.fields_of``) into a new folder ``RUN/live/<n>/``, measures a quality figure on a fixed
subset, then replaces ``RUN/live/status.json`` and deletes snapshot folders older than the previous one (a page may
still be fetching that). The server (``server.py``) answers ``/live/status.json``, ``/live/<n>/model.json|bin`` and
``/live/target.png`` from that folder on 127.0.0.1, so ``ingp view RUN`` in another terminal serves the same.

    RUN/live/status.json   {"format": "ingp-live", "pid", "running", "kind", "step", "seconds", "loss",
                            "snapshot": n | null, "snapshot_step", "curve": {"step", "seconds", "loss": [...]},
                            "quality": {"name", "unit", "points", "step": [...], "value": [...]} | null,
                            "ground_truth": "target.png" | "views.json" | null}
    RUN/live/<n>/          model.json (+ "step", "seconds") and model.bin, the ``export web`` format
    RUN/live/target.png    image runs: the training image as displayed (longer side <= 2048), for the toggle
    RUN/live/views.json    NeRF runs: {"views": [{"name", "file", "width", "height", "camera"}]}: up to 24 training
                           views evenly spread, each photo over white in RUN/live/views/<i>.jpg (longer side <= 800)
                           and its camera as the viewer's (``camera.pose_camera``), for the toggle

Quality figures (on fixed subsets, so each snapshot costs milliseconds): image PSNR over 16384 random pixels
(colour channels, as ``image eval`` scores them), SDF IoU of the inside sets over 16384 of the pool's uniform points,
NeRF PSNR over 1024 random pixels of the held-out views on white.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write, process_alive

CURVE_POINTS = 1024  # the loss curve keeps every stride-th step; at this many points it halves (stride doubles)
QUALITY_POINTS = 1 << 14
NERF_QUALITY_RAYS = 1 << 10  # 4096 rays took 13-32 s of one core early in training (docs/benchmarks.md)
TARGET_SIZE = 2048
TRUTH_VIEWS, VIEW_SIZE = 24, 800
WRITE_SHARE = 20  # the next snapshot is due no sooner than this many times the last one's write time after it


def live_dir(run_path: Path) -> Path:
    return Path(run_path) / "live"


def read_status(run_path: Path) -> dict | None:
    """RUN/live/status.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((live_dir(run_path) / "status.json").read_text())
    except (OSError, ValueError):
        return None


def is_training(run_path: Path) -> bool:
    """Whether a ``--view`` fit of this run is training now (its status says running and its process is alive)."""
    status = read_status(run_path)
    return bool(status and status.get("running") and process_alive(int(status.get("pid", 0))))


class Curve:
    """(step, seconds, loss) of every ``stride``-th step, thinned to half whenever it reaches ``CURVE_POINTS``."""

    def __init__(self):
        self.stride, self.points = 1, []

    def add(self, step: int, seconds: float, loss: float) -> None:
        if step % self.stride:
            return
        self.points.append((step, seconds, loss if math.isfinite(loss) else None))
        if len(self.points) >= CURVE_POINTS:
            self.stride *= 2
            self.points = [p for p in self.points if p[0] % self.stride == 0]

    def record(self) -> dict:
        steps, seconds, losses = zip(*self.points) if self.points else ((), (), ())
        return {"step": list(steps), "seconds": list(seconds), "loss": list(losses)}


class LiveView:
    """The ``--view`` server and snapshot writer of one fit. ``LiveView(out, port)`` binds 127.0.0.1:``port``
    first (a port in use is one ``InputError`` line, before anything is written); ``attach`` gives it the run, a
    function returning the current weights and the quality reference; then it is a ``train`` hook."""

    def __init__(self, out: Path, port: int = 8000, *, open_browser: bool = False, interval: float = 2.0,
                 announce: Callable[[str], None] = print):
        from .server import make_server

        self.out, self.interval = Path(out), float(interval)
        self.dir = live_dir(out)
        try:
            self.server = make_server(Path(out) / "web", port, live=self.dir)
        except OSError as err:
            raise InputError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({err.strerror})") from None
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="ingp-view-server").start()
        announce(f"viewer: {self.url}  (from another machine: ssh -N -L {self.port}:127.0.0.1:{self.port} "
                 f"{getpass.getuser()}@{socket.gethostname()}, then open {self.url})")
        if open_browser:
            import webbrowser

            webbrowser.open(self.url)
        self.curve = Curve()
        self.quality: dict | None = None
        self.snapshot: int | None = None
        self.snapshot_step: int | None = None
        self.write_seconds: list[float] = []  # of every snapshot (the benchmark reports them)
        self.snapshot_bytes = 0
        self.last = (0, 0.0, math.nan)
        self._pending: tuple | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._wake = threading.Condition()
        self._stop = False
        self._due = 0.0
        self._thread: threading.Thread | None = None

    # --- set-up ---------------------------------------------------------------------------------------------------

    def attach(self, run: RunDir, weights: Callable[[], dict[str, torch.Tensor]], reference=None,
               training_views=None) -> "LiveView":
        """Start writing snapshots of ``run``: ``weights()`` returns the live tensors (copied here between steps),
        ``reference`` the kind's quality data (image: ``ImageData``; sdf: (points (N, 3), inside (N,) bool);
        nerf: the held-out ``Scene``); ``training_views``: a NeRF's training ``Scene``, for the ground truth."""
        self.run, self.weights = run, weights
        self.config = run.config()
        self.kind = self.config["primitive"]
        self.reference = reference
        for old in self.dir.glob("*") if self.dir.is_dir() else ():  # an earlier --view of this run
            if old.is_dir() and old.name.isdigit():
                shutil.rmtree(old, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ground_truth = None
        if self.kind == "image" and reference is not None:
            self._write_target(reference)
        if self.kind == "nerf" and training_views is not None:
            self._write_views(training_views)
        self._shadow = None
        self._thread = threading.Thread(target=self._work, daemon=True, name="ingp-view-writer")
        self._thread.start()
        return self

    def _write_target(self, image) -> None:
        import imageio.v3 as iio

        from ..image.io import display_rgb8

        step = max(1, math.ceil(max(image.width, image.height) / TARGET_SIZE))
        pixels = np.asarray(image.pixels[::step, ::step], dtype=np.float32) / np.float32(image.full_scale)
        rgb8 = display_rgb8(pixels, image.linear)
        atomic_write(self.dir / "target.png", lambda tmp: iio.imwrite(tmp, rgb8))
        self.ground_truth = "target.png"

    def _write_views(self, scene) -> None:
        import imageio.v3 as iio
        from PIL import Image

        from ..nerf.evaluate import ground_truth
        from .camera import pose_camera

        folder, views = self.dir / "views", []
        folder.mkdir(exist_ok=True)
        for n, i in enumerate(np.unique(np.linspace(0, len(scene) - 1, min(TRUTH_VIEWS, len(scene))).round())):
            i = int(i)
            photo = Image.fromarray((ground_truth(scene, i) * 255 + 0.5).astype(np.uint8))
            photo.thumbnail((VIEW_SIZE, VIEW_SIZE), Image.Resampling.LANCZOS)
            atomic_write(folder / f"{n}.jpg", lambda tmp: iio.imwrite(tmp, np.asarray(photo), extension=".jpg",
                                                                       quality=90))
            camera = pose_camera(scene.c2w[i].numpy(), scene.intrinsics[i].numpy(), scene.width, scene.height)
            views.append({"name": scene.names[i], "file": f"views/{n}.jpg", "width": scene.width,
                          "height": scene.height, "camera": {k: np.asarray(v).tolist() for k, v in camera.items()}})
        atomic_write(self.dir / "views.json", lambda tmp: tmp.write_text(json.dumps({"views": views})))
        self.ground_truth = "views.json"

    # --- the train hook (training thread) -------------------------------------------------------------------------

    def after_step(self, p) -> None:
        self.last = (p.step, p.seconds, p.loss)
        self.curve.add(p.step, p.seconds, p.loss)
        now = time.perf_counter()
        if now >= self._due and self._idle.is_set():
            self._submit(p)

    def _submit(self, p) -> None:
        copy = {k: v.detach().clone() for k, v in self.weights().items()}
        self._idle.clear()
        with self._wake:
            self._pending = (p.step, p.seconds, p.loss, copy)
            self._wake.notify()

    def snapshot_now(self, p) -> None:
        """Write a snapshot of the current weights at progress ``p`` and wait for it (the end of training; tests)."""
        self._idle.wait()
        self.last = (p.step, p.seconds, p.loss)
        self._submit(p)
        self._idle.wait()

    def close(self, p) -> None:
        """End of training (or an exception): the final weights as the last snapshot, status ``running: false``."""
        if self._thread is None:
            return
        self._idle.wait()
        if self.snapshot_step != p.step and math.isfinite(self._due):
            self.snapshot_now(p)
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()
        self._write_status(running=False)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the writer thread ----------------------------------------------------------------------------------------

    def _work(self) -> None:
        # One thread for this thread's torch and numba work (both settings are per thread here). A second thread
        # that ran torch's OpenMP regions with the default count slowed the training thread's steps by 15-20 %
        # for as long as it lived (measured: image fit 18-19 vs 23-25 steps/s on 2 cores, idle machine).
        torch.set_num_threads(1)
        try:
            import numba

            numba.set_num_threads(1)
        except ImportError:
            pass
        lower_thread_priority()
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._pending is None:
                    return
                job, self._pending = self._pending, None
            t0 = time.perf_counter()
            try:
                self._write_snapshot(*job)
            except Exception as err:  # a viewer problem must never stop training: say it once, stop snapshots
                from ..runs import note

                note(f"--view: snapshots stopped ({type(err).__name__}: {err})")
                self._due = math.inf
            else:
                spent = time.perf_counter() - t0
                self.write_seconds.append(spent)
                self._due = time.perf_counter() + max(self.interval, WRITE_SHARE * spent)
            finally:
                self._idle.set()

    def _write_snapshot(self, step: int, seconds: float, loss: float, weights: dict[str, torch.Tensor]) -> None:
        from .export import _Writer, fields_of, write_export

        model = self._load(weights)
        writer = _Writer()
        fields, task = fields_of(self.kind, model, self.config, writer, "float32")
        n = 0 if self.snapshot is None else self.snapshot + 1
        write_export(self.dir / str(n), self.kind, fields, task, writer, step=step, seconds=seconds)
        self.snapshot_bytes = writer.size
        value = self._quality(model)
        if value is not None:
            q = self.quality
            q["step"].append(step)
            q["value"].append(value)
        previous, self.snapshot, self.snapshot_step = self.snapshot, n, step
        self._write_status(running=True)
        for old in self.dir.iterdir():  # keep this snapshot and the one before (a page may be fetching it)
            if old.is_dir() and old.name.isdigit() and int(old.name) not in (n, previous):
                shutil.rmtree(old, ignore_errors=True)

    def _write_status(self, running: bool) -> None:
        step, seconds, loss = self.last
        status = {"format": "ingp-live", "pid": os.getpid(), "running": running, "kind": self.kind, "step": step,
                  "seconds": seconds, "loss": loss if math.isfinite(loss) else None, "snapshot": self.snapshot,
                  "snapshot_step": self.snapshot_step, "curve": self.curve.record(), "quality": self.quality,
                  "ground_truth": self.ground_truth}
        atomic_write(self.dir / "status.json", lambda tmp: tmp.write_text(json.dumps(status)))

    # --- the kind's CPU model and quality figure (writer thread) --------------------------------------------------

    def _load(self, weights: dict[str, torch.Tensor]):
        """The copied weights in a CPU model of the run's kind, built once (``fields_of``'s ``model``)."""
        c, cpu = self.config, torch.device("cpu")
        weights = {k: v.to("cpu") for k, v in weights.items()}
        if self._shadow is None:
            if self.kind == "image":
                from ..image.model import build_model

                self._shadow = build_model(c["model"], c["image"]["channels"], c["training"]["seed"], cpu)
            elif self.kind == "sdf":
                from ..sdf.model import build_model

                self._shadow = build_model(c["model"], c["training"]["seed"], cpu)
            else:
                from ..nerf.model import NerfModel
                from ..nerf.occupancy import OccupancyGrid, n_cascades

                self._shadow = (NerfModel(c["model"], tuple(c["data"]["aabb"]), c["training"]["seed"]),
                                OccupancyGrid(n_cascades(c["data"]["aabb_scale"]), cpu,
                                              c["training"].get("grid_resolution", 128)))
            self._prepare_quality()
        with torch.no_grad():
            if self.kind == "nerf":
                model, grid = self._shadow
                model.load_weights(weights)
                grid.load_state(weights)
            else:
                self._shadow.params.copy_(weights["params"])
        return self._shadow

    def _prepare_quality(self) -> None:
        ref, rng = self.reference, np.random.default_rng(0)
        self._q = None
        if ref is None or not concurrent_kernels_safe():
            return
        if self.kind == "image":
            from ..image.io import colour_count

            rows, cols = rng.integers(0, ref.height, QUALITY_POINTS), rng.integers(0, ref.width, QUALITY_POINTS)
            xy = np.stack([(cols + 0.5) / ref.width, (rows + 0.5) / ref.height], 1).astype(np.float32)
            target = np.asarray(ref.pixels[rows, cols], dtype=np.float32) / np.float32(ref.full_scale)
            self._q = (torch.from_numpy(xy), torch.from_numpy(target[:, :colour_count(ref.channels)]), ref.linear)
            self.quality = {"name": "PSNR", "unit": "dB", "points": f"{QUALITY_POINTS} pixels", "step": [],
                            "value": []}
        elif self.kind == "sdf":
            points, inside = ref
            self._q = (points[:QUALITY_POINTS].float().cpu(), inside[:QUALITY_POINTS].bool().cpu())
            self.quality = {"name": "IoU", "unit": "", "points": f"{len(self._q[0])} uniform points", "step": [],
                            "value": []}
        else:
            from ..nerf.evaluate import ground_truth
            from ..nerf.rays import pixel_rays

            scene = ref
            n = NERF_QUALITY_RAYS
            view = torch.from_numpy(rng.integers(0, len(scene), n))
            v, u = (torch.from_numpy(rng.integers(0, k, n)) for k in (scene.height, scene.width))
            o, d = pixel_rays(scene.c2w[view], scene.intrinsics[view], scene.distortion[view], u.float() + 0.5,
                              v.float() + 0.5, scene.fisheye)
            target = np.stack([ground_truth(scene, int(i))[int(y), int(x)] for i, y, x in zip(view, v, u)])
            self._q = (o, d, torch.from_numpy(target), scene.aabb())
            self.quality = {"name": "PSNR", "unit": "dB", "points": f"{n} held-out pixels", "step": [], "value": []}

    @torch.no_grad()
    def _quality(self, model) -> float | None:
        if self._q is None:
            return None
        if self.kind == "image":
            xy, target, linear = self._q
            pred = model(xy).float()[:, :target.shape[1]]
            pred = pred if linear else pred.clamp(0, 1)
            mse = float(((pred - target) ** 2).mean())
            return 10 * math.log10(1 / max(mse, 1e-12))
        if self.kind == "sdf":
            from ..sdf.model import sdf_values

            points, inside = self._q
            predicted = sdf_values(model, points).cpu() < 0
            union = int((predicted | inside).sum())
            return 1.0 if union == 0 else int((predicted & inside).sum()) / union
        from ..nerf.render import render_rays

        nerf, grid = model
        o, d, target, aabb = self._q
        colour, _, _ = render_rays(nerf, grid, o, d, aabb, cone=float(self.config["training"]["cone_angle"]),
                                   background=torch.ones(3))
        mse = float(((colour.clamp(0, 1) - target) ** 2).mean())
        return 10 * math.log10(1 / max(mse, 1e-12))


def lower_thread_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: nice 19 for this thread only), so the trainer's
    threads always win a core and the writer runs in their gaps. At equal priority a busy writer took one of two
    cores from a NeRF fit whose parallel kernels then waited at every barrier for the descheduled thread: 3.5x
    fewer steps/s while it ran (measured, docs/benchmarks.md). Elsewhere the priority is left as it is."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


def concurrent_kernels_safe() -> bool:
    """Whether the quality figure may run model code on the writer thread while training runs its own: numba's
    parallel kernels may be launched from two threads at once under its tbb and omp threading layers, but its
    workqueue layer aborts the process on that; without tbb / omp (or forced to workqueue) no figure is measured."""
    import importlib

    try:
        import numba
    except ImportError:
        return True
    if str(numba.config.THREADING_LAYER).lower() == "workqueue":
        return False
    for module in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(module)
            return True
        except ImportError:
            pass
    return False


class view_from_args:
    """``with view_from_args(args) as view:`` -- the ``LiveView`` of a fit's ``--view [--port P] [--open]``
    (None without ``--view``, and on every rank but 0 under torchrun); the server stops when the block ends."""

    def __init__(self, args):
        from .. import distributed

        self.view = None
        if getattr(args, "view", False) and distributed.world().rank == 0:
            self.view = LiveView(args.out, args.port, open_browser=args.open)

    def __enter__(self) -> LiveView | None:
        return self.view

    def __exit__(self, *exc) -> None:
        if self.view is not None:
            self.view.shutdown()
