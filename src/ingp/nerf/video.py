"""Video -> still frames for posing: the sharpest frame of each window of consecutive frames.

A phone clip has 30-60 frames per second, most of them near-duplicates and some motion-blurred; structure from
motion wants 50-150 distinct, sharp views. The clip's N frames are cut into ``target`` equal windows and each window
keeps its frame with the highest sharpness (variance of the Laplacian, the usual blur measure: a blurred frame has
little high-frequency energy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
DEFAULT_FRAMES = 100  # inside the 50-150 frames structure from motion handles well on 2 cores


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image; rgb (H, W, 3) uint8. Larger = sharper."""
    g = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0


def count_frames(path: Path) -> int:
    """Exact frame count (ffmpeg decodes the stream once); 0 for a file without a video stream."""
    import imageio_ffmpeg

    try:
        return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])
    except (RuntimeError, OSError, ValueError, IndexError):
        return 0


def extract_frames(path: Path, out_dir: Path, target: int = DEFAULT_FRAMES, *, quiet: bool = False
                   ) -> list[tuple[str, float]]:
    """Write the sharpest frame of each of ``target`` windows of ``path`` to ``out_dir`` as ``frame_NNNNN.jpg``
    (NNNNN the frame's index in the clip). Returns [(file name, sharpness)] in clip order.

    A clip with fewer than ``target`` frames gives all its frames. Raises InputError if no frame decodes.
    """
    import imageio_ffmpeg
    from PIL import Image
    from tqdm import tqdm

    path = Path(path)
    total = count_frames(path)
    if total <= 0:
        raise InputError(f"{path}: no video frames could be decoded")
    window = max(1, total // max(1, target))  # the last window takes the remainder (at most window - 1 frames)
    n_windows = min(target, total)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, float]] = []
    best: tuple[int, float, int, np.ndarray] | None = None  # (window, sharpness, frame index, pixels)

    def flush() -> None:  # one window's winner goes to disk as soon as the window ends: memory stays one frame
        _, s, i, rgb = best
        name = f"frame_{i:05d}.jpg"
        Image.fromarray(rgb).save(out_dir / name, quality=95)
        written.append((name, s))

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        w, h = meta["size"]
        for i, raw in enumerate(tqdm(reader, total=total, disable=quiet, leave=False, desc="frames", unit="frame")):
            k = min(i // window, n_windows - 1)
            rgb = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            s = sharpness(rgb[::2, ::2])  # half resolution: the ranking is the same, 4x cheaper
            if best is not None and best[0] != k:
                flush()
                best = None
            if best is None or s > best[1]:
                best = (k, s, i, rgb.copy())
    except (RuntimeError, OSError, StopIteration) as err:
        if best is None and not written:
            raise InputError(f"{path}: no video frames could be decoded ({err})") from None
    finally:
        reader.close()
    if best is not None:
        flush()
    if not written:
        raise InputError(f"{path}: no video frames could be decoded")
    return written
