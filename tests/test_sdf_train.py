"""SDF training pieces: the sample pool's mix and targets, and the optional eikonal term (double backward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from ingp import build_loss, build_optimizer
from ingp.sdf.fit import make_step
from ingp.sdf.groundtruth import MeshField, brute_force_unsigned_distance
from ingp.sdf.mesh import validated
from ingp.sdf.model import build_model, default_model_config
from ingp.sdf.sampler import SamplePool


@pytest.fixture(scope="module")
def pool():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    field = MeshField(validated(sphere.vertices + 0.5, sphere.faces))
    return SamplePool(field, {"pool_size": 4000, "surface_pool_size": 4000, "near_sigma": 0.01}, seed=3), field


def test_pool_mixes_surface_near_and_uniform_with_true_distances(pool):
    pool, field = pool
    x, d = pool.sample(1000)
    assert x.shape == (1000, 3) and d.shape == (1000, 1) and x.dtype == d.dtype == torch.float32
    assert pool.counts(1000) == (500, 375, 125)
    assert torch.all(d[:500] == 0)
    assert field.unsigned_distance(x[:500].numpy()).max() < 1e-6  # surface points lie on the mesh
    near, uniform = x[500:875].numpy(), x[875:].numpy()
    assert field.unsigned_distance(near).max() < 0.06  # a few sigma
    assert uniform.min() >= 0 and uniform.max() <= 1 and field.unsigned_distance(uniform).mean() > 0.05
    tri = field.vertices[field.faces]
    exact = brute_force_unsigned_distance(x[500:].numpy().astype(np.float64), tri)
    inside = np.linalg.norm(x[500:].numpy() - 0.5, axis=1) < 0.3 - 0.01  # clearly inside the sphere
    assert np.allclose(np.abs(d[500:, 0].numpy()), exact, atol=1e-6)
    assert (d[500:, 0].numpy()[inside] < 0).all()


def test_eikonal_step_trains_through_double_backward(pool):
    pool, _ = pool
    config = default_model_config()
    config["encoding"].update(n_levels=2, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0)
    config["network"]["n_neurons"] = 16
    model = build_model(config, 0, "cpu")
    optimizer = build_optimizer({"otype": "Adam", "learning_rate": 1e-2}, model.parameters())
    before = model.params.detach().clone()
    step = make_step(model, build_loss({"otype": "MAPE"}), optimizer, pool, 256, eikonal=0.1)
    losses = [float(step(i)) for i in range(3)]
    assert all(np.isfinite(losses))
    assert not torch.equal(before, model.params.detach())
    # the eikonal term alone has a gradient with respect to the grid and MLP parameters (double backward)
    x = torch.rand(64, 3, requires_grad=True)
    (g,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    (grad,) = torch.autograd.grad(((g.norm(dim=1) - 1) ** 2).mean(), model.params)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
