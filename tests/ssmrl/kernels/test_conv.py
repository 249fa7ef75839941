"""causal_conv1d: torch backend equals the per-step reference; taps never cross a reset; state semantics."""
import pytest
import torch
import torch.nn.functional as F

import ssmrl.kernels.conv as conv_module
from ssmrl.kernels.conv import causal_conv1d, causal_conv1d_step

from tests.ssmrl.kernels.kernel_cases import PATTERNS, make_first


def inputs(B=3, L=10, C=4, W=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, L, C, generator=g, dtype=dtype),
        torch.randn(C, W, generator=g, dtype=dtype),
        torch.randn(C, generator=g, dtype=dtype),
        torch.randn(B, C, W - 1, generator=g, dtype=dtype),
        g,
    )


def value_and_grads(backend, x, w, bias, first, state):
    leaves = [t.detach().requires_grad_() for t in (x, w, bias, state)]
    y, st = causal_conv1d(leaves[0], leaves[1], leaves[2], first, leaves[3], backend=backend)
    g = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum()
    loss = loss + (st * torch.randn(st.shape, generator=g, dtype=y.dtype)).sum()
    return [y, st, *torch.autograd.grad(loss, leaves)]


def test_reference_without_resets_is_conv1d():
    """Independent oracle: torch's depthwise conv1d with W-1 zeros of left padding."""
    x, w, bias, _, _ = inputs()
    y, st = causal_conv1d(x, w, bias, backend="reference")
    want = F.conv1d(F.pad(x.transpose(1, 2), (3, 0)), w.unsqueeze(1), bias, groups=4).transpose(1, 2)
    torch.testing.assert_close(y, want)
    torch.testing.assert_close(st, x[:, -3:].transpose(1, 2))


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("W", [1, 2, 4])
def test_torch_matches_reference(pattern, W):
    x, w, bias, state, g = inputs(W=W)
    first = make_first(pattern, 3, 10, g)
    for r, o in zip(value_and_grads("reference", x, w, bias, first, state),
                    value_and_grads("torch", x, w, bias, first, state)):
        torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_reset_equals_two_sequences_and_zero_grads(backend):
    x, w, bias, state, _ = inputs()
    k = 6
    first = torch.zeros(3, 10, dtype=torch.bool)
    first[:, k] = True
    y, st = causal_conv1d(x, w, bias, first, state, backend=backend)
    y1, _ = causal_conv1d(x[:, :k], w, bias, None, state, backend=backend)
    y2, st2 = causal_conv1d(x[:, k:], w, bias, None, None, backend=backend)
    torch.testing.assert_close(y, torch.cat([y1, y2], 1))
    torch.testing.assert_close(st, st2)
    xg, sg = x.clone().requires_grad_(), state.clone().requires_grad_()
    y, st = causal_conv1d(xg, w, bias, first, sg, backend=backend)
    gx, gs = torch.autograd.grad(y[:, k:].sum() + st.sum(), (xg, sg))
    assert torch.all(gx[:, :k] == 0) and torch.all(gs == 0)
    assert torch.all(gx[:, k:] != 0)


@pytest.mark.parametrize("reset_at", [None, 7, 8, 9])
def test_state_carry_equals_whole_sequence(reset_at):
    """Splitting anywhere and carrying the state equals one pass, also when the last reset is within the
    last W-1 steps of the first part (the state then holds zeros for the slots before the reset)."""
    x, w, bias, _, _ = inputs(L=14)
    first = torch.zeros(3, 14, dtype=torch.bool)
    if reset_at is not None:
        first[:, reset_at] = True
    y, st = causal_conv1d(x, w, bias, first, backend="torch")
    y1, s1 = causal_conv1d(x[:, :10], w, bias, first[:, :10], backend="torch")
    if reset_at is not None:  # inputs before the reset do not appear in the state
        kept = 10 - reset_at
        assert torch.all(s1[:, :, : 3 - kept] == 0)
        torch.testing.assert_close(s1[:, :, 3 - kept :], x[:, reset_at:10].transpose(1, 2))
    y2, s2 = causal_conv1d(x[:, 10:], w, bias, first[:, 10:], s1, backend="torch")
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(s2, st)
    # a split shorter than W-1 steps keeps part of the carried state
    y3, s3 = causal_conv1d(x[:, 10:12], w, bias, first[:, 10:12], s1, backend="torch")
    y4, s4 = causal_conv1d(x[:, 12:], w, bias, first[:, 12:], s3, backend="torch")
    torch.testing.assert_close(torch.cat([y1, y3, y4], 1), y)


def test_step_equals_forward():
    x, w, bias, state, g = inputs()
    first = make_first("random", 3, 10, g)
    y, st = causal_conv1d(x, w, bias, first, state, backend="torch")
    s = state
    for t in range(10):
        yt, s = causal_conv1d_step(x[:, t], w, bias, first[:, t], s)
        torch.testing.assert_close(yt, y[:, t])
    torch.testing.assert_close(s, st)


def test_bad_inputs_raise_naming_argument():
    x, w, bias, state, _ = inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"weight must have shape \(C, W\)"):
        causal_conv1d(x, w[:2], bias)
    with pytest.raises(ValueError, match=r"bias must have shape \(C,\)"):
        causal_conv1d(x, w, bias[:2])
    with pytest.raises(ValueError, match=r"state must have shape \(B, C, W-1\) = \(3, 4, 3\)"):
        causal_conv1d(x, w, bias, state=state[:, :, :2])
    with pytest.raises(TypeError, match="weight must have dtype torch.float32"):
        causal_conv1d(x, w.double(), bias)
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, C\)"):
        causal_conv1d(x[0], w, bias)
    with pytest.raises(ValueError, match=r"first_t must have shape \(B,\)"):
        causal_conv1d_step(x[:, 0], w, bias, torch.zeros(3, 2, dtype=torch.bool), state)


@pytest.mark.skipif(conv_module._native is None, reason="the C kernel was not built (no compiler)")
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("L", [11, 2])
def test_fused_cpu_conv_matches_the_float64_reference(pattern, with_state, L):
    """float32 CPU runs the C kernel; its values and gradients (x, weight, bias, state) match the float64 loop,
    also for a sequence shorter than the window (L=2 < W-1: the new state keeps carried inputs)."""
    x, w, bias, state, g = inputs(B=3, L=L, C=21, W=4, seed=5)
    first = make_first(pattern, 3, L, g)
    assert conv_module._native_ok(x.float(), w.float())
    results = []
    for dtype, backend in ((torch.float32, None), (torch.float64, "reference")):
        leaves = [t.to(dtype).requires_grad_() for t in (x, w, bias, state)]
        st_in = leaves[3] if with_state else None
        y, st = causal_conv1d(leaves[0], leaves[1], leaves[2], first, st_in, backend=backend)
        gen = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype)).sum()
        loss = loss + (st * torch.randn(st.shape, generator=gen, dtype=torch.float64).to(dtype)).sum()
        grads = torch.autograd.grad(loss, leaves if with_state else leaves[:3])
        results.append([y, st, *grads])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)

