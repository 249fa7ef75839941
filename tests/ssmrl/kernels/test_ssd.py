"""ssd_scan (Mamba-2 SSD): torch and triton (CPU interpreter) backends against the sequential reference."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from ssmrl.kernels.ssd import ssd_scan, ssd_scan_step

HAS_TRITON = importlib.util.find_spec("triton") is not None
# Triton fixes interpreter mode when a kernel is first built, so the interpreter tests run in a child process
# that has TRITON_INTERPRET=1 from its start (another test may already have built the kernels in this one).
IN_CHILD = os.environ.get("SSMRL_TRITON_CHILD") == "1"
child_only = pytest.mark.skipif(not IN_CHILD, reason="run in a child process by test_triton_interpreter_in_child")


@pytest.mark.skipif(not HAS_TRITON or IN_CHILD, reason="triton not installed")
def test_triton_interpreter_in_child():
    env = {**os.environ, "TRITON_INTERPRET": "1", "SSMRL_TRITON_CHILD": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                           "triton_interpreter_matches or triton_interpreter_blocks"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "7 passed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]


def make_inputs(b=2, L=13, H=4, P=3, G=2, N=5, dtype=torch.float64, seed=0, d_shape="H", big_decay=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, L, H, P, generator=g, dtype=dtype)
    dt = torch.rand(b, L, H, generator=g, dtype=dtype) * (3.0 if big_decay else 0.9) + 0.05
    A = -(torch.rand(H, generator=g, dtype=dtype) * (15.0 if big_decay else 1.5) + 0.2)
    B = torch.randn(b, L, G, N, generator=g, dtype=dtype)
    C = torch.randn(b, L, G, N, generator=g, dtype=dtype)
    D = torch.randn(H if d_shape == "H" else (H, P), generator=g, dtype=dtype)
    h0 = torch.randn(b, H, P, N, generator=g, dtype=dtype)
    return dict(x=x, dt=dt, A=A, B=B, C=C, D=D, h0=h0)


def make_first(kind: str, b: int, L: int, chunk: int, seed: int = 1) -> torch.Tensor | None:
    first = torch.zeros(b, L, dtype=torch.bool)
    if kind == "none":
        return None
    if kind == "t0":
        first[:, 0] = True
    elif kind == "consecutive":
        first[0, 3:6] = True
        first[1, 0:2] = True
    elif kind == "every":
        first[:] = True
    elif kind == "chunk_boundary":
        first[:, chunk::chunk] = True
    elif kind == "mid_chunk":
        first[0, chunk // 2] = True
        first[1, chunk + 1] = True
    elif kind == "random":
        g = torch.Generator().manual_seed(seed)
        first = torch.rand(b, L, generator=g) < 0.25
    else:
        raise ValueError(kind)
    return first


def run_with_grads(inputs, first, backend, chunk_size, with_h0=True, with_D=True):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    y, h = ssd_scan(
        leaves["x"], leaves["dt"], leaves["A"], leaves["B"], leaves["C"],
        D=leaves["D"] if with_D else None, first=first, h0=leaves["h0"] if with_h0 else None,
        chunk_size=chunk_size, backend=backend,
    )
    g = torch.Generator().manual_seed(7)
    # drawn in float64 then cast, so float32 and float64 runs get the same weights
    wy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    wh = torch.randn(h.shape, generator=g, dtype=torch.float64).to(h.dtype)
    ((y * wy).sum() + (h * wh).sum()).backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}
    return y.detach(), h.detach(), grads


RESETS = ["none", "t0", "consecutive", "every", "chunk_boundary", "mid_chunk", "random"]


@pytest.mark.parametrize("kind", RESETS)
@pytest.mark.parametrize("chunk_size", [4, 64])
def test_torch_matches_reference_fwd_bwd(kind, chunk_size):
    # L=13 is not divisible by the chunk size 4 (padding path); 64 > L gives one short chunk
    inputs = make_inputs(L=13)
    first = make_first(kind, 2, 13, 4)
    y_r, h_r, g_r = run_with_grads(inputs, first, "reference", chunk_size)
    y_t, h_t, g_t = run_with_grads(inputs, first, "torch", chunk_size)
    torch.testing.assert_close(y_t, y_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_t, h_r, rtol=1e-10, atol=1e-10)
    for k in g_r:
        torch.testing.assert_close(g_t[k], g_r[k], rtol=1e-9, atol=1e-9, msg=f"grad of {k}")


@pytest.mark.parametrize("with_h0,with_D,d_shape,G", [(False, False, "H", 1), (True, True, "HP", 4), (True, True, "H", 1)])
def test_torch_options(with_h0, with_D, d_shape, G):
    inputs = make_inputs(L=10, G=G, d_shape=d_shape, seed=3)
    first = make_first("mid_chunk", 2, 10, 4)
    y_r, h_r, g_r = run_with_grads(inputs, first, "reference", 4, with_h0, with_D)
    y_t, h_t, g_t = run_with_grads(inputs, first, "torch", 4, with_h0, with_D)
    torch.testing.assert_close(y_t, y_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_t, h_r, rtol=1e-10, atol=1e-10)
    for k in g_r:
        torch.testing.assert_close(g_t[k], g_r[k], rtol=1e-9, atol=1e-9, msg=f"grad of {k}")


def test_reference_matches_explicit_formula():
    # independent check of the oracle: unrolled closed form for a single head/group, no resets
    inputs = make_inputs(b=1, L=4, H=1, P=2, G=1, N=3)
    x, dt, A, B, C, D, h0 = (inputs[k] for k in ("x", "dt", "A", "B", "C", "D", "h0"))
    y, h = ssd_scan(x, dt, A, B, C, D=D, h0=h0, backend="reference")
    for t in range(4):
        ht = torch.exp(A[0] * dt[0, : t + 1, 0].sum()) * h0[0, 0]
        for s in range(t + 1):
            decay = torch.exp(A[0] * dt[0, s + 1 : t + 1, 0].sum())
            ht = ht + decay * dt[0, s, 0] * torch.outer(x[0, s, 0], B[0, s, 0])
        torch.testing.assert_close(y[0, t, 0], ht @ C[0, t, 0] + D[0] * x[0, t, 0])
    torch.testing.assert_close(h[0, 0], ht)


def test_float32_large_decays_stable():
    # strong decays (dt*A down to about -50 per step) must not overflow in the chunked form
    inputs = make_inputs(L=40, dtype=torch.float32, big_decay=True, seed=5)
    first = make_first("random", 2, 40, 16)
    ref = {k: v.double() for k, v in inputs.items()}
    y_r, h_r = ssd_scan(**{k: ref[k] for k in ("x", "dt", "A", "B", "C", "D", "h0")}, first=first, backend="reference")
    y_t, h_t = ssd_scan(**inputs, first=first, chunk_size=16, backend="torch")
    assert torch.isfinite(y_t).all() and torch.isfinite(h_t).all()
    torch.testing.assert_close(y_t.double(), y_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_t.double(), h_r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_reset_equals_two_sequences(backend):
    inputs = make_inputs(L=12, seed=11)
    k = 5
    first = torch.zeros(2, 12, dtype=torch.bool)
    first[:, k] = True
    y, h = ssd_scan(**inputs, first=first, chunk_size=4, backend=backend)
    a = {n: v[:, :k] if v.dim() >= 3 and n not in ("h0",) else v for n, v in inputs.items()}
    y1, _ = ssd_scan(**a, chunk_size=4, backend="reference")
    b = {n: v[:, k:] if v.dim() >= 3 and n not in ("h0",) else v for n, v in inputs.items()}
    b["h0"] = None
    y2, h2 = ssd_scan(**b, chunk_size=4, backend="reference")
    torch.testing.assert_close(y[:, :k], y1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y[:, k:], y2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, h2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("k", [4, 6])  # on a chunk boundary and mid-chunk (chunk 4)
def test_gradients_exactly_zero_across_reset(backend, k):
    inputs = make_inputs(L=12, seed=13)
    leaves = {n: v.clone().requires_grad_(True) for n, v in inputs.items()}
    first = torch.zeros(2, 12, dtype=torch.bool)
    first[:, k] = True
    y, h = ssd_scan(**leaves, first=first, chunk_size=4, backend=backend)
    (y[:, k:].pow(2).sum() + h.pow(2).sum()).backward()
    for n in ("x", "B", "C", "dt"):
        assert torch.equal(leaves[n].grad[:, :k], torch.zeros_like(leaves[n].grad[:, :k])), n
        assert leaves[n].grad[:, k:].abs().sum() > 0, n
    assert torch.equal(leaves["h0"].grad, torch.zeros_like(leaves["h0"]))


def test_step_matches_scan():
    inputs = make_inputs(L=9, seed=17)
    first = make_first("random", 2, 9, 4, seed=4)
    y_r, h_r = ssd_scan(**inputs, first=first, backend="reference")
    state = inputs["h0"]
    for t in range(9):
        y_t, state = ssd_scan_step(
            inputs["x"][:, t], inputs["dt"][:, t], inputs["A"], inputs["B"][:, t], inputs["C"][:, t],
            D=inputs["D"], first_t=first[:, t], state=state,
        )
        torch.testing.assert_close(y_t, y_r[:, t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, h_r, rtol=1e-12, atol=1e-12)
    # state=None means zeros
    y0, _ = ssd_scan_step(inputs["x"][:, 0], inputs["dt"][:, 0], inputs["A"], inputs["B"][:, 0], inputs["C"][:, 0])
    y1, _ = ssd_scan(inputs["x"][:, :1], inputs["dt"][:, :1], inputs["A"], inputs["B"][:, :1], inputs["C"][:, :1])
    torch.testing.assert_close(y0, y1[:, 0])


def test_low_precision_inputs_compute_in_float32():
    inputs = make_inputs(L=8, dtype=torch.float32, seed=19)
    y32, h32 = ssd_scan(**inputs, chunk_size=4, backend="torch")
    bf = {k: v.to(torch.bfloat16) if k != "A" else v for k, v in inputs.items()}
    y16, h16 = ssd_scan(**bf, chunk_size=4, backend="torch")
    assert y16.dtype == torch.bfloat16 and h16.dtype == torch.float32
    ref = {k: v.float() for k, v in bf.items()}
    y_ref, _ = ssd_scan(**ref, chunk_size=4, backend="reference")
    torch.testing.assert_close(y16.float(), y_ref, rtol=2e-2, atol=2e-2)


def test_bad_inputs_raise_clear_errors():
    i = make_inputs(b=2, L=6, H=4, P=3, G=2, N=5)
    x, dt, A, B, C = i["x"], i["dt"], i["A"], i["B"], i["C"]
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, H, P\)"):
        ssd_scan(x[0], dt, A, B, C)
    with pytest.raises(ValueError, match=r"dt must have shape \(B, L, H\) = \(2, 6, 4\)"):
        ssd_scan(x, dt[..., :3], A, B, C)
    with pytest.raises(ValueError, match=r"A must have shape \(H,\)"):
        ssd_scan(x, dt, A[:2], B, C)
    with pytest.raises(ValueError, match=r"C must have shape \(B, L, G, N\) = \(2, 6, 2, 5\)"):
        ssd_scan(x, dt, A, B, C[..., :4])
    with pytest.raises(ValueError, match=r"G=3 must divide the number of heads H=4"):
        ssd_scan(x, dt, A, torch.randn(2, 6, 3, 5, dtype=x.dtype), torch.randn(2, 6, 3, 5, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H, P, N\) = \(2, 4, 3, 5\)"):
        ssd_scan(x, dt, A, B, C, h0=torch.zeros(2, 4, 3, 4, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"D must have shape \(H,\)"):
        ssd_scan(x, dt, A, B, C, D=torch.zeros(5, dtype=x.dtype))
    with pytest.raises(TypeError, match=r"first must be a bool tensor"):
        ssd_scan(x, dt, A, B, C, first=torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"first must have shape \(B, L\)"):
        ssd_scan(x, dt, A, B, C, first=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"x must be a real floating-point tensor"):
        ssd_scan(x.long(), dt, A, B, C)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int"):
        ssd_scan(x, dt, A, B, C, chunk_size=0)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        ssd_scan(x, dt, A, B, C, backend="cuda")
    with pytest.raises(ValueError, match=r"state must have shape \(B, H, P, N\)"):
        ssd_scan_step(x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], state=torch.zeros(2, 4, 3, 4, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"first_t must have shape \(B\)"):
        ssd_scan_step(x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], first_t=torch.zeros(3, dtype=torch.bool))


@pytest.mark.skipif(not HAS_TRITON, reason="triton not installed")
def test_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    i = make_inputs(L=4, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        ssd_scan(**i, backend="triton")


@child_only
@pytest.mark.parametrize("kind", ["none", "t0", "consecutive", "every", "chunk_boundary", "mid_chunk"])
def test_triton_interpreter_matches_reference(kind):
    # tiny shapes: the interpreter runs every program in Python; L=7 with chunk 4 leaves a partial chunk
    inputs = make_inputs(b=2, L=7, H=2, P=2, G=1, N=2, dtype=torch.float32, seed=23)
    first = make_first(kind, 2, 7, 4)
    ref = {k: v.double() for k, v in inputs.items()}
    y_r, h_r, g_r = run_with_grads(ref, first, "reference", 4)
    y_t, h_t, g_t = run_with_grads(inputs, first, "triton", 4)
    torch.testing.assert_close(y_t.double(), y_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_t.double(), h_r, rtol=1e-4, atol=1e-4)
    for k in g_r:
        torch.testing.assert_close(g_t[k].double(), g_r[k], rtol=1e-4, atol=1e-4, msg=f"grad of {k}")


@child_only
def test_triton_interpreter_blocks_groups_and_options():
    # P=34 spans two programs along P (BLOCK_P caps at 32); G=2 groups; D (H, P); random resets; N=3 is masked
    inputs = make_inputs(b=1, L=5, H=4, P=34, G=2, N=3, dtype=torch.float32, seed=29, d_shape="HP")
    first = make_first("random", 1, 5, 4, seed=2)
    ref = {k: v.double() for k, v in inputs.items()}
    y_r, h_r, g_r = run_with_grads(ref, first, "reference", 4)
    y_t, h_t, g_t = run_with_grads(inputs, first, "triton", 4)
    torch.testing.assert_close(y_t.double(), y_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_t.double(), h_r, rtol=1e-4, atol=1e-4)
    for k in g_r:
        torch.testing.assert_close(g_t[k].double(), g_r[k], rtol=1e-4, atol=1e-4, msg=f"grad of {k}")
