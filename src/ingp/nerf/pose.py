"""``ingp nerf pose``: camera poses for a folder of photos or a video, by structure from motion on the CPU.

pycolmap (COLMAP as a pip wheel) does the work: SIFT features, matching (sequential for video frames, which are in
order; exhaustive for photos, which are not), then the mapper; one OPENCV camera (focal, principal point, k1 k2 p1
p2) shared by every image. The result is written as an instant-ngp-dialect ``transforms.json``:
camera-to-world matrices in the OpenGL convention (camera looks down -Z, +Y up) that ``ingp nerf fit`` reads, in a
world turned so the cameras' mean up is +Z, centred on the point the cameras look at, scaled so the median camera
sits ``CAMERA_DISTANCE`` units from it, with ``aabb_scale`` from the extent of the sparse points (also written, as
``sparse_points.ply``, in the same units).

Everything is built in a temporary folder beside DATA and renamed to DATA at the very end, so an error or Ctrl-C
never leaves a half-written DATA.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from .data import DEFAULT_SCALE
from .video import VIDEO_SUFFIXES, DEFAULT_FRAMES, extract_frames, sharpness

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CAMERA_DISTANCE = 4.0  # median camera distance from the centre, scene units: the object fills the unit cube
MIN_REGISTERED = 3
MIN_REGISTERED_FRACTION = 0.5  # fewer registered images than this is an error, not a thin dataset
MAX_AABB_SCALE = 128
MAPPERS = ("incremental", "global")
INSTALL_HINT = 'ingp nerf pose needs pycolmap >= 4.1.1: pip install "ingp[pose]"'


def require_pycolmap():
    """The pycolmap module, or InputError with the one-line install hint."""
    try:
        import pycolmap
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    version = tuple(int(x) for x in pycolmap.__version__.split(".")[:2] if x.isdigit())
    if version < (4, 1):
        raise InputError(f"pycolmap {pycolmap.__version__} is too old (4.1.1 or later matches 4-6x faster): "
                         f'pip install -U "ingp[pose]"')
    return pycolmap


# ---------------------------------------------------------------------------------------------------------- input

def _list_photos(folder: Path) -> list[Path]:
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise InputError(f"{folder}: no photos ({', '.join(PHOTO_SUFFIXES)}) in this folder")
    return photos


def _copy_photos(photos: list[Path], dest: Path, quiet: bool) -> list[tuple[str, float]]:
    """Check every photo decodes and all share one size; copy them (EXIF-rotated ones re-saved upright, so
    COLMAP and our loader see the same pixels) -> [(name, sharpness)]."""
    from PIL import Image, ImageOps
    from tqdm import tqdm

    dest.mkdir(parents=True)
    out, size0 = [], None
    for p in tqdm(photos, disable=quiet, leave=False, desc="photos", unit="photo"):
        try:
            with Image.open(p) as im:
                rotated = im.getexif().get(0x0112, 1) not in (0, 1)
                im = ImageOps.exif_transpose(im) if rotated else im
                im.load()
                size = im.size
                if size0 is None:
                    size0 = (p.name, size)
                elif size != size0[1]:
                    raise InputError(f"{p}: photos of mixed sizes ({p.name} is {size[0]}x{size[1]}, {size0[0]} is "
                                     f"{size0[1][0]}x{size0[1][1]}); use photos from one camera setting")
                small = im.convert("RGB")
                small.thumbnail((512, 512))
                s = sharpness(np.asarray(small))
                if rotated:
                    im.convert("RGB").save(dest / p.name, quality=95)
        except InputError:
            raise
        except (OSError, ValueError, SyntaxError) as err:
            raise InputError(f"{p}: cannot read image ({err})") from None
        if not rotated:
            try:
                os.link(p, dest / p.name)  # same file system: no copy
            except OSError:
                shutil.copy2(p, dest / p.name)
        out.append((p.name, s))
    return out


# ------------------------------------------------------------------------------------------------------- stages

def _count(db: Path, table: str) -> int | None:
    """Rows of ``table`` in COLMAP's database, read while COLMAP writes it (None when the file is busy)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as con:
            return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return None


def _sfm_worker(image_dir: str, work_dir: str, video: bool, mapper: str, max_image_size: int, threads: int,
                quiet: bool, stage, registered, results) -> None:
    """The child process: SIFT -> matching -> mapping; the best model goes to ``work_dir/best``. ``stage`` and
    ``registered`` (shared ints) tell the parent where it is; ``results`` (a pipe's end) gets ("ok", seconds) or
    ("error", message)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the whole group: the parent decides
    try:
        import pycolmap

        if quiet or not os.environ.get("INGP_COLMAP_LOG"):
            pycolmap.logging.minloglevel = 2  # COLMAP logs every image at INFO; the parent's bars say it in a line
        db, seconds = Path(work_dir) / "database.db", {}
        t0 = time.perf_counter()
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "OPENCV"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.max_image_size = max_image_size
        extraction.num_threads = threads
        pycolmap.extract_features(db, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                  extraction_options=extraction, device=pycolmap.Device.cpu)
        seconds["features"], t0, stage.value = time.perf_counter() - t0, time.perf_counter(), 1
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = threads
        if video:
            pycolmap.match_sequential(db, matching_options=matching, pairing_options=_sequential_pairing(pycolmap),
                                      device=pycolmap.Device.cpu)
        else:
            pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)
        seconds["matching"], t0, stage.value = time.perf_counter() - t0, time.perf_counter(), 2
        sparse = Path(work_dir) / "sparse"
        sparse.mkdir()
        if mapper == "incremental":
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads = threads

            def next_image():
                registered.value += 1

            models = pycolmap.incremental_mapping(db, image_dir, sparse, options,
                                                  initial_image_pair_callback=lambda: setattr(registered, "value", 2),
                                                  next_image_callback=next_image)
        else:
            options = pycolmap.GlobalPipelineOptions()
            options.num_threads = threads
            models = pycolmap.global_mapping(db, image_dir, sparse, options)
        seconds["mapping"] = time.perf_counter() - t0
        if models:
            best = max(models.values(), key=lambda r: r.num_reg_images())
            (Path(work_dir) / "best").mkdir()
            best.write(Path(work_dir) / "best")
        results.send(("ok", seconds))
    except Exception as err:  # noqa: BLE001 - reported to the parent as one line
        results.send(("error", f"{type(err).__name__}: {err}"))


def _sequential_pairing(pycolmap):
    return pycolmap.SequentialPairingOptions()  # 10 neighbours each side (COLMAP's default), quadratic overlap


def run_sfm(image_dir: Path, work_dir: Path, *, video: bool, mapper: str, max_image_size: int, threads: int,
            quiet: bool):
    """SIFT -> matching -> mapping of the images in ``image_dir``; COLMAP's files go to ``work_dir``.

    pycolmap runs in a child process while this one draws a progress bar per stage (feature and match counts read
    from COLMAP's database, registered images from the mapper's callback). Ctrl-C kills the child: COLMAP's own
    threads stop with it (cancelling them in-process left a reader thread writing to the database as it was
    removed). Returns (the reconstruction with the most registered images or None, {stage: seconds}).
    """
    import multiprocessing

    from tqdm import tqdm

    pycolmap = require_pycolmap()
    work_dir.mkdir(parents=True, exist_ok=True)
    db = work_dir / "database.db"
    n = sum(1 for _ in image_dir.iterdir())
    overlap = _sequential_pairing(pycolmap).overlap
    pairs = sum(min(overlap, n - 1 - i) for i in range(n)) if video else n * (n - 1) // 2
    ctx = multiprocessing.get_context("spawn")  # no fork of a process running torch's threads
    # lock-free shared ints and a pipe: a killed child leaves no semaphores behind (a Queue's would be reported)
    stage, registered = ctx.RawValue("i", 0), ctx.RawValue("i", 0)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_sfm_worker, args=(str(image_dir), str(work_dir), video, mapper, max_image_size,
                                                  threads, quiet, stage, registered, send), daemon=True)
    bars = [("features", n, lambda: _count(db, "keypoints")),
            ("matching", pairs, lambda: _count(db, "two_view_geometries")),
            ("mapping", n, lambda: registered.value)]
    outcome, shown, bar = None, -1, None
    try:
        child.start()
        while outcome is None:
            if receive.poll(0.25):
                outcome = receive.recv()
            elif not child.is_alive() and not receive.poll():
                outcome = ("error", f"pycolmap stopped (exit status {child.exitcode})")
            k = min(stage.value, 2)
            if k != shown:
                if bar is not None:
                    bar.update(bar.total - bar.n)  # some counts only show once COLMAP commits
                    bar.close()
                shown, bar = k, tqdm(total=bars[k][1], desc=bars[k][0], disable=quiet, leave=False)
            count = bars[k][2]()
            if count is not None and count > bar.n:
                bar.update(min(count, bar.total) - bar.n)
    except BaseException:
        if child.pid is not None:
            child.kill()
            child.join()
        raise
    finally:
        if bar is not None:
            bar.close()
    child.join()
    if outcome[0] == "error":
        raise InputError(f"{image_dir}: structure from motion failed ({outcome[1]})")
    best = work_dir / "best"
    return (pycolmap.Reconstruction(best) if best.is_dir() else None), outcome[1]


# ---------------------------------------------------------------------------------------------- geometry / output

def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 3x3 rotation taking unit vector a onto unit vector b (about their common normal)."""
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-9:  # opposite: half a turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def look_at_point(origins: np.ndarray, dirs: np.ndarray) -> np.ndarray | None:
    """Least-squares point nearest to all lines o_i + t d_i (N, 3); None when the lines are near parallel
    (a forward-facing capture has no common focus)."""
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # (N, 3, 3) projectors off each line
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, origins)
    w = np.linalg.eigvalsh(a)
    if w[0] < 1e-3 * w[-1]:
        return None
    return np.linalg.solve(a, b)


def normalise_scene(c2w: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Camera-to-world (N, 4, 4) OpenGL and points (P, 3) in COLMAP's world -> the same in scene units, the 4x4
    similarity world -> scene, and aabb_scale.

    Up: the cameras' mean +Y becomes +Z. Centre: the point nearest to all optical axes (object captures), else the
    median sparse point. Scale: median camera distance from the centre -> CAMERA_DISTANCE. aabb_scale: the
    smallest power of two whose box (loader units, ``0.5 +- K/2`` at the default scale 0.33) holds every camera and
    95 % of the sparse points (what the cameras see lies around them, not only on the object).
    """
    up = c2w[:, :3, 1].mean(0)
    rot = _rotation_between(up / np.linalg.norm(up), np.array([0.0, 0.0, 1.0]))
    centre = look_at_point(c2w[:, :3, 3], -c2w[:, :3, 2])  # OpenGL cameras look down -Z
    if centre is None or not np.isfinite(centre).all():
        centre = np.median(points, 0) if len(points) else c2w[:, :3, 3].mean(0)
    dist = float(np.median(np.linalg.norm(c2w[:, :3, 3] - centre, axis=1)))
    s = CAMERA_DISTANCE / max(dist, 1e-9)
    sim = np.eye(4)
    sim[:3, :3] = s * rot
    sim[:3, 3] = -s * rot @ centre
    out = np.einsum("ij,njk->nik", sim, c2w)
    out[:, :3, :3] /= s  # rotations stay rotations; only positions scale
    pts = points @ sim[:3, :3].T + sim[:3, 3] if len(points) else points
    extent = max(float(np.quantile(np.abs(pts).max(1), 0.95)) if len(pts) else 0.0,
                 float(np.abs(out[:, :3, 3]).max()))
    k = 2 * extent * DEFAULT_SCALE
    aabb_scale = int(min(MAX_AABB_SCALE, 1 << max(0, math.ceil(math.log2(max(k, 1.0))))))
    return out, pts, sim, aabb_scale


def umeyama(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity y ~ s R x + t between point sets (N, 3) (Umeyama 1991) -> (s, R (3, 3), t (3,))."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, d, vt = np.linalg.svd(yc.T @ xc / len(x))
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])  # a rotation, never a reflection
    r = u @ e @ vt
    s = float(np.trace(np.diag(d) @ e) / (xc ** 2).sum(1).mean())
    return s, r, my - s * r @ mx


def pose_errors(c2w: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cameras c2w (N, 4, 4) vs reference cameras ref (N, 4, 4) of the same images, after the similarity that best
    maps our camera centres onto the reference's -> rotation errors (N,) degrees, centre errors (N,) in reference
    units, and {"scale", "extent"}: extent = the reference centres' largest distance from their mean."""
    s, r, t = umeyama(c2w[:, :3, 3], ref[:, :3, 3])
    centres = c2w[:, :3, 3] @ (s * r).T + t
    rel = np.einsum("nji,jk,nkl->nil", r @ c2w[:, :3, :3], np.eye(3), ref[:, :3, :3])  # (R R_i)^T R_ref_i
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    extent = float(np.linalg.norm(ref[:, :3, 3] - ref[:, :3, 3].mean(0), axis=1).max())
    return np.degrees(np.arccos(cos)), np.linalg.norm(centres - ref[:, :3, 3], axis=1), {"scale": s, "extent": extent}


def _write_ply(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    """Binary little-endian PLY: x y z float32, red green blue uint8."""
    rec = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        rec[k] = points[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        rec[k] = colours[:, i]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode())
        f.write(rec.tobytes())


def _cam_from_world(image) -> np.ndarray:
    """World -> camera (3, 4), OpenCV convention (pycolmap 4 made it a method)."""
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose
    return np.asarray(pose.matrix(), dtype=np.float64)


def transforms_from_reconstruction(rec, sharp: dict[str, float]) -> tuple[dict, np.ndarray, np.ndarray]:
    """COLMAP reconstruction -> (transforms dict, sparse points (P, 3) in scene units, colours (P, 3) uint8)."""
    images = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: im.name)
    c2w = []
    for im in images:
        w2c = np.eye(4)
        w2c[:3] = _cam_from_world(im)
        m = np.linalg.inv(w2c)
        m[:3, 1:3] *= -1  # OpenCV (x right, y down, z forward) -> OpenGL (y up, z backward)
        c2w.append(m)
    pts3d = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in pts3d], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([p.color for p in pts3d], dtype=np.uint8).reshape(-1, 3)
    c2w, xyz, sim, aabb_scale = normalise_scene(np.stack(c2w), xyz)
    cam = rec.cameras[images[0].camera_id]
    fx, fy, cx, cy, k1, k2, p1, p2 = (float(v) for v in cam.params)
    meta = {"camera_model": "OPENCV", "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": int(cam.width),
            "h": int(cam.height), "k1": k1, "k2": k2, "p1": p1, "p2": p2,
            "camera_angle_x": 2 * math.atan(cam.width / (2 * fx)),
            "camera_angle_y": 2 * math.atan(cam.height / (2 * fy)),
            "aabb_scale": aabb_scale, "ply_file_path": "sparse_points.ply",
            "colmap_to_scene": sim.tolist(),
            "frames": [{"file_path": f"images/{im.name}", "sharpness": sharp.get(im.name, 0.0),
                        "transform_matrix": m.tolist()} for im, m in zip(images, c2w)]}
    return meta, xyz, rgb


# -------------------------------------------------------------------------------------------------------- command

def _temp_dir_for(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))


def pose_command(source: Path, out: Path, *, mapper: str = "incremental", frames: int = DEFAULT_FRAMES,
                 max_image_size: int = 1600, threads: int = -1, quiet: bool = False) -> dict:
    """Pose the photos in folder ``source`` (or the frames of video file ``source``) into dataset folder ``out``
    (transforms.json, images/, sparse_points.ply, colmap/sparse). Returns a summary: images, registered,
    unregistered names, seconds per stage, aabb_scale."""
    source, out = Path(source), Path(out)
    require_pycolmap()
    if mapper not in MAPPERS:
        raise InputError(f"--mapper {mapper}: expected one of {', '.join(MAPPERS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not empty (nothing is overwritten; choose a new folder)")
    if source.is_dir():
        video = False
        photos = _list_photos(source)
    elif source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        video = True
    elif source.is_file():
        raise InputError(f"{source}: neither a folder of photos nor a video ({', '.join(VIDEO_SUFFIXES)})")
    else:
        raise InputError(f"{source}: no such file or folder")

    tmp = _temp_dir_for(out)
    try:
        t0 = time.perf_counter()
        image_dir = tmp / "images"
        if video:
            named = extract_frames(source, image_dir, frames, quiet=quiet)
        else:
            named = _copy_photos(photos, image_dir, quiet)
        seconds = {"frames" if video else "photos": time.perf_counter() - t0}
        if len(named) < MIN_REGISTERED:
            raise InputError(f"{source}: {len(named)} image(s); structure from motion needs at least {MIN_REGISTERED}")
        rec, stage_seconds = run_sfm(image_dir, tmp / "colmap", video=video, mapper=mapper,
                                     max_image_size=max_image_size, threads=threads, quiet=quiet)
        seconds.update(stage_seconds)
        names = [n for n, _ in named]
        registered = sorted(rec.images[i].name for i in rec.reg_image_ids()) if rec is not None else []
        missing = [n for n in names if n not in set(registered)]
        if rec is None or len(registered) < max(MIN_REGISTERED, math.ceil(MIN_REGISTERED_FRACTION * len(names))):
            if not registered:
                raise InputError(f"{source}: the {len(names)} images do not overlap enough to start a reconstruction "
                                 "(no pair shares enough matched features)")
            listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise InputError(f"{source}: only {len(registered)} of {len(names)} images registered; not registered: "
                             f"{listed}")
        t1 = time.perf_counter()
        meta, xyz, rgb = transforms_from_reconstruction(rec, dict(named))
        meta["ingp_pose"] = {"source": str(source), "mapper": mapper, "images": len(names),
                             "registered": len(registered), "not_registered": missing}
        (tmp / "transforms.json").write_text(json.dumps(meta, indent=2))
        _write_ply(tmp / "sparse_points.ply", xyz, rgb)
        (tmp / "colmap" / "database.db").unlink(missing_ok=True)  # descriptors: tens of MB, not needed again
        shutil.rmtree(tmp / "colmap" / "sparse")  # the mapper's numbered models
        (tmp / "colmap" / "best").rename(tmp / "colmap" / "sparse")  # the chosen one, for COLMAP tools
        seconds["write"] = time.perf_counter() - t1
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"images": len(names), "registered": len(registered), "not_registered": missing, "seconds": seconds,
            "aabb_scale": meta["aabb_scale"], "points": len(xyz)}


def report(summary: dict, out: Path) -> str:
    """One line for the command's user: counts, seconds per stage, where it went."""
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
    line = (f"registered {summary['registered']} of {summary['images']} images, {summary['points']:,} points, "
            f"aabb_scale {summary['aabb_scale']} ({stages}); wrote {out}/transforms.json")
    if summary["not_registered"]:
        miss = summary["not_registered"]
        line += f"\nnot registered ({len(miss)}): " + ", ".join(miss[:10]) + (" ..." if len(miss) > 10 else "")
    return line

