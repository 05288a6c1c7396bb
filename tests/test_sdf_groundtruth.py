"""SDF ground truth: libigl's AABB distance and fast winding number against brute-force references; sampling."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from ingp.errors import InputError
from ingp.sdf.groundtruth import MeshField, brute_force_unsigned_distance, brute_force_winding_number
from ingp.sdf.mesh import Normalization, load_mesh, normalized, validated


def _mesh(tm: trimesh.Trimesh):
    return validated(tm.vertices, tm.faces)


def test_distance_and_sign_match_brute_force_on_a_closed_mesh():
    mesh = _mesh(trimesh.creation.torus(0.3, 0.12, major_sections=24, minor_sections=12))
    field = MeshField(mesh)
    rng = np.random.default_rng(0)
    surface, _ = field.sample_surface(300, rng)
    points = np.concatenate([rng.uniform(-0.5, 0.5, (500, 3)), surface + rng.normal(0, 0.01, surface.shape)])
    exact = brute_force_unsigned_distance(points, mesh.triangles)
    assert np.abs(field.unsigned_distance(points) - exact).max() < 1e-9
    wn_exact = brute_force_winding_number(points, mesh.triangles)
    inside_exact = wn_exact > 0.5
    assert np.all(np.abs(np.abs(wn_exact - 0.5) - 0.5) < 1e-6)  # closed: 0 or 1 exactly
    assert (field.inside(points) == inside_exact).mean() == 1.0
    sd = field.signed_distance(points)
    assert np.allclose(sd, np.where(inside_exact, -exact, exact), atol=1e-9)
    assert np.abs(field.unsigned_distance(surface)).max() < 1e-9  # samples lie on the surface


def test_open_mesh_sign_follows_the_winding_number():
    closed = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    keep = closed.triangles_center[:, 2] < 0.3  # cut off a cap: a bowl with a hole
    mesh = _mesh(trimesh.Trimesh(closed.vertices, closed.faces[keep], process=False))
    field = MeshField(mesh)
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.5, 0.5, (800, 3))
    wn = brute_force_winding_number(points, mesh.triangles)
    fast = field.winding_number(points)
    assert np.abs(fast - wn).max() < 0.02  # Barnes-Hut approximation
    clear = np.abs(wn - 0.5) > 0.05
    assert (field.inside(points)[clear] == (wn[clear] > 0.5)).all()
    centre = field.inside(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.2], [0.0, 0.0, -0.45]]))
    assert centre.tolist() == [True, True, False]  # deep inside the bowl, near the hole, outside


def test_surface_samples_are_uniform_by_area():
    tm = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 3, 1]], [[0, 1, 2], [3, 4, 5]])
    field = MeshField(_mesh(tm))
    points, face = field.sample_surface(90000, np.random.default_rng(2))
    assert face.mean() == pytest.approx(9 / 10, abs=0.01)  # areas 0.5 and 4.5
    upper = points[face == 1]
    assert np.allclose(upper[:, 2], 1) and (upper[:, :2].sum(axis=1) <= 3 + 1e-12).all()
    assert upper[:, 0].mean() == pytest.approx(1.0, abs=0.02)  # centroid of the triangle


def test_normalization_round_trip_and_padding():
    vertices = np.array([[-3.0, 1.0, 2.0], [5.0, 2.0, 2.5], [0.0, 4.0, 3.0]])
    norm = Normalization.fit(vertices)
    unit = norm.to_unit(vertices)
    assert unit.min() == pytest.approx(0.1) and unit.max() == pytest.approx(0.9)
    assert np.allclose(unit.min(0) + unit.max(0), 1.0)  # centred
    assert np.allclose(norm.to_mesh(unit), vertices)
    assert Normalization.from_record(norm.record()) == norm


@pytest.mark.parametrize("vertices,faces,message", [
    (np.zeros((0, 3)), np.zeros((0, 3)), "no vertices"),
    (np.eye(3), np.zeros((0, 3)), "no faces"),
    (np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), [[0, 1, 2]], "NaN"),
    (np.eye(3), [[0, 1, 3]], "out of range"),
    (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), [[0, 1, 2]], "degenerate"),
])
def test_bad_meshes_are_input_errors(vertices, faces, message):
    with pytest.raises(InputError, match=message):
        validated(np.asarray(vertices, dtype=float), np.asarray(faces))


def test_degenerate_faces_are_dropped(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\n")
    mesh = load_mesh(path)
    assert len(mesh.faces) == 1 and mesh.dropped_faces == 1
    assert normalized(mesh, Normalization.fit(mesh.vertices)).vertices.max() == pytest.approx(0.9)
