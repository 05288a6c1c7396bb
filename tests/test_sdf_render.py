"""SDF rendering and extraction on analytic shapes: sphere tracing against dense sampling, marching cubes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from ingp.sdf.extract import marching_cubes, sample_lattice
from ingp.sdf.mesh import Normalization
from ingp.sdf.render import box_interval, dense_trace, orbit_rays, render_view, sphere_trace


def sphere(p: torch.Tensor, radius: float = 0.3) -> torch.Tensor:
    return (p - 0.5).norm(dim=1) - radius


def torus(p: torch.Tensor, major: float = 0.25, minor: float = 0.08) -> torch.Tensor:
    q = p - 0.5
    ring = torch.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2) - major
    return torch.sqrt(ring ** 2 + q[:, 1] ** 2) - minor


def shapes(p: torch.Tensor) -> torch.Tensor:  # a torus with a small sphere off-centre: holes, two components
    return torch.minimum(torus(p), (p - torch.tensor([0.5, 0.5, 0.78])).norm(dim=1) - 0.06)


def test_orbit_camera_looks_at_the_centre():
    origins, dirs = orbit_rays(3, 3, azimuth=90.0, elevation=0.0, distance=2.0)
    assert torch.allclose(origins[4], torch.tensor([2.5, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(dirs[4], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)  # centre pixel
    assert torch.allclose(dirs.norm(dim=1), torch.ones(9))
    assert dirs[1, 1] > 0 and dirs[3, 2] > 0  # top row looks up; left column (az 90: +z is left) looks to +z


def test_box_interval():
    o = torch.tensor([[-1.0, 0.5, 0.5], [-1.0, 2.0, 0.5], [0.5, 0.5, 0.5]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far = box_interval(o, d)
    assert near[0] == pytest.approx(1.0) and far[0] == pytest.approx(2.0)
    assert near[1] > far[1]  # misses
    assert near[2] == 0 and far[2] == pytest.approx(0.5)  # starts inside the box


@pytest.mark.parametrize("overestimate,agree", [(1.0, 0.995), (1.25, 0.99)])
def test_sphere_tracing_matches_dense_sampling(overestimate, agree):
    """Overestimated distances (as a learned SDF may give) make steps land inside: the bisection path. Rays that
    graze a silhouette may legitimately differ, so a small share of disagreement is allowed."""
    origins, dirs = orbit_rays(48, 40, azimuth=20.0, elevation=35.0, distance=1.6)
    fn = lambda p: shapes(p) * overestimate  # noqa: E731
    t, hit = sphere_trace(fn, origins, dirs)
    t_ref, hit_ref = dense_trace(fn, origins, dirs, n_samples=4096)
    assert 0.1 < hit_ref.float().mean() < 0.8  # the view holds both shapes and background
    assert (hit == hit_ref).float().mean() > agree
    both = hit & hit_ref
    points = (origins[both] + t[both, None] * dirs[both]).requires_grad_(True)
    (normal,) = torch.autograd.grad(shapes(points).sum(), points)
    head_on = (normal * dirs[both]).sum(1).abs() > 0.2  # t error <= epsilon / cos(angle to the normal)
    assert (t[both] - t_ref[both])[head_on].abs().max() < 1.5e-3
    assert shapes(points).abs().max() < 1e-3


def test_sphere_tracing_hits_the_analytic_sphere():
    origins, dirs = orbit_rays(32, 32, distance=1.5)
    t, hit = sphere_trace(sphere, origins, dirs)
    oc = origins - 0.5  # closed form: |o + t d - c| = r
    b = (oc * dirs).sum(1)
    disc = b ** 2 - ((oc ** 2).sum(1) - 0.09)
    assert torch.equal(hit, disc > 0)
    assert sphere(origins[hit] + t[hit, None] * dirs[hit]).abs().max() < 2.1e-4  # within epsilon of the surface
    head_on = disc > 0.3 ** 2 * 0.25  # not grazing: the distance bound translates into a t bound
    assert (t[head_on] - (-b[head_on] - disc[head_on].sqrt())).abs().max() < 5e-4


def test_render_shades_with_normals():
    image = render_view(sphere, lambda p: torch.nn.functional.normalize(p - 0.5, dim=1), 64, 48, azimuth=0,
                        elevation=0, distance=1.5)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert (image[0, 0] == 255).all() and not (image[24, 32] == 255).all()  # background and surface
    # facing the camera (normal +z): the blue channel is the largest
    assert image[24, 32, 2] > image[24, 32, 0] and image[24, 32, 2] > image[24, 32, 1]


def test_marching_cubes_sphere_is_closed_outward_and_without_duplicates():
    values = sample_lattice(sphere, 65)
    assert values[32, 32, 32] == pytest.approx(-0.3, abs=1e-6)
    assert values[0, 32, 32] == pytest.approx(0.2, abs=1e-6)  # (0, 0.5, 0.5): lattice (i, j, k) -> (x, y, z)
    v, f = marching_cubes(values)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert len(np.unique(v, axis=0)) == len(v)  # no duplicate vertices
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.3 ** 3, rel=0.01)  # positive: faces point outwards
    assert np.abs(np.linalg.norm(v - 0.5, axis=1) - 0.3).max() < 2e-3
    norm = Normalization(center=(10.0, 0.0, -2.0), scale=0.5)
    assert np.allclose(norm.to_mesh(v).mean(axis=0), [10, 0, -2], atol=1e-3)  # back in mesh units


def test_marching_cubes_refuses_a_field_without_surface():
    from ingp.errors import InputError

    with pytest.raises(InputError, match="does not change sign"):
        marching_cubes(np.ones((8, 8, 8), dtype=np.float32))


def test_finite_difference_normals_match_autograd_on_a_smooth_model():
    from ingp.sdf.model import build_model, sdf_normals, sdf_normals_fd

    config = {"encoding": {"otype": "Frequency", "n_frequencies": 2},
              "network": {"otype": "FullyFusedMLP", "activation": "Tanh", "output_activation": "None",
                          "n_neurons": 16, "n_hidden_layers": 1}}
    model = build_model(config, 0, "cpu")
    points = torch.rand(500, 3)
    exact, fd = sdf_normals(model, points), sdf_normals_fd(model, points, h=1e-3)
    assert (exact * fd).sum(dim=1).min() > 0.999
