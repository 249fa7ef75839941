"""selective_scan (Mamba-1): every backend equals the sequential reference; resets are exact."""
import textwrap

import pytest
import torch
import torch.nn.functional as F

from ssmrl.kernels.backend import triton_available
from ssmrl.kernels.selective import selective_scan, selective_scan_step
import ssmrl.kernels.selective as selective_module

from tests.ssmrl.kernels.kernel_cases import PATTERNS, make_first, run_under_triton_interpreter


def inputs(dtype=torch.float64, B=2, L=8, Dm=5, N=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        x=r(B, L, Dm),
        dt=torch.rand(B, L, Dm, generator=g, dtype=dtype) * 0.5 + 0.05,
        A=-torch.rand(Dm, N, generator=g, dtype=dtype) * 2 - 0.1,
        B=r(B, L, N),
        C=r(B, L, N),
        D=r(Dm),
        z=r(B, L, Dm),
        h0=r(B, Dm, N),
    ), g


def value_and_grads(backend, kw, first, use=("D", "z", "h0"), seed=1):
    names = ["x", "dt", "A", "B", "C"] + [n for n in ("D", "z", "h0") if n in use]
    leaves = {n: kw[n].detach().requires_grad_() for n in names}
    y, hL = selective_scan(**leaves, first=first, backend=backend)
    g = torch.Generator().manual_seed(seed)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum()
    loss = loss + (hL * torch.randn(hL.shape, generator=g, dtype=y.dtype)).sum()
    return [y, hL, *torch.autograd.grad(loss, list(leaves.values()))]


def naive(kw, first):
    """Independent formula: the state as an explicit sum over the current episode's past inputs."""
    x, dt, A, B, C, D, z = (kw[n] for n in ("x", "dt", "A", "B", "C", "D", "z"))
    Bsz, L, Dm = x.shape
    y = torch.zeros_like(x)
    for b in range(Bsz):
        start = 0
        for t in range(L):
            if first[b, t]:
                start = t
            h = torch.zeros(Dm, A.shape[1], dtype=x.dtype)
            for s in range(start, t + 1):
                decay = torch.exp(A * dt[b, s + 1 : t + 1].sum(0)[:, None])  # prod of exp(dt A) after s
                h = h + decay * dt[b, s, :, None] * x[b, s, :, None] * B[b, s]
            y[b, t] = ((h * C[b, t]).sum(-1) + D * x[b, t]) * F.silu(z[b, t])
    return y


def test_reference_matches_closed_form():
    kw, g = inputs(L=6)
    first = make_first("random", 2, 6, g)
    y, _ = selective_scan(kw["x"], kw["dt"], kw["A"], kw["B"], kw["C"], kw["D"], kw["z"], first, backend="reference")
    torch.testing.assert_close(y, naive(kw, first), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("use", [("D", "z", "h0"), ()])
def test_torch_matches_reference(pattern, use):
    kw, g = inputs()
    first = make_first(pattern, 2, 8, g)
    ref = value_and_grads("reference", kw, first, use)
    out = value_and_grads("torch", kw, first, use)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_reset_equals_two_sequences_and_zero_grads(backend):
    kw, g = inputs(dtype=torch.float64, L=9)
    k = 4
    first = torch.zeros(2, 9, dtype=torch.bool)
    first[:, k] = True
    seq = ("x", "dt", "B", "C", "z")
    y, hL = selective_scan(**kw, first=first, backend=backend)
    part1 = {n: (kw[n][:, :k] if n in seq else kw[n]) for n in kw}
    part2 = {n: (kw[n][:, k:] if n in seq else kw[n]) for n in kw if n != "h0"}
    y1, _ = selective_scan(**part1, backend=backend)
    y2, h2 = selective_scan(**part2, backend=backend)
    torch.testing.assert_close(y, torch.cat([y1, y2], 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hL, h2, rtol=1e-12, atol=1e-12)
    leaves = {n: kw[n].detach().requires_grad_() for n in kw}
    y, hL = selective_scan(**leaves, first=first, backend=backend)
    grads = torch.autograd.grad(y[:, k:].sum() + hL.sum(), [leaves[n] for n in ("x", "dt", "B", "C", "z", "h0")])
    for name, gr in zip(("x", "dt", "B", "C", "z"), grads):
        assert torch.all(gr[:, :k] == 0), name
    assert torch.all(grads[-1] == 0)
    assert torch.all(grads[0][:, k:] != 0)


def test_step_equals_scan():
    kw, g = inputs()
    first = make_first("random", 2, 8, g)
    y, hL = selective_scan(**kw, first=first, backend="torch")
    h = kw["h0"]
    for t in range(8):
        yt, h = selective_scan_step(
            kw["x"][:, t], kw["dt"][:, t], kw["A"], kw["B"][:, t], kw["C"][:, t], kw["D"], kw["z"][:, t], first[:, t], h
        )
        torch.testing.assert_close(yt, y[:, t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, hL, rtol=1e-12, atol=1e-12)


def test_bad_inputs_raise_naming_argument():
    kw, _ = inputs(dtype=torch.float32)
    bad = dict(kw, B=kw["B"][:, :, :2])
    with pytest.raises(ValueError, match=r"B must have shape \(B, L, N\) = \(2, 8, 3\)"):
        selective_scan(**bad)
    with pytest.raises(ValueError, match=r"A must have shape \(Dm, N\)"):
        selective_scan(**dict(kw, A=kw["A"][:2]))
    with pytest.raises(ValueError, match=r"dt must have shape \(B, L, Dm\)"):
        selective_scan(**dict(kw, dt=kw["dt"][:1]))
    with pytest.raises(TypeError, match="C must have dtype torch.float32"):
        selective_scan(**dict(kw, C=kw["C"].double()))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, Dm, N\)"):
        selective_scan(**dict(kw, h0=kw["h0"][:, :, :1]))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        selective_scan(**dict(kw, x=kw["x"].to(torch.complex64)))
    with pytest.raises(ValueError, match=r"state must have shape \(B, Dm, N\)"):
        selective_scan_step(kw["x"][:, 0], kw["dt"][:, 0], kw["A"], kw["B"][:, 0], kw["C"][:, 0], state=kw["h0"][:1])


TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    import tests.ssmrl.kernels.test_selective as T
    from ssmrl.kernels.selective import _selective_reference
    from ssmrl.kernels.triton_selective import selective_scan_triton
    for pattern, use in [(p, ("D", "z", "h0")) for p in T.PATTERNS] + [("random", ())]:
        kw, g = T.inputs(B=2, L=7, Dm=5, N=3)
        first = T.make_first(pattern, 2, 7, g)
        ref = T.value_and_grads("reference", kw, first, use)
        out = T.value_and_grads("triton", kw, first, use)
        for r, o in zip(ref, out):
            torch.testing.assert_close(o, r, rtol=1e-11, atol=1e-11)
    # several checkpoint chunks (K=3 -> 3 chunks, the last partial) and float32
    kw, g = T.inputs(dtype=torch.float32, B=2, L=7, Dm=70, N=3)
    first = T.make_first("random", 2, 7, g)
    leaves = [kw[n].requires_grad_() for n in ("x", "dt", "A", "B", "C", "h0")]
    res = []
    for fn in (_selective_reference, lambda *a: selective_scan_triton(*a, chunk=3)):
        y, h = fn(kw["x"], kw["dt"], kw["A"], kw["B"], kw["C"], first, kw["h0"])
        res.append([y, h, *torch.autograd.grad((y * y).sum() + h.sum(), leaves)])
    for r, o in zip(*res):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4)
    from ssmrl.kernels import triton_selective
    assert "Interpreted" in type(triton_selective._kernels()[1]).__name__
    print("ok")
    """
)


@pytest.mark.skipif(not triton_available(), reason="triton is not installed")
def test_triton_interpreter_matches_reference():
    proc = run_under_triton_interpreter(TRITON_SCRIPT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


@pytest.mark.skipif(selective_module._selective_cpu is None, reason="the C kernel was not built (no compiler)")
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_fused_cpu_kernel_matches_the_grid_path_in_values_and_gradients(with_h0, fused):
    """The C kernel (float32 CPU default) against the grid autograd Function it replaces, float64 as the oracle;
    ``fused``: softplus of a raw dt (incl. values past softplus' threshold of 20), the D skip and the silu(z) gate
    inside the kernel against the same three ops applied in torch around the grid path."""
    g = torch.Generator().manual_seed(3)
    b, l, dm, n = 3, 11, 21, 7  # 21 channels: a full 16-lane vector plus a remainder
    x = torch.randn(b, l, dm, generator=g, dtype=torch.float64)
    if fused:
        dt = torch.randn(b, l, dm, generator=g, dtype=torch.float64) * 3 - 2
        dt[0, 0, :3] = torch.tensor([21.0, 25.0, -30.0])
    else:
        dt = torch.rand(b, l, dm, generator=g, dtype=torch.float64) * 0.5 + 0.01
    A = -torch.rand(dm, n, generator=g, dtype=torch.float64) * 2 - 0.1
    A[0, 0] = -60.0  # exp(dt A) far below float32's range for the large dt above
    B = torch.randn(b, l, n, generator=g, dtype=torch.float64)
    C = torch.randn(b, l, n, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, dm, n, generator=g, dtype=torch.float64) if with_h0 else None
    D = torch.randn(dm, generator=g, dtype=torch.float64) if fused else None
    z = torch.randn(b, l, dm, generator=g, dtype=torch.float64) * 2 if fused else None
    first = torch.rand(b, l, generator=g) < 0.2
    gy, ghL = torch.randn(b, l, dm, generator=g, dtype=torch.float64), torch.randn(b, dm, n, generator=g, dtype=torch.float64)
    inputs = [x, dt, A, B, C, h0, D, z]

    def leaves(dtype):
        return [None if t is None else t.to(dtype).requires_grad_(True) for t in inputs]

    def backward(y, hL, leaf):
        torch.autograd.backward([y, hL], [gy.to(y.dtype), ghL.to(y.dtype)])
        return [y, hL] + [t.grad for t in leaf if t is not None]

    leaf = leaves(torch.float32)
    native = backward(*selective_module._SelectiveNativeFn.apply(*leaf[:5], (~first).float(), *leaf[5:], fused), leaf)
    leaf = leaves(torch.float64)
    x_, dt_, A_, B_, C_, h0_, D_, z_ = leaf
    y, hL = selective_module._SelectiveFn.apply(x_, F.softplus(dt_) if fused else dt_, A_, B_, C_,
                                                selective_module.keep_mask(first, x, 2), h0_)
    oracle = backward(selective_module._finish(y, x_, D_, z_), hL, leaf)
    for ours, ref in zip(native, oracle, strict=True):
        torch.testing.assert_close(ours.double(), ref, rtol=2e-4, atol=2e-5)
    # and the dispatch picks the kernel for float32 CPU tensors
    assert selective_module._native_ok(x.float(), A.float())
