"""Data-parallel fits on ``torch.distributed``: ``torchrun --nproc_per_node N -m ingp image|sdf|nerf fit ...``.

The scheme (docs/scaling.md): every rank draws the *global* batch from the global seed and keeps its slice
(``World.part``), so what is trained does not depend on the number of ranks; each rank scales its local mean loss
by its share of the global sample count (``local_share``), backpropagates, and ``reduce_gradients`` sums every
module's one flat ``params`` gradient over the ranks (one all-reduce per module, started together, plus a small
float64 vector of step statistics such as the loss and NeRF's sample counts). With two ranks this equals, bit for
bit, one process that accumulates the two half-batches in rank order: the shares are exact powers of two and
two-term addition commutes. Every rank then takes the same optimiser step, so replicas stay equal without ever
broadcasting weights.

Rank 0 alone writes the run folder; the other ranks read it on ``--resume`` (so it must be on a filesystem every
rank sees). A seconds budget is decided collectively (``SharedBudget``) so all ranks stop at the same step.
Startup failures on any rank (bad input, a missing file, configs that differ between ranks) become one line on
every rank (``agree``); a rank that dies mid-run makes the others' next collective fail, which ``main`` turns into
one line and exit status 1 (torchrun also stops the remaining workers).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .errors import ConfigError, InputError
from .train import Budget

TIMEOUT_ENV = "INGP_DIST_TIMEOUT"  # seconds a collective (and the rendezvous) may wait for the other ranks
DEFAULT_TIMEOUT = 600.0


# what this process has all-reduced: calls and payload bytes (each rank sends and receives about 2(W-1)/W of the
# payload per all-reduce with a ring algorithm); read by the fits' metrics and benchmarks/scaling.py
traffic = {"steps": 0, "all_reduces": 0, "payload_bytes": 0}


class DistributedError(RuntimeError):
    """Another rank failed or vanished; raised on the ranks that are still alive."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` ranks, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def part(self, n: int, *, what: str = "--batch-size", even: bool = True) -> tuple[int, int]:
        """This rank's slice ``[start, stop)`` of a global batch of ``n``: contiguous, in rank order, disjoint and
        together complete. With ``even`` an ``n`` that does not split evenly is an ``InputError`` naming ``what``;
        without it the slices differ by at most one (NeRF's adaptive ray count)."""
        if even and n % self.size:
            raise InputError(f"{what} {n} does not split evenly over {self.size} ranks; use a multiple of "
                             f"{self.size}")
        return self.rank * n // self.size, (self.rank + 1) * n // self.size


_local_depth = 0  # > 0 inside ``local()``


@contextlib.contextmanager
def local():
    """Inside this block ``world()`` is a single process even in a distributed job: for independent jobs that
    ranks share out (the tile farm), each an ordinary fit."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def world() -> World:
    """The current world: from the initialised process group, else a single process. Under torchrun without an
    initialised group (the ``ingp`` script instead of ``-m ingp``) every rank would write the same run folder, so
    that is refused."""
    import torch.distributed as dist

    if _local_depth:
        return World()
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise InputError("started by torchrun with WORLD_SIZE > 1, but torch.distributed is not initialised: "
                         "launch `torchrun ... -m ingp ...` (python -m), not the ingp script")
    return World()


def timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
    try:
        seconds = float(text)
    except ValueError:
        raise InputError(f"${TIMEOUT_ENV}: expected seconds, got {text!r}") from None
    if not seconds > 0:
        raise InputError(f"${TIMEOUT_ENV}: expected a positive number of seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def init_from_env() -> World:
    """Join the job torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); a
    single process (no WORLD_SIZE, or 1) stays alone. Backend: gloo for CPU tensors, plus NCCL for CUDA tensors
    when CUDA is available (each rank then uses GPU LOCAL_RANK). Non-zero ranks print nothing on stdout."""
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1 or dist.is_initialized():
        return world()
    missing = [key for key in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(key)]
    if missing:
        raise InputError(f"WORLD_SIZE is {size} but ${', $'.join(missing)} not set: launch with torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend=backend, timeout=timeout())
    except (RuntimeError, ValueError) as err:  # torch raises DistNetworkError/DistStoreError (RuntimeErrors)
        raise DistributedError(f"rank {os.environ['RANK']}: rendezvous at {where} failed: {_first_line(err)}") \
            from None
    w = world()
    if w.rank != 0:
        sys.stdout = open(os.devnull, "w")  # one result line per job, from rank 0; errors still go to stderr
    return w


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _collective(what: str, fn: Callable[[], Any]) -> Any:
    """Run a collective; a failure (a rank died, a timeout) becomes a ``DistributedError`` naming this rank."""
    try:
        return fn()
    except RuntimeError as err:
        if isinstance(err, DistributedError):
            raise
        raise DistributedError(f"rank {world().rank}: {what} failed, another rank probably stopped: "
                               f"{_first_line(err)}") from None


# ---- per-step collectives ------------------------------------------------------------------------------------------

def local_share(start: int, stop: int, n: int) -> float:
    """The factor that turns this rank's mean loss over ``stop - start`` samples into its part of the global mean
    over ``n`` samples (exact for equal power-of-two splits)."""
    return (stop - start) / n if n else 0.0


def reduce_gradients(params: Iterable[torch.Tensor], stats: torch.Tensor | None = None) -> torch.Tensor | None:
    """Sum the gradients of ``params`` over all ranks in place (a missing gradient counts as zeros, so every rank
    reduces the same tensors), and ``stats`` (a small vector, e.g. [loss, counts]) likewise; returns ``stats``.
    One all-reduce per parameter (ingp modules hold all weights in one flat tensor), all started before any is
    waited on. A no-op in a single process."""
    w = world()
    if not w.distributed:
        return stats
    import torch.distributed as dist

    params = list(params)

    def run():
        handles = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            handles.append(dist.all_reduce(p.grad, async_op=True))
        if stats is not None:
            handles.append(dist.all_reduce(stats, async_op=True))
        for handle in handles:
            handle.wait()
        tensors = [p.grad for p in params] + ([] if stats is None else [stats])
        traffic["all_reduces"] += len(tensors)
        traffic["payload_bytes"] += sum(t.numel() * t.element_size() for t in tensors)
        return stats

    return _collective("gradient all-reduce", run)


def data_parallel_backward(part: torch.Tensor, params: Iterable[torch.Tensor],
                           *counts: float) -> tuple[torch.Tensor, list[float]]:
    """Backward of this rank's ``part`` of the global loss (e.g. its mean loss times ``local_share``), then the
    gradient all-reduce. Returns (the global loss as a 0-d tensor, ``counts`` summed over the ranks). In a single
    process: a plain ``part.backward()``, the loss and the counts unchanged."""
    if not world().distributed:
        part.backward()
        return part.detach(), list(counts)
    loss = part
    part.backward()
    stats = torch.tensor([float(part.detach()), *map(float, counts)], dtype=torch.float64,
                         device=_stats_device(loss))
    stats = reduce_gradients(params, stats).cpu()
    traffic["steps"] += 1
    return stats[0].to(loss.dtype), stats[1:].tolist()


def _stats_device(t: torch.Tensor) -> torch.device:
    # gloo reduces CPU tensors; with the NCCL part of the group CUDA tensors go there
    return t.device if t.device.type == "cuda" else torch.device("cpu")


@dataclass
class SharedBudget(Budget):
    """A ``Budget`` whose seconds are the slowest rank's (one tiny all-reduce per check), so every rank stops at
    the same step; a steps budget needs no communication."""

    def done(self, step: int, seconds: float) -> bool:
        if self.seconds is not None and world().distributed:
            import torch.distributed as dist

            t = torch.tensor([seconds], dtype=torch.float64)
            _collective("budget all-reduce", lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX))
            seconds = float(t[0])
        return super().done(step, seconds)


def run_metrics() -> dict:
    """The metrics fields of a run: ranks, and for a data-parallel one the all-reduce payload per training step
    (counted over this process's steps)."""
    w = world()
    if not w.distributed:
        return {"ranks": 1}
    steps = max(traffic["steps"], 1)
    return {"ranks": w.size, "allreduce_bytes_per_step": traffic["payload_bytes"] / steps,
            "allreduces_per_step": traffic["all_reduces"] / steps}


def shared_budget(budget: Budget) -> Budget:
    return SharedBudget(budget.steps, budget.seconds) if world().distributed else budget


# ---- startup and results -------------------------------------------------------------------------------------------

def _gather_objects(obj: Any, what: str) -> list:
    import torch.distributed as dist

    out = [None] * world().size
    _collective(what, lambda: dist.all_gather_object(out, obj))
    return out


@contextlib.contextmanager
def agree():
    """Every rank runs the block; if it fails on any rank, it fails on every rank with the first failing rank's
    message (user mistakes stay ``InputError``/``ConfigError``, anything else is a ``DistributedError`` on the
    other ranks), so no rank waits for a collective that never comes. A plain pass-through in a single process."""
    failure = None
    try:
        yield
    except Exception as err:  # reported to the other ranks first, then raised here as it is
        failure = err
    if not world().distributed:
        if failure is not None:
            raise failure
        return
    report = None
    if failure is not None:
        category = "config" if isinstance(failure, ConfigError) else \
            "input" if isinstance(failure, (InputError, ValueError, OSError)) else type(failure).__name__
        report = (category, str(failure))
    reports = _gather_objects(report, "startup check")
    if failure is not None:
        raise failure
    for rank, report in enumerate(reports):
        if report is not None:  # user mistakes keep their kind (exit 2); anything else stops this rank with 1
            kind = {"config": ConfigError, "input": InputError}.get(report[0], DistributedError)
            raise kind(f"rank {rank}: {report[1]}" if kind is not DistributedError else
                       f"rank {rank} failed at startup: {report[0]}: {report[1]}")


def check_same(obj: Any, what: str) -> None:
    """``InputError`` on every rank when ``obj`` (JSON-able) differs between ranks: they must run the same fit."""
    if not world().distributed:
        return
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    digests = _gather_objects(digest, "config check")
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise InputError(f"{what} differs between rank 0 and rank {odd[0]}: every rank must be started with the "
                         f"same arguments and inputs")


def on_rank0(fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0, its result (picklable) on every rank; a failure there is raised everywhere."""
    w = world()
    if not w.distributed:
        return fn()
    import torch.distributed as dist

    payload = [None]
    if w.rank == 0:
        try:
            payload = [("ok", fn())]
        except Exception as err:  # sent on, then raised here too
            payload = [("error", f"{type(err).__name__}: {err}")]
            _collective("result broadcast", lambda: dist.broadcast_object_list(payload, src=0))
            raise
    _collective("result broadcast", lambda: dist.broadcast_object_list(payload, src=0))
    kind, value = payload[0]
    if kind == "error":
        raise DistributedError(f"rank 0 failed: {value}")
    return value


def barrier() -> None:
    if world().distributed:
        import torch.distributed as dist

        _collective("barrier", dist.barrier)


def open_run(out, primitive: str, config: dict | None, *, resume: bool, overwrite: bool = False,
             device: torch.device | str = "cpu"):
    """``ingp.runs.open_or_create_run`` for a data-parallel fit: rank 0 opens or creates the run; the others only
    read it (``--resume``: its config and checkpoint) and never write. Returns (the run on rank 0, else None;
    the checkpoint state or None; the run's config)."""
    from .runs import RunDir, open_or_create_run

    w = world()
    if w.rank == 0:
        run, state = open_or_create_run(out, primitive, config, resume=resume, overwrite=overwrite, device=device)
        return run, state, run.config() if resume else config
    if resume:
        run = RunDir(out, primitive=primitive)
        return None, run.load_checkpoint(device), run.config()
    if (Path(out) / "checkpoint.pt").exists() and not overwrite:
        raise InputError(f"--out {out}: already holds a run; continue it with --resume or choose another folder")
    return None, None, config


# ---- entry point ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m ingp``: the ``ingp`` command, inside a torch.distributed job when torchrun started it."""
    from .cli import main as cli_main

    import torch.distributed as dist

    joined = not (dist.is_available() and dist.is_initialized())  # this call joins the job (and leaves it)
    try:
        w = init_from_env()
    except (InputError, DistributedError) as err:
        print(f"ingp: error: {err}", file=sys.stderr, flush=True)
        return 2 if isinstance(err, InputError) else 1
    try:
        return cli_main(argv)
    except DistributedError as err:
        print(f"ingp: error: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        if w.distributed and joined:
            shutdown()
