"""diag_scan: every backend equals the sequential reference (values and gradients), resets are exact."""
import textwrap

import pytest
import torch

from ssmrl.kernels.backend import triton_available
from ssmrl.kernels.diag import diag_scan, diag_scan_step

from tests.ssmrl.kernels.kernel_cases import PATTERNS, make_first, run_under_triton_interpreter


def inputs(dtype, B=3, L=9, S=(4, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(B, L, *S, generator=g, dtype=torch.float64) * 1.2 - 0.1).to(dtype)
    if dtype.is_complex:
        a = a * torch.exp(1j * torch.rand(B, L, *S, generator=g, dtype=torch.float64)).to(dtype)
    b = torch.randn(B, L, *S, generator=g, dtype=dtype)
    h0 = torch.randn(B, *S, generator=g, dtype=dtype)
    return a, b, h0, g


def value_and_grads(backend, a, b, first, h0, seed=1):
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    h0 = None if h0 is None else h0.detach().requires_grad_()
    y, hL = diag_scan(a, b, first, h0, backend=backend)
    g = torch.Generator().manual_seed(seed)
    wy = torch.randn(y.shape, generator=g, dtype=y.dtype).to(y.device)
    wh = torch.randn(hL.shape, generator=g, dtype=y.dtype).to(y.device)
    loss = (y * wy).real.sum() + (hL * wh).real.sum()
    leaves = [t for t in (a, b, h0) if t is not None]
    return [y, hL, *torch.autograd.grad(loss, leaves)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("with_h0", [True, False])
def test_torch_matches_reference(dtype, pattern, with_h0, device):
    a, b, h0, g = inputs(dtype)
    first = make_first(pattern, a.shape[0], a.shape[1], g)
    h0 = h0 if with_h0 else None
    ref = value_and_grads("reference", a, b, first, h0)
    on = lambda t: None if t is None else t.to(device)  # noqa: E731
    out = value_and_grads("torch", on(a), on(b), on(first), on(h0))
    for r, o in zip(ref, out):
        torch.testing.assert_close(o.cpu(), r, rtol=1e-12, atol=1e-12)


def test_reference_is_the_recurrence():
    """The oracle itself against the formula written out by hand for a tiny case."""
    a = torch.tensor([[0.5, 2.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    first = torch.tensor([[False, True, False]])
    y, hL = diag_scan(a, b, first, torch.tensor([4.0], dtype=torch.float64), backend="reference")
    # h0 = 0.5*4+1 = 3; reset -> h1 = 1; h2 = 3*1+1 = 4
    torch.testing.assert_close(y, torch.tensor([[3.0, 1.0, 4.0]], dtype=torch.float64))
    assert hL.item() == 4.0


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_reset_equals_two_sequences(backend, dtype):
    a, b, h0, g = inputs(dtype, L=10)
    k = 6
    first = torch.zeros(a.shape[:2], dtype=torch.bool)
    first[:, k] = True
    y, hL = diag_scan(a, b, first, h0, backend=backend)
    y1, h1 = diag_scan(a[:, :k], b[:, :k], None, h0, backend=backend)
    y2, h2 = diag_scan(a[:, k:], b[:, k:], None, None, backend=backend)  # second from zero state
    torch.testing.assert_close(y, torch.cat([y1, y2], 1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hL, h2, rtol=1e-6, atol=1e-6)
    # and carrying the state across a split without a reset equals the whole sequence
    y3, _ = diag_scan(a[:, k:], b[:, k:], None, h1, backend=backend)
    yf, _ = diag_scan(a, b, None, h0, backend=backend)
    torch.testing.assert_close(torch.cat([y1, y3], 1), yf, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_gradients_exactly_zero_across_reset(backend):
    a, b, h0, g = inputs(torch.complex128, L=8)
    k = 5
    first = torch.zeros(a.shape[:2], dtype=torch.bool)
    first[:, k] = True
    a, b, h0 = (t.requires_grad_() for t in (a, b, h0))
    y, hL = diag_scan(a, b, first, h0, backend=backend)
    loss = y[:, k:].abs().sum() + hL.abs().sum()
    ga, gb, gh0 = torch.autograd.grad(loss, (a, b, h0))
    assert torch.all(ga[:, : k + 1] == 0)  # a_k is multiplied by (1 - first_k) = 0 as well
    assert torch.all(gb[:, :k] == 0) and torch.all(gh0 == 0)
    assert torch.all(gb[:, k:] != 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_step_equals_scan(dtype):
    a, b, h0, g = inputs(dtype)
    first = make_first("random", a.shape[0], a.shape[1], g)
    y, hL = diag_scan(a, b, first, h0, backend="torch")
    h = h0
    for t in range(a.shape[1]):
        yt, h = diag_scan_step(a[:, t], b[:, t], first[:, t], h)
        torch.testing.assert_close(yt, y[:, t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, hL, rtol=1e-12, atol=1e-12)


def test_broadcast_a_gradients():
    """a constant over (B, L) (S4D/S5 style) may be passed un-expanded; gradients are summed like expand."""
    a, b, h0, g = inputs(torch.complex128)
    first = make_first("random", a.shape[0], a.shape[1], g)
    a0 = a[0, 0].detach().requires_grad_()
    outs = []
    for backend in ("reference", "torch"):
        y, _ = diag_scan(a0, b, first, h0, backend=backend)
        outs.append((y, torch.autograd.grad(y.abs().sum(), a0)[0]))
    torch.testing.assert_close(outs[1][0], outs[0][0])
    torch.testing.assert_close(outs[1][1], outs[0][1])


def test_bad_inputs_raise_naming_argument():
    a, b, h0, g = inputs(torch.float32)
    with pytest.raises(ValueError, match=r"a must have shape \(B, L, \*S\)"):
        diag_scan(a[:, :3], b)
    with pytest.raises(TypeError, match="a must have the same dtype as b"):
        diag_scan(a.double(), b)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, \*S\) = \(3, 4, 2\)"):
        diag_scan(a, b, h0=h0[:, :2])
    with pytest.raises(TypeError, match="h0 must have dtype"):
        diag_scan(a, b, h0=h0.double())
    with pytest.raises(ValueError, match=r"first must have shape \(B, L\)"):
        diag_scan(a, b, first=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="first must be a bool tensor"):
        diag_scan(a, b, first=torch.zeros(3, 9))
    with pytest.raises(TypeError, match="b must have a floating or complex dtype"):
        diag_scan(a.long(), b.long())
    with pytest.raises(ValueError, match="backend must be one of"):
        diag_scan(a, b, backend="cuda")
    with pytest.raises(ValueError, match=r"state must have shape \(B, \*S\)"):
        diag_scan_step(a[:, 0], b[:, 0], None, h0[:1])


def test_triton_without_cuda_or_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a, b, _, _ = inputs(torch.float32)
    with pytest.raises(RuntimeError, match="triton"):
        diag_scan(a, b, backend="triton")


TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    import tests.ssmrl.kernels.test_diag as T
    cases = [(torch.float64, p, i % 2 == 0) for i, p in enumerate(T.PATTERNS)]
    cases += [(torch.complex128, p, i % 2 == 1) for i, p in enumerate(T.PATTERNS)]
    cases += [(torch.float32, "random", True)]
    for dtype, pattern, with_h0 in cases:
        a, b, h0, g = T.inputs(dtype, B=2, L=6, S=(3, 5))
        first = T.make_first(pattern, 2, 6, g)
        h0 = h0 if with_h0 else None
        ref = T.value_and_grads("reference", a, b, first, h0)
        out = T.value_and_grads("triton", a, b, first, h0)
        tol = 1e-12 if dtype != torch.float32 else 1e-5
        for r, o in zip(ref, out):
            torch.testing.assert_close(o, r, rtol=tol, atol=tol)
    from ssmrl.kernels import triton_diag
    assert "Interpreted" in type(triton_diag._kernels()[1]).__name__
    print("ok")
    """
)


@pytest.mark.skipif(not triton_available(), reason="triton is not installed")
def test_triton_interpreter_matches_reference():
    proc = run_under_triton_interpreter(TRITON_SCRIPT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
