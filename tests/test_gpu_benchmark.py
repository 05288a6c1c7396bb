"""``benchmarks/gpu.py --smoke``: the GPU benchmark's correctness and image-step rows run end to end on CPU tensors
through Triton's interpreter, so the one-command GPU table cannot rot between GPU sessions."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_smoke_rows(capsys):
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = dict(module.main(["--smoke", "--strict", "--only", "correctness", "image"]))
    printed = capsys.readouterr().out
    assert "| measurement | triton | torch path |" in printed
    for dims in (2, 3):
        for label in (f"{dims}-D grid vs CPU numba: relative max error of values / d table / d x (512 pts)",
                      f"{dims}-D double backward vs CPU torch: relative max error of d table / d x"):
            for kernel in ("triton", "torch"):
                errors = [float(v) for v in rows[label][kernel].split(" / ")]
                assert max(errors) < 1e-5, (label, kernel, errors)
    step = rows["image step (tcnn mlp_learning_an_image, batch 2^10), ms (peak MB)"]
    assert float(step["triton"].split()[0].replace(",", "")) > 0 and step["ratio"].endswith("x")
