"""tcnn's Adam as one Triton kernel (run by Triton's interpreter on CPU tensors): bit for bit the numba pass, and
within float rounding of the NumPy transcription of tcnn's kernel in ``test_optim.py``, over several steps, with
zero-gradient hash rows, the matrix / non-matrix split and every option."""

import numpy as np
import pytest
import torch
from test_optim import ADAM_OPTIONS, hash_like_problem, reference_adam, run_adam

from ingp import kernels
from ingp.optim import Adam

OPTIONS = [dict(learning_rate=1e-2, beta1=0.9, beta2=0.99, epsilon=1e-15, l2_reg=1e-6),  # instant-ngp's
           *ADAM_OPTIONS]


@pytest.mark.parametrize("hyper", OPTIONS)
def test_triton_adam_equals_numba_and_tcnn_reference(hyper):
    w0, grads = hash_like_problem(n=96, n_matrix=16, n_steps=6, seed=4)
    w0[1] = -0.0  # a matrix entry at -0.0 with zero gradient: numba's arithmetic makes it +0.0
    for g in grads:
        g[1] = 0
    p, opt = run_adam("triton", w0, grads, 16, **hyper)
    q, ref_opt = run_adam("numba", w0, grads, 16, **hyper)
    state, ref_state = opt.state[p], ref_opt.state[q]
    bits = lambda t: t.detach().view(torch.int32)  # noqa: E731 -- bit for bit, signs of zeros included
    assert torch.equal(bits(p), bits(q))  # the same arithmetic
    for key in ("exp_avg", "exp_avg_sq", "steps"):
        assert torch.equal(bits(state[key]), bits(ref_state[key])), key
    w, m, _, steps = reference_adam(w0.numpy(), [g.numpy() for g in grads], 16, **hyper)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=5e-6, atol=2e-7)
    np.testing.assert_allclose(state["exp_avg"].numpy(), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(state["steps"].numpy(), steps)
    assert not p.detach().equal(w0)


def test_triton_adam_skips_zero_gradient_rows():
    w0, grads = hash_like_problem(n=64, n_matrix=16, n_steps=5)
    p, opt = run_adam("triton", w0, grads, 16, learning_rate=1e-2)
    state = opt.state[p]
    assert torch.equal(p.detach()[50:58], w0[50:58])  # never-touched hash rows: bit-identical, no state
    assert not state["exp_avg"][50:58].any() and not state["steps"][50:58].any()
    assert state["steps"][16 + 24:16 + 30].tolist() == [4] * 6  # skipped in the last step only
    assert state["steps"][0] == 5  # a matrix entry with zero gradient still steps


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_adam_half_parameters_keep_a_float32_master(dtype):
    w0, grads = hash_like_problem(seed=2)
    hyper = dict(learning_rate=1e-2, beta2=0.99, epsilon=1e-15)
    p, opt = run_adam("triton", w0, grads, 16, dtype=dtype, **hyper)
    q, ref_opt = run_adam("torch", w0, grads, 16, dtype=dtype, **hyper)
    master = opt.state[p]["master"]
    assert p.dtype == dtype and torch.equal(p.detach(), master.to(dtype))
    w, _, _, _ = reference_adam(w0.to(dtype).double().numpy(), [g.to(dtype).double().numpy() for g in grads], 16,
                                **hyper)
    np.testing.assert_allclose(master.numpy(), w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(master, ref_opt.state[q]["master"], rtol=1e-6, atol=1e-7)


def test_triton_adam_non_contiguous_and_plain_tensors():
    """A 2-D tensor is all matrix; a transposed (non-contiguous) one is stepped through a contiguous copy."""
    base = torch.randn(6, 4)
    for make in (lambda: base.clone(), lambda: base.t().clone().t()):
        results = []
        for backend in ("triton", "numba" if make().is_contiguous() else "torch"):
            weight = torch.nn.Parameter(make())
            opt = Adam([weight], learning_rate=0.1, l2_reg=0.5)
            with kernels.backend(backend):
                for k in range(3):
                    weight.grad = torch.full_like(weight, 0.25 * k) - 0.1
                    opt.step()
            results.append(weight.detach().clone())
            assert opt.state[weight]["steps"].tolist() == [3] * 24
        torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)


def test_triton_adam_rejects_float64_when_forced():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = Adam([p])
    p.grad = torch.ones(4, dtype=torch.float64)
    with kernels.backend("triton"), pytest.raises(kernels.KernelError, match="INGP_KERNELS=triton: .*float64"):
        opt.step()
