"""Loading a NeLF run folder (``ingp nerf distill --out``) and rendering a view of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, resolve_device
from .model import build_student, render_rays


def load_run(run_path: Path, device: str = "cpu"):
    """(student with the run's weights, in eval mode, config) of a ``nelf`` run folder."""
    dev = resolve_device(device)
    run = RunDir(run_path, primitive="nelf")
    config = run.config()
    model = build_student(config["model"], config["model"]["sphere"], config["training"]["seed"]).to(dev)
    try:
        model.load_weights(run.load_weights(dev))
    except (RuntimeError, KeyError) as err:
        raise InputError(f"{run.weights_path}: does not fit the run's config ({str(err).splitlines()[0]})") from None
    return model.eval(), config


def render_orbit_view(model, view: dict, width: int, height: int) -> np.ndarray:
    """The viewer's orbit camera (``web.camera``) -> (height, width, 3) float32 colours."""
    from ..web.camera import orbit_rays

    o, d = orbit_rays(view, width, height)
    rgb = render_rays(model, torch.from_numpy(o), torch.from_numpy(d))
    return rgb.reshape(height, width, 3).numpy()
