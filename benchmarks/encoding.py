"""Hash-grid encoding throughput on this machine: ingp's kernels side by side with a pure-PyTorch peer.

    python benchmarks/encoding.py [--peer PATH/TO/encoding.py] [--repeats 7] [--threads 2]

Prints a table of million points per second: the median over repeats, all rows measured in one run, the contenders
interleaved so that machine noise hits all alike; each timed call follows two untimed ones, so caches are as warm
as in a training loop:

* ``forward``: encode a batch, no autograd graph;
* ``fwd+bwd``: encode, then backward of a random output gradient into the table (the training case; inputs do
  not need gradients), with the table's gradient cleared before each step as an optimizer does (ingp's optimizers
  hand the buffer back for reuse; for the peer this is ``p.grad = None``, as torch's optimizers do);
* ``train step``: hash grid + 2x64 ReLU MLP (``NetworkWithInputEncoding``), L2 loss, tcnn-semantics Adam step.

Configs (the issue's): 2-D batch 2^16 and 3-D batch 2^18, L=16, F=2, T=2^19, N_min=16, N_max=2048.
``--peer`` points at Ending2015a/hash-grid-encoding's ``encoding.py`` (MIT; fetched outside this repository, never
committed) to run its ``MultiResHashGrid`` with the same hyper-parameters.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import platform
import statistics
import time

import torch

import ingp
from ingp.kernels import backend
from ingp.kernels.flat_params import recycle_grad

GRID = dict(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16, finest=2048)
CASES = [(2, 2**16), (3, 2**18)]


def grid_config() -> dict:
    g = GRID
    return {"otype": "HashGrid", "n_levels": g["n_levels"], "n_features_per_level": g["n_features_per_level"],
            "log2_hashmap_size": g["log2_hashmap_size"], "base_resolution": g["base_resolution"],
            "per_level_scale": math.exp(math.log(g["finest"] / g["base_resolution"]) / (g["n_levels"] - 1))}


def load_peer(path: str, dims: int) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("peer_encoding", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    g = GRID
    return module.MultiResHashGrid(dims, n_levels=g["n_levels"], n_features_per_level=g["n_features_per_level"],
                                   log2_hashmap_size=g["log2_hashmap_size"], base_resolution=g["base_resolution"],
                                   finest_resolution=g["finest"])


def forward_step(module, x):
    with torch.no_grad():
        module(x)


def fwd_bwd_step(module, x, grad):
    for p in module.parameters():
        recycle_grad(p)  # what ingp's optimizers do in zero_grad(); a plain `p.grad = None` for other modules
    module(x).backward(grad)


def contenders(dims: int, peer_path: str | None) -> dict:
    """name -> (module, kernel backend to force or None)."""
    enc = ingp.Encoding(dims, grid_config())
    found = {"ingp (numba CPU kernels)": (enc, "numba"), "ingp (pure torch path)": (enc, "torch")}
    if peer_path:
        found["Ending2015a (pure torch)"] = (load_peer(peer_path, dims), None)
    return found


def train_contender(dims: int):
    net = ingp.NetworkWithInputEncoding(dims, 1, grid_config(), {
        "otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
        "n_hidden_layers": 2})
    opt = ingp.build_optimizer({"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99,
                                "epsilon": 1e-15, "l2_reg": 1e-6}, net.parameters())
    return net, opt


def train_step(net, opt, x, target):
    opt.zero_grad(set_to_none=True)
    loss = ((net(x) - target) ** 2).mean()
    loss.backward()
    opt.step()


def time_call(fn, force: str | None, warm: int = 2) -> float:
    """Seconds of one call, timed after ``warm`` untimed back-to-back calls (caches warm, as in a training loop)."""
    with backend(force) if force else _null():
        for _ in range(warm):
            fn()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", help="path to Ending2015a/hash-grid-encoding's encoding.py (optional)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warm", type=int, default=2, help="untimed calls before each timed one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-torch-path", action="store_true", help="leave out the slow pure-torch path rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, numba {numba.__version__}, "
          f"{args.threads} threads, median of {args.repeats}, each after {args.warm} warm calls")
    print("| dims | batch | contender | forward M pts/s | fwd+bwd M pts/s | train step M pts/s |")
    print("|---|---|---|---|---|---|")
    for dims, batch in CASES:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(batch, dims, generator=gen)
        grad = torch.randn(batch, GRID["n_levels"] * GRID["n_features_per_level"], generator=gen)
        target = torch.rand(batch, 1, generator=gen)
        found = contenders(dims, args.peer)
        if args.skip_torch_path:
            found.pop("ingp (pure torch path)")
        net, opt = train_contender(dims)
        jobs = {}
        for name, (module, force) in found.items():
            jobs[(name, "fwd")] = (lambda m=module: forward_step(m, x), force)
            jobs[(name, "bwd")] = (lambda m=module: fwd_bwd_step(m, x, grad), force)
        jobs[("ingp (numba CPU kernels)", "train")] = (lambda: train_step(net, opt, x, target), "numba")
        for fn, force in jobs.values():  # warm-up: compile kernels, fault in memory
            time_call(fn, force, warm=0)
        times = {key: [] for key in jobs}
        for _ in range(args.repeats):
            for key, (fn, force) in jobs.items():
                times[key].append(time_call(fn, force, args.warm))
        for name in found:
            cells = []
            for kind in ("fwd", "bwd", "train"):
                t = times.get((name, kind))
                cells.append(f"{batch / statistics.median(t) / 1e6:.2f}" if t else "-")
            print(f"| {dims} | 2^{int(math.log2(batch))} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
