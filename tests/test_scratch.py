"""ingp.scratch: the scalar autograd, MLP and grids against PyTorch; the NumPy model against the scalar one."""

import math
import random

import numpy as np
import pytest
import torch

from ingp.scratch import MLP, Model, PaperGrid, SeedGrid, Value
from ingp.scratch.grids import seed_corners
from ingp.scratch.numpy_model import NumpyModel
from ingp.scratch.train import fit, write_png

T = torch.float64


def _both(fn, *xs):
    """fn on Values and on float64 torch scalars: (value, grads) for each."""
    vs = [Value(x) for x in xs]
    out = fn(*vs)
    out.backward()
    ts = [torch.tensor(x, dtype=T, requires_grad=True) for x in xs]
    ref = fn(*ts)
    ref.backward()
    return (out.data, [v.grad for v in vs]), (ref.item(), [t.grad.item() for t in ts])


TORCH_OPS = {"tanh": torch.tanh, "exp": torch.exp, "log": torch.log, "sigmoid": torch.sigmoid,
             "relu": torch.relu, "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01)}


def _op(name):
    return lambda v: getattr(v, name)() if isinstance(v, Value) else TORCH_OPS[name](v)


EXPRESSIONS = {
    "add_mul_sub": (lambda a, b: a * b + a - b * 3.0 + 2.0, (0.7, -1.3)),
    "div_rdiv_rsub": (lambda a, b: a / b + 1.5 / a - (2.0 - b), (0.7, -1.3)),
    "pow": (lambda a, b: a ** 3 + b ** -2 + a ** 0.5, (0.7, -1.3)),
    "exp_log": (lambda a, b: _op("exp")(a * b) + _op("log")(a * a + 1.0), (0.7, -1.3)),
    "tanh": (lambda a, b: _op("tanh")(a * 2.0 - b), (0.7, -1.3)),
    "sigmoid": (lambda a, b: _op("sigmoid")(a - b) * _op("sigmoid")(-40.0 * b), (0.7, -1.3)),
    "relu": (lambda a, b: _op("relu")(a) * 3.0 + _op("relu")(b) + a * _op("relu")(a - b), (0.7, -1.3)),
    "leaky_relu": (lambda a, b: _op("leaky_relu")(b) * a + _op("leaky_relu")(a), (0.7, -1.3)),
    "abs": (lambda a, b: abs(b) * a + abs(a * b - 1.0), (0.7, -1.3)),
    "neg_shared": (lambda a, b: -(a * a) * (a + b) + (a + b) * (a + b), (0.7, -1.3)),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_ops_match_torch(name):
    fn, xs = EXPRESSIONS[name]
    (v, g), (rv, rg) = _both(fn, *xs)
    assert v == pytest.approx(rv, rel=1e-12, abs=1e-12)
    assert g == pytest.approx(rg, rel=1e-12, abs=1e-12)
    assert any(x != 0 for x in g)


def test_backward_twice_resets_grads_and_deep_graph_has_no_recursion_limit():
    a = Value(1.0)
    y = a
    for _ in range(20000):  # far deeper than sys.getrecursionlimit()
        y = y * 1.0001 + 0.0
    y.backward()
    assert a.grad == pytest.approx(1.0001 ** 20000, rel=1e-9)
    y.backward()  # grads are zeroed first, not accumulated across calls
    assert a.grad == pytest.approx(1.0001 ** 20000, rel=1e-9)


def test_topological_order_on_a_diamond():
    # x feeds two branches that meet again; a wrong order would push c's grad before it is complete
    x = Value(0.5)
    a, b = x.tanh(), x.exp()
    c = a * b
    out = c * a + b
    out.backward()
    t = torch.tensor(0.5, dtype=T, requires_grad=True)
    ta, tb = torch.tanh(t), torch.exp(t)
    (ta * tb * ta + tb).backward()
    assert x.grad == pytest.approx(t.grad.item(), rel=1e-12)


def _torch_model(model: Model, xy_list):
    """The same model in torch, built from the scalar weights and the scalar grid's own corner rule."""
    enc, mlp = model.encoding, model.mlp
    tables = [torch.tensor([[v.data for v in e] for e in t], dtype=T, requires_grad=True) for t in enc.tables]
    Ws = [torch.tensor([[v.data for v in row] for row in W], dtype=T, requires_grad=True) for W in mlp.W]
    bs = [torch.tensor([v.data for v in b], dtype=T, requires_grad=True) for b in mlp.b]
    acts = {"tanh": torch.tanh, "relu": torch.relu, "none": lambda z: z}
    outs = []
    for x, y in xy_list:
        feats = [sum(tables[l][i] * w for i, w in corners) for l, corners in enumerate(enc.corners(x, y))]
        h = torch.cat(feats + ([torch.tensor([x, y], dtype=T)] if getattr(enc, "append_xy", False) else []))
        for k, (W, b) in enumerate(zip(Ws, bs)):
            h = acts[mlp.output_activation if k == len(Ws) - 1 else mlp.activation](W @ h + b)
        outs.append(h)
    return torch.stack(outs), tables + [p for wb in zip(Ws, bs) for p in wb]


@pytest.mark.parametrize("grid", ["seed", "paper"])
def test_whole_hash_grid_mlp_matches_torch(grid):
    rng = random.Random(3)
    if grid == "seed":
        enc = SeedGrid(resolutions=(4, 8, 16), sizes=(16, 32, 16), rng=rng)
    else:
        enc = PaperGrid(n_levels=3, log2_size=5, base_resolution=3, per_level_scale=2.0, init=0.3, rng=rng)
    model = Model(enc, MLP([enc.n_output, 6, 5, 1], "tanh", "tanh", rng=rng))
    pts = [(rng.random(), rng.random()) for _ in range(7)] + [(0.999, 0.0)]
    targets = [rng.random() for _ in pts]
    loss = sum(((model(p)[0] - t) ** 2 for p, t in zip(pts, targets)), Value(0.0)) / len(pts)
    loss.backward()
    out, tparams = _torch_model(model, pts)
    tloss = ((out[:, 0] - torch.tensor(targets, dtype=T)) ** 2).mean()
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    grads = np.array([p.grad for p in model.parameters()])
    tgrads = torch.cat([p.grad.reshape(-1) for p in tparams]).numpy()
    # parameters(): grid entries level by level, then per layer W row-major and b, as the torch list
    np.testing.assert_allclose(grads, tgrads, rtol=1e-10, atol=1e-14)
    assert np.count_nonzero(grads) > len(grads) // 4


def test_seed_grid_index_rules():
    # level 0: dense row-major, corners past the edge wrap to column / row 0
    c = seed_corners(0, 5, 8, 64, 7.5 / 8, 0.0)
    assert [i for i, _ in c] == [7, 0, 15, 8] and [w for _, w in c] == pytest.approx([0.5, 0.5, 0, 0])
    # middle level: ((y*153499) ^ (x*153511)) % T
    c = seed_corners(2, 5, 32, 256, 3 / 32, 5 / 32)
    assert c[0] == (((5 * 153499) ^ (3 * 153511)) % 256, 1.0)
    # last level: nearest vertex only
    c = seed_corners(4, 5, 128, 512, 10.6 / 128, 3.2 / 128)
    assert c == [(((3 * 153499) ^ (11 * 153511)) % 512, 1.0)]
    assert SeedGrid().n_output == 12
    assert len(Model(SeedGrid(), MLP([12, 15, 10, 1])).parameters()) == 3310  # the seed's committed model


@pytest.mark.parametrize("b", [2.0, 1.7])
def test_paper_grid_equals_ingp_hashgrid(b):
    import ingp
    grid = PaperGrid(n_levels=4, features=2, log2_size=6, base_resolution=4, per_level_scale=b, init=1.0,
                     rng=random.Random(5))
    enc = ingp.Encoding(2, {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 6,
                            "base_resolution": 4, "per_level_scale": b}, dtype=torch.float64)
    flat = [v.data for v in grid.parameters()]
    assert enc.params.numel() == len(flat)
    assert any(not dense for *_, dense in grid.levels) and any(dense for *_, dense in grid.levels)
    with torch.no_grad():
        enc.params.copy_(torch.tensor(flat, dtype=torch.float64))
    pts = np.random.default_rng(0).random((50, 2))
    ref = enc(torch.tensor(pts)).detach().numpy()
    ours = np.array([[v.data for v in grid(p)] for p in pts.tolist()])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)  # ingp, like tcnn, places points in float32


@pytest.mark.parametrize("grid", ["seed", "paper", "none"])
def test_numpy_model_matches_scalar(grid):
    rng = random.Random(11)
    enc = {"seed": lambda: SeedGrid(resolutions=(4, 8, 16), sizes=(16, 32, 64), rng=rng),
           "paper": lambda: PaperGrid(n_levels=3, log2_size=5, init=0.2, rng=rng), "none": lambda: None}[grid]()
    model = Model(enc, MLP([enc.n_output if enc else 2, 7, 4, 1], "tanh", "tanh", rng=rng))
    npm = NumpyModel.from_scalar(model)
    assert npm.n_params == len(model.parameters())
    pts = np.random.default_rng(1).random((6, 2))
    target = np.random.default_rng(2).random((6, 1))
    plan = npm.plan(pts)
    pred, _ = npm.forward(plan)
    np.testing.assert_allclose(pred[:, 0], [model(p)[0].data for p in pts.tolist()], rtol=1e-12)
    loss, grads = npm.loss_and_grads(plan, target)
    sloss = sum(((model(p)[0] - t) ** 2 for p, t in zip(pts.tolist(), target[:, 0])), Value(0.0))
    sloss.backward()
    assert loss == pytest.approx(sloss.data, rel=1e-12)
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in grads]),
                               [p.grad for p in model.parameters()], rtol=1e-9, atol=1e-14)
    # five per-pixel SGD steps give the same weights both ways
    from ingp.scratch.train import sgd_step
    for p, t in zip(pts[:5].tolist(), target[:5, 0]):
        sgd_step(model, p, t, lr=0.05)
    npm.sgd_pixels(plan.rows(slice(0, 5)), target[:5], lr=0.05)
    np.testing.assert_allclose(np.concatenate([q.ravel() for q in npm.parameters()]),
                               [p.data for p in model.parameters()], rtol=1e-10, atol=1e-13)


def test_scalar_fit_learns_and_writes_png_frames(tmp_path):
    from PIL import Image
    image = [[0.5 + 0.4 * math.sin(3 * r / 8 + c / 8) for c in range(8)] for r in range(8)]
    model = Model(SeedGrid(resolutions=(4, 8), sizes=(16, 32), rng=random.Random(0)),
                  MLP([6, 8, 1], rng=random.Random(1)))
    history = fit(model, image, epochs=12, lr=0.02, frames=tmp_path, log=lambda s: None)
    assert history[-1] > history[0] + 2.0  # PSNR improves by more than 2 dB
    frame = np.asarray(Image.open(tmp_path / "frame_0011.png"))
    assert frame.shape == (16, 8)  # prediction above reference
    np.testing.assert_array_equal(frame[8:], np.round(np.array(image) * 255).astype(np.uint8))
    write_png(tmp_path / "x.png", [[0.0, 1.0, 2.0]])
    assert np.asarray(Image.open(tmp_path / "x.png")).tolist() == [[0, 255, 255]]
