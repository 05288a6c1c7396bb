"""Data-parallel fits on two gloo ranks (CPU): the partition, bit-exactness against one process that accumulates the
same two half-batches, replicas, resume, a seconds budget, bad input on every rank, and a crashing rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ingp.distributed import World
from ingp.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
import dist_workers  # noqa: E402
from test_nerf_fit import ball  # noqa: E402,F401  (the tiny NeRF scene fixture)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_partition_is_disjoint_complete_and_in_rank_order():
    for size in (1, 2, 3, 4, 7):
        for n in (0, 1, 5, 64, 1000, 4099):
            parts = [World(r, size).part(n, even=False) for r in range(size)]
            covered = np.concatenate([np.arange(*p) for p in parts])
            assert np.array_equal(covered, np.arange(n))  # disjoint, complete, in rank order
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    assert World(1, 2).part(512) == (256, 512)
    with pytest.raises(InputError, match="--batch-size 513 does not split evenly over 2 ranks"):
        World(0, 2).part(513)


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory) -> Path:
    from ingp.image.io import write_image

    path = tmp_path_factory.mktemp("img") / "tiny.png"
    ys, xs = np.mgrid[0:24, 0:32] / 24.0
    rgb = np.stack([np.sin(6 * xs) * 0.5 + 0.5, np.cos(5 * ys) * 0.5 + 0.5, (xs * ys) % 1], axis=-1)
    write_image(path, rgb.astype(np.float32), linear=False)
    return path


@pytest.fixture(scope="module")
def session(tiny_image, ball, tmp_path_factory) -> Path:
    """One 2-rank job running every check of the three primitives (``dist_workers.session``): process start-up
    dominates, so it is paid once."""
    out = tmp_path_factory.mktemp("dist")
    torch.multiprocessing.start_processes(dist_workers.session, args=(2, free_port(), str(tiny_image), str(ball),
                                                                      str(out)), nprocs=2, join=True,
                                          start_method="spawn")
    return out


def reference_steps(image: Path, n_ranks: int = 2):
    """One process: per step, draw the global batch, backpropagate each rank's half (its mean loss times 1/2) in rank
    order into the same gradient, then one optimiser step."""
    model, loss_fn, optimizer, sampler = dist_workers.image_pieces(image)
    n = dist_workers.BATCH
    losses = []
    for _ in range(dist_workers.STEPS):
        xy, target = sampler.sample(n)
        optimizer.zero_grad()
        total = 0.0
        for r in range(n_ranks):
            a, b = World(r, n_ranks).part(n)
            part = loss_fn(model(xy[a:b]), target[a:b]) * ((b - a) / n)
            part.backward()
            total += float(part.detach())
        optimizer.step()
        losses.append(total)
    return model, optimizer, losses


def assert_states_equal(a: dict, b: dict) -> None:
    """Optimiser state dicts equal bit for bit (tensors by torch.equal)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_states_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_states_equal(x, y)
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def test_two_ranks_equal_one_process_accumulating_both_halves(session, tiny_image):
    torch.set_num_threads(1)
    ranks = [torch.load(session / f"pieces.rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])  # replicas equal
    assert_states_equal(ranks[0]["optimizer"], ranks[1]["optimizer"])
    model, optimizer, losses = reference_steps(tiny_image)
    assert torch.equal(ranks[0]["params"], model.params.detach()), \
        f"max difference {(ranks[0]['params'] - model.params).abs().max()}"
    assert_states_equal(ranks[0]["optimizer"], optimizer.state_dict())  # Adam moments and step counts
    assert np.allclose(ranks[0]["losses"], losses, rtol=1e-6) and ranks[0]["losses"] == ranks[1]["losses"]
    start = dist_workers.image_pieces(tiny_image)[0].params.detach()
    assert not torch.equal(start, model.params.detach())  # it trained


def test_distributed_resume_equals_uninterrupted_run(session):
    for name in ("fit_full", "fit_part", "fit_resume"):
        for r in range(2):
            assert (session / f"{name}.rank{r}").read_text() == "ok"
    full = torch.load(session / "full" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(session / "part" / "checkpoint.pt", weights_only=True)
    assert full["step"] == resumed["step"] == 2 * dist_workers.STEPS
    assert torch.equal(full["weights"]["params"], resumed["weights"]["params"])
    assert_states_equal(full["optimizer"], resumed["optimizer"])
    import json

    metrics = json.loads((session / "full" / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and metrics["steps"] == 2 * dist_workers.STEPS and metrics["psnr"] > 5
    model_bytes = full["weights"]["params"].numel() * 4
    assert metrics["allreduce_bytes_per_step"] == model_bytes + 8 and metrics["allreduces_per_step"] == 2


def test_seconds_budget_stops_every_rank_at_the_same_step(session):
    assert [(session / f"seconds.rank{r}").read_text() for r in range(2)] == ["ok", "ok"]
    assert [(session / f"seconds_steps.rank{r}").read_text() for r in range(2)] == ["4", "4"]  # 4 x 0.3 >= 1


def test_bad_input_is_one_line_on_every_rank(session):
    for r in range(2):
        uneven = (session / f"uneven.rank{r}").read_text()
        assert "--batch-size 513 does not split evenly over 2 ranks" in uneven and "\n" not in uneven
        mismatch = (session / f"mismatch.rank{r}").read_text()
        assert "the run config differs between rank 0 and rank 1" in mismatch and "\n" not in mismatch
    assert not (session / "mismatch" / "checkpoint.pt").exists()


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "INGP_DIST_TIMEOUT": "30"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_cli_errors_are_one_line_per_rank_and_a_crashing_rank_stops_the_job(tiny_image, tmp_path):
    """One torchrun launch: ``ingp image fit`` with a batch two ranks cannot split prints one line on each rank and
    returns 2; then rank 1 dies after two all-reduces, and the job must end, non-zero, well within the timeout."""
    t0 = time.perf_counter()
    result = torchrun(str(Path(__file__).parent / "dist_crash.py"), str(tiny_image), str(tmp_path / "run"),
                      timeout=90)
    elapsed = time.perf_counter() - t0
    # one line per rank (the two processes share stderr, so lines may interleave: count the messages)
    message = "ingp: error: --batch-size 1001 does not split evenly over 2 ranks; use a multiple of 2"
    assert result.stderr.count("ingp: error:") == 2 and result.stderr.count(message) == 2, result.stderr[-2000:]
    assert "rank 0: cli status 2" in result.stderr and "rank 1: cli status 2" in result.stderr
    assert not (tmp_path / "run").exists()
    assert "rank 1 crashes at step 2" in result.stderr
    assert result.returncode != 0 and elapsed < 60, (result.returncode, elapsed, result.stderr[-2000:])


def test_missing_rendezvous_is_one_line(monkeypatch, capsys):
    from ingp import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert distributed.main(["image", "fit", "x.png", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ingp: error: WORLD_SIZE is 2 but $MASTER_ADDR, $MASTER_PORT not set: launch with torchrun"
    with pytest.raises(InputError, match="torch.distributed is not initialised"):  # the ingp script under torchrun
        distributed.world()

def reference_sdf(eikonal: float, n_ranks: int = 2):
    """One process: per step, draw the global batch; for each rank's slice in rank order, its share of the data
    loss plus its off-surface part of the eikonal mean, backpropagated into the same gradient; one step."""
    model, loss_fn, optimizer, pool = dist_workers.sdf_pieces()
    n = dist_workers.SDF_BATCH
    n_surface = pool.counts(n)[0]
    for _ in range(dist_workers.STEPS):
        x_all, t_all = pool.sample(n)
        optimizer.zero_grad()
        for r in range(n_ranks):
            a, b = World(r, n_ranks).part(n)
            x, t = x_all[a:b].clone().requires_grad_(eikonal > 0), t_all[a:b]
            y = model(x).float()
            loss = loss_fn(y, t) * ((b - a) / n)
            if eikonal > 0:
                off = torch.arange(a, b) >= n_surface
                (g,) = torch.autograd.grad(y[off].sum(), x, create_graph=True)
                loss = loss + eikonal * ((g[off].norm(dim=1) - 1) ** 2).sum() / (n - n_surface)
            loss.backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("eikonal", [0.0, 0.1])
def test_sdf_two_ranks_equal_one_process_accumulating_both_halves(session, eikonal):
    torch.set_num_threads(1)
    ranks = [torch.load(session / f"sdf{eikonal}.rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    assert_states_equal(ranks[0]["optimizer"], ranks[1]["optimizer"])
    model, optimizer = reference_sdf(eikonal)
    assert torch.equal(ranks[0]["params"], model.params.detach()), \
        f"max difference {(ranks[0]['params'] - model.params).abs().max()}"
    assert_states_equal(ranks[0]["optimizer"], optimizer.state_dict())


def test_nerf_replicas_and_occupancy_grid_stay_identical_and_match_one_process(session, ball):
    """Two ranks keep equal weights, occupancy grids, Adam state and ray counts; after one step they have traced
    exactly the rays one process traces (same counts, same next ray count) and reached the same weights up to
    float rounding (the loss is a sum of two half-batch means there)."""
    torch.set_num_threads(1)
    ranks = [torch.load(session / f"nerf.rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ("weights", "optimizer", "n_rays", "samples_seen", "samples_marched", "rays_seen", "losses"):
        assert_states_equal(ranks[0][key], ranks[1][key])
    assert set(ranks[0]["weights"]) >= {"density_params", "rgb_params"} and len(ranks[0]["weights"]) > 2  # + grid
    single = dist_workers.nerf_trainer(ball)
    loss = float(single.step(0))
    first = ranks[0]["first"]
    assert (first["samples_seen"], first["samples_marched"], first["rays_seen"], first["n_rays"]) == \
        (single.samples_seen, single.samples_marched, single.rays_seen, single.n_rays)
    assert ranks[0]["losses"][0] == pytest.approx(loss, rel=1e-5)
    for name, w in single.weights().items():
        assert torch.allclose(first["weights"][name], w.detach(), atol=1e-5, rtol=1e-4), name


def test_tile_farm_shares_tiles_between_ranks(session):
    """Under two ranks each tile is fitted once (as an ordinary one-process run) and both ranks get the metrics."""
    import json

    assert [(session / f"tiles.rank{r}").read_text() for r in range(2)] == ["ok", "ok"]
    assert [(session / f"tiles_metrics.rank{r}").read_text() for r in range(2)] == ["8 2", "8 2"]  # 4 tiles x 2 steps
    for name in ("r0c0", "r0c1", "r1c0", "r1c1"):
        metrics = json.loads((session / "tiles" / "tiles" / name / "metrics.json").read_text())
        assert metrics["steps"] == 2 and metrics["ranks"] == 1
