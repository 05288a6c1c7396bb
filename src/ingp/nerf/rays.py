"""Pixels -> rays: pinhole intrinsics, OpenCV (k1 k2 p1 p2 k3) and equidistant-fisheye (k1..k4) lens distortion,
OpenGL camera convention (camera looks down -Z, +Y up, image rows go down)."""

from __future__ import annotations

import torch

UNDISTORT_ITERATIONS = 10


def _distort_opencv(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised undistorted (x, y) -> distorted, OpenCV's radial + tangential model; k (N, 6)."""
    k1, k2, p1, p2, k3 = k[:, 0], k[:, 1], k[:, 2], k[:, 3], k[:, 4]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def undistort(xd: torch.Tensor, yd: torch.Tensor, k: torch.Tensor, fisheye: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Distorted normalised image coordinates (N,) -> undistorted pinhole (N,) by fixed-point iteration.

    Fisheye (equidistant): r_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), r_u = tan theta.
    """
    if fisheye:
        rd = torch.sqrt(xd * xd + yd * yd).clamp_min(1e-12)
        theta = rd.clone()
        k1, k2, k3, k4 = k[:, 0], k[:, 1], k[:, 4], k[:, 5]
        for _ in range(UNDISTORT_ITERATIONS):
            t2 = theta * theta
            theta = rd / (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        s = torch.tan(theta.clamp(max=1.55)) / rd
        return xd * s, yd * s
    if not bool((k[:, :5] != 0).any()):
        return xd, yd
    x, y = xd, yd
    for _ in range(UNDISTORT_ITERATIONS):  # x <- x + (xd - distort(x)): converges for moderate distortion
        dx, dy = _distort_opencv(x, y, k)
        x, y = x + (xd - dx), y + (yd - dy)
    return x, y


def pixel_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor, u: torch.Tensor,
               v: torch.Tensor, fisheye: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel positions (u right, v down, in pixels; +0.5 is a pixel centre).

    c2w (N, 3, 4), intrinsics (N, 4) fx fy cx cy, distortion (N, 6), u / v (N,) -> origins (N, 3), unit
    directions (N, 3) in scene coordinates.
    """
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x, y = undistort((u - cx) / fx, (v - cy) / fy, distortion, fisheye)
    d_cam = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)  # OpenGL: +Y up, looking down -Z
    d = torch.einsum("nij,nj->ni", c2w[:, :, :3], d_cam)
    return c2w[:, :, 3], torch.nn.functional.normalize(d, dim=-1)


def image_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor, height: int, width: int,
               fisheye: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """All pixel-centre rays of one camera: c2w (3, 4), intrinsics (4,), distortion (6,) -> (H*W, 3) x 2, row-major."""
    dev = c2w.device
    v, u = torch.meshgrid(torch.arange(height, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    n = height * width
    return pixel_rays(c2w.expand(n, 3, 4), intrinsics.expand(n, 4), distortion.expand(n, 6), u.reshape(-1),
                      v.reshape(-1), fisheye)
