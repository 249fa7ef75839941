"""S4D "chunked" mode (masked Toeplitz chunks) against the "scan" mode and a plain per-step loop, with resets."""
import pytest
import torch

from ssmrl.ssm.s4d import S4D

H, N, B = 5, 8, 3


def layers(chunk_len=4, init="lin"):
    """The same parameters in both modes (float64)."""
    out = []
    for mode in ("chunked", "scan"):
        g = torch.Generator().manual_seed(0)
        out.append(S4D(H, d_state=N, init=init, generator=g, mode=mode, chunk_len=chunk_len).double())
    return out


def inputs(L, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, H, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, H, N // 2, generator=g, dtype=torch.complex128)
    return x, h0


def resets(kind, L, T):
    g = torch.Generator().manual_seed(2)
    f = torch.zeros(B, L, dtype=torch.bool)
    if kind == "t0":
        f[:, 0] = True
    elif kind == "consecutive":
        f[0, 2:5] = True
        f[1, T - 1:T + 2] = True  # a run across a chunk boundary
    elif kind == "every":
        f[:] = True
    elif kind == "random":
        f = torch.rand(B, L, generator=g) < 0.3
    elif kind == "boundaries":
        f[:, ::T] = True
        f[1, T - 1] = True  # the last step of a chunk
    elif kind != "none":
        raise ValueError(kind)
    return f


def loop_reference(layer, x, first, h0):
    """h_t = exp(dt A) (1 - first_t) h_{t-1} + B~ u_t; y_t = 2 Re(C h_t) + D u_t, one step at a time."""
    A = torch.complex(-torch.exp(layer.A_log_re), layer.A_im)
    dt = torch.exp(layer.log_dt)[:, None]
    a, b = torch.exp(dt * A), (torch.exp(dt * A) - 1) / A
    C = torch.view_as_complex(layer.C)
    h, ys = h0, []
    for t in range(x.shape[1]):
        h = a * h * (~first[:, t]).double()[:, None, None] + b * x[:, t, :, None]
        ys.append(2 * (C * h).sum(-1).real + layer.D * x[:, t])
    return torch.stack(ys, 1), h


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["none", "t0", "consecutive", "every", "random", "boundaries"])
@pytest.mark.parametrize("L", [12, 14])  # 14: the last chunk is a partial one (T = 4)
@pytest.mark.parametrize("carried", [False, True])
def test_chunked_equals_scan_with_resets(kind, L, carried):
    chunked, scan = layers(chunk_len=4)
    x, h0 = inputs(L)
    first = resets(kind, L, 4)
    state = h0 if carried else None
    outs = []
    for layer in (chunked, scan):
        xx = x.clone().requires_grad_()
        ss = None if state is None else state.clone().requires_grad_()
        y, s = layer(xx, first, ss)
        # a loss that reaches the output and both parts of the final state
        loss = (y * torch.linspace(-1, 2, L, dtype=torch.float64)[:, None]).square().sum() + \
            (s.real * 1.3 - s.imag * 0.7).sum()
        wrt = [xx] + list(layer.parameters()) + ([] if ss is None else [ss])
        outs.append((y, s, torch.autograd.grad(loss, wrt)))
    (y1, s1, g1), (y2, s2, g2) = outs
    close(y1, y2)
    close(s1, s2)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        close(a, b)


@pytest.mark.parametrize("chunk_len", [1, 3, 5, 16])  # 16 > L: one (partial) chunk
def test_chunked_equals_plain_loop(chunk_len):
    chunked, _ = layers(chunk_len=chunk_len, init="inv")
    x, h0 = inputs(11, seed=3)
    first = resets("random", 11, chunk_len)
    with torch.no_grad():
        y, s = chunked(x, first, h0)
        y_ref, s_ref = loop_reference(chunked, x, first, h0)
        close(y, y_ref)
        close(s, s_ref)
        # no state and no resets equals a zero state and all-False resets
        y0, s0 = chunked(x)
        y0_ref, s0_ref = loop_reference(chunked, x, torch.zeros(B, 11, dtype=torch.bool), torch.zeros_like(h0))
        close(y0, y0_ref)
        close(s0, s0_ref)


@pytest.mark.parametrize("k", [0, 3, 4, 6])  # 4: a reset on a chunk boundary
@pytest.mark.parametrize("dense", [False, True])  # True: resets at k..k+3 (4 in one chunk: the other mask path)
def test_gradients_are_exactly_zero_across_a_reset(k, dense):
    chunked, _ = layers(chunk_len=4)
    x, h0 = inputs(10)
    x.requires_grad_()
    h0.requires_grad_()
    first = torch.zeros(B, 10, dtype=torch.bool)
    first[:, k:k + 4 if dense else k + 1] = True
    y, s = chunked(x, first, h0)
    gx, gh0 = torch.autograd.grad(y[:, k:].square().sum() + torch.view_as_real(s).sum(), (x, h0))
    assert torch.all(gx[:, :k] == 0)
    assert torch.all(gh0 == 0)
    assert torch.all(gx[:, k:] != 0)


def test_step_by_step_equals_chunked_forward():
    chunked, _ = layers(chunk_len=4)
    x, h0 = inputs(13)
    first = resets("random", 13, 4)
    with torch.no_grad():
        y, s = chunked(x, first, h0)
        st = h0
        for t in range(13):
            yt, st = chunked.step(x[:, t], first[:, t], st)
            close(yt, y[:, t])
        close(st, s)
        # split sequences: forward on two halves with the state carried equals one forward
        ya, sa = chunked(x[:, :6], first[:, :6], h0)
        yb, sb = chunked(x[:, 6:], first[:, 6:], sa)
        close(torch.cat([ya, yb], 1), y)
        close(sb, s)


def test_float32_default_mode_matches_scan():
    g = torch.Generator().manual_seed(4)
    default = S4D(16, d_state=16, generator=torch.Generator().manual_seed(0))
    scan = S4D(16, d_state=16, generator=torch.Generator().manual_seed(0), mode="scan")
    assert default.mode == "chunked"
    x = torch.randn(2, 37, 16, generator=g)
    first = torch.rand(2, 37, generator=g) < 0.1
    with torch.no_grad():
        y1, s1 = default(x, first)
        y2, s2 = scan(x, first)
    assert y1.dtype == torch.float32 and s1.dtype == torch.complex64
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode"):
        S4D(4, mode="fft")
    with pytest.raises(ValueError, match="chunk_len"):
        S4D(4, chunk_len=0)
    layer = S4D(4, d_state=4)
    x = torch.zeros(2, 5, 4)
    with pytest.raises(ValueError, match="first"):
        layer(x, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="first"):
        layer(x, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="state"):
        layer(x, None, torch.zeros(2, 4, 3, dtype=torch.complex64))
    with pytest.raises(TypeError, match="state"):
        layer(x, None, torch.zeros(2, 4, 2, dtype=torch.complex128))
    with pytest.raises(ValueError, match="L >= 1"):
        layer(torch.zeros(2, 0, 4))
