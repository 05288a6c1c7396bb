"""``ingp sweep CONFIG.yaml|json``: many fits at once on Ray (``pip install "ingp[ray]"``), each a normal run folder,
then one summary table (``summary.md``, ``summary.json``) and a plot (``summary.png``).

A sweep file names the ingp command every fit runs, its fixed options, a grid of options to vary (every
combination is one fit) and optionally several inputs (one fit per input and combination)::

    command: image fit            # any `ingp ... fit` (image, sdf, nerf)
    inputs: [photos/*.png]        # positional inputs, globs allowed (default: none beyond `args`)
    args: {steps: 500, batch-size: 16384, quiet: true}
    grid: {lr: [0.01, 0.003], log2-hashmap-size: [14, 16]}
    out: sweeps/lr                # fit k writes sweeps/lr/<input>-lr=0.01-log2-hashmap-size=14/ ...
    metric: psnr                  # the column plotted (default: psnr, else iou)
    cpus_per_fit: 1               # Ray packs fits onto the CPUs (and GPUs) it has
    gpus_per_fit: 0
    address: null                 # an existing Ray cluster ("auto" or host:port); default: a local one

Each fit runs ``ingp.cli.main`` in a Ray worker with ``cpus_per_fit`` threads, exactly as ``ingp COMMAND ...``
would run it there, so a sweep's run equals the direct fit with the same options and threads bit for bit
(tested). Relative paths in the file are relative to the file. A fit that fails is a row with its one-line error;
the sweep then exits 1.
"""

from __future__ import annotations

import contextlib
import glob
import io
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import InputError

KNOWN_KEYS = {"command", "inputs", "args", "grid", "out", "metric", "cpus_per_fit", "gpus_per_fit", "address"}
RAY_MISSING = 'ingp sweep needs Ray, an optional extra: pip install "ingp[ray]"'


def load_sweep(path: Path) -> dict:
    """The sweep file as a dict, checked: unknown keys, types and empty grids are ``InputError``s naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError(f"{path}: reading YAML needs PyYAML ({RAY_MISSING}); or write the sweep as JSON") \
                from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    else:
        try:
            spec = json.loads(text)
        except RecursionError:
            raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a mapping with 'command', 'args', 'grid', ...")
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise InputError(f"{path}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(KNOWN_KEYS))})")
    command = spec.get("command")
    if not isinstance(command, str) or len(command.split()) != 2 or command.split()[1] != "fit":
        raise InputError(f"{path}: 'command' must be an ingp fit command such as 'image fit', got {command!r}")
    for key in ("args", "grid"):
        if not isinstance(spec.get(key, {}), dict):
            raise InputError(f"{path}: '{key}' must be a mapping of option names to values")
    for key, values in spec.get("grid", {}).items():
        if not isinstance(values, list) or not values:
            raise InputError(f"{path}: grid option {key!r} needs a non-empty list of values")
    inputs = spec.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise InputError(f"{path}: 'inputs' must be a list of paths or globs")
    for key in ("cpus_per_fit", "gpus_per_fit"):
        value = spec.get(key, 1 if key == "cpus_per_fit" else 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                (key == "cpus_per_fit" and value <= 0):
            raise InputError(f"{path}: '{key}' must be a {'positive' if key == 'cpus_per_fit' else 'non-negative'} "
                             f"number, got {value!r}")
    base = path.parent
    resolved = []
    for pattern in inputs:
        full = str(pattern if Path(pattern).is_absolute() else base / pattern)
        matches = sorted(glob.glob(full)) if any(c in full for c in "*?[") else [full]
        if not matches:
            raise InputError(f"{path}: input {pattern!r} matches no file")
        resolved += matches
    out = Path(spec.get("out", path.with_suffix("")))
    return {**spec, "inputs": resolved, "out": out if out.is_absolute() else base / out,
            "args": spec.get("args", {}), "grid": spec.get("grid", {}),
            "cpus_per_fit": spec.get("cpus_per_fit", 1), "gpus_per_fit": spec.get("gpus_per_fit", 0)}


def option_args(options: dict) -> list[str]:
    """``{"batch-size": 4096, "quiet": true, "center": [0.5, 0.5]}`` -> ``--batch-size 4096 --quiet --center 0.5
    0.5`` (underscores become dashes; false and null options are left out)."""
    argv = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def plan(spec: dict) -> list[dict]:
    """One entry per fit: its name, run folder, the varied options, and the full ``ingp`` argv."""
    grid = spec["grid"]
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    inputs = spec["inputs"] or [None]
    fits, names = [], set()
    for source in inputs:
        for combo in combos:
            parts = ([Path(source).stem] if source is not None and len(inputs) > 1 else []) + \
                    [f"{k}={v}" for k, v in combo.items()]
            name = "-".join(parts).replace("/", "_") or "run"
            if name in names:
                raise InputError(f"sweep: two fits would both be named {name!r}")
            names.add(name)
            out = Path(spec["out"]) / name
            options = {**spec["args"], **combo}
            options.pop("out", None)
            argv = [*spec["command"].split(), *([str(source)] if source is not None else []),
                    "--out", str(out), *option_args(options)]
            fits.append({"name": name, "out": str(out), "input": source, "options": combo, "argv": argv})
    return fits


def run_fit(argv: list[str], threads: int) -> dict:
    """One fit, in this process (a Ray worker): ``ingp.cli.main(argv)`` with ``threads`` torch threads. Returns
    {"status", "error" (its one-line message or None), "metrics" (metrics.json or {})}."""
    import torch

    from .cli import main

    torch.set_num_threads(max(1, int(threads)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse errors
            status = exit_.code if isinstance(exit_.code, int) else 2
    metrics_path = Path(argv[argv.index("--out") + 1]) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if status == 0 and metrics_path.is_file() else {}
    error = None
    if status != 0:
        lines = err.getvalue().strip().splitlines() or ["failed"]
        error = next((line[len("ingp: error: "):] for line in reversed(lines) if line.startswith("ingp: error: ")),
                     lines[-1])
    return {"status": int(status), "error": error, "metrics": metrics}


def run_sweep(spec: dict, *, address: str | None = None, num_cpus: int | None = None,
              quiet: bool = False) -> list[dict]:
    """Every fit of ``plan(spec)`` as a Ray task (``cpus_per_fit`` CPUs, ``gpus_per_fit`` GPUs each); returns the
    fits with their results, in plan order, and writes the summary files into ``spec["out"]``."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    fits = plan(spec)
    Path(spec["out"]).mkdir(parents=True, exist_ok=True)
    cpus, gpus = spec["cpus_per_fit"], spec["gpus_per_fit"]
    address = address or spec.get("address")
    threads = max(1, math.floor(cpus))
    env = {"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": not quiet,
                                  "include_dashboard": False, "logging_level": "ERROR"}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_fit)
        pending = {task.remote(fit["argv"], threads): i for i, fit in enumerate(fits)}
        done_count = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                fits[i]["result"] = ray.get(ready[0])
            except Exception as err:  # a worker that died: that fit failed, the others go on
                fits[i]["result"] = {"status": 1, "error": f"Ray task failed: {str(err).splitlines()[0]}",
                                     "metrics": {}}
            done_count += 1
            if not quiet:
                r = fits[i]["result"]
                print(f"[{done_count}/{len(fits)}] {fits[i]['name']}: "
                      f"{'ok' if r['status'] == 0 else 'failed: ' + str(r['error'])}", flush=True)
    finally:
        if started:
            ray.shutdown()
    write_summary(spec, fits)
    return fits


SUMMARY_FIELDS = ("psnr", "ssim", "iou", "chamfer", "steps", "seconds", "n_params", "loss")


def summary_rows(fits: list[dict]) -> tuple[list[str], list[list[Any]]]:
    keys = list(dict.fromkeys(k for fit in fits for k in fit["options"]))
    fields = [f for f in SUMMARY_FIELDS if any(f in fit["result"]["metrics"] for fit in fits)]
    header = ["run", *keys, *fields, "status"]
    rows = []
    for fit in fits:
        r = fit["result"]
        rows.append([fit["name"], *(fit["options"].get(k, "") for k in keys),
                     *(r["metrics"].get(f) for f in fields), "ok" if r["status"] == 0 else f"failed: {r['error']}"])
    return header, rows


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(spec: dict, fits: list[dict]) -> None:
    """``summary.json`` (every fit's options, status and metrics), ``summary.md`` (the table) and ``summary.png``
    (the metric per fit) in the sweep's folder."""
    from .runs import atomic_write, write_json

    out = Path(spec["out"])
    header, rows = summary_rows(fits)
    write_json(out / "summary.json", [{k: fit[k] for k in ("name", "out", "input", "options")} | fit["result"]
                                      for fit in fits])
    table = markdown_table(header, rows)
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(table))
    metric = spec.get("metric") or next((m for m in ("psnr", "iou") if m in header), None)
    values = [(fit["name"], fit["result"]["metrics"].get(metric)) for fit in fits]
    values = [(n, v) for n, v in values if isinstance(v, (int, float))]
    if metric and values:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 0.4 * len(values) + 1.2))
        ax.barh([n for n, _ in values][::-1], [v for _, v in values][::-1], color="#3a7bd5")
        ax.set_xlabel(metric)
        ax.set_title(f"{spec['command']}: {metric} per fit")
        lo = min(v for _, v in values)
        if metric == "psnr":
            ax.set_xlim(left=max(0.0, lo - 3))
        fig.tight_layout()
        atomic_write(out / "summary.png", lambda tmp: fig.savefig(tmp, dpi=110))
        plt.close(fig)


def run_command(args) -> int:
    from .outputs import check_output

    spec = load_sweep(args.config)
    if args.out is not None:
        spec["out"] = args.out
    else:  # --out went through the output policy with the command line; the file's 'out' goes through it here
        check_output(Path(spec["out"]), f"{args.config}: 'out'",
                     [("config", args.config), *(("inputs", Path(p)) for p in spec["inputs"])], force=args.force)
    fits = run_sweep(spec, address=args.address, num_cpus=args.num_cpus, quiet=args.quiet)
    header, rows = summary_rows(fits)
    print(markdown_table(header, rows), end="")
    failed = sum(fit["result"]["status"] != 0 for fit in fits)
    plot = ", summary.png" if (Path(spec["out"]) / "summary.png").exists() else ""
    print(f"wrote {spec['out']}/summary.md, summary.json{plot}"
          f"{f'; {failed} of {len(fits)} fits failed' if failed else ''}")
    return 1 if failed else 0


def register(commands) -> None:
    from .cli import positive_int

    sweep = commands.add_parser("sweep", help="many fits at once on Ray (a grid of options or one fit per input)",
                                description="Run every fit a sweep file describes as Ray tasks packed onto the "
                                            "CPUs/GPUs available, each a normal run folder, then write "
                                            "summary.md/json/png. Needs the ray extra: pip install \"ingp[ray]\".")
    sweep.add_argument("config", type=Path, help="sweep file (.yaml, .yml or .json)")
    sweep.add_argument("--out", type=Path, help="folder for the runs and the summary (default: the file's 'out')")
    sweep.add_argument("--address", help="an existing Ray cluster (auto or host:port; default: start one here)")
    sweep.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray instance (default: all of them)")
    sweep.add_argument("--quiet", action="store_true", help="print only the summary table")
    sweep.set_defaults(handler=run_command)
