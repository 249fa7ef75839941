"""Mamba2 layer and the residual blocks/stack: step == forward, resets, an independent plain re-implementation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmrl.ssm.blocks import RMSNorm, SSMBlock, SSMStack
from ssmrl.ssm.mamba2 import Mamba2, Mamba2State

D_MODEL = 16


def make_layer(seed=1, **kw):
    cfg = dict(d_state=4, d_conv=3, expand=2, headdim=8, ngroups=2, chunk_size=4)
    cfg.update(kw)
    return Mamba2(D_MODEL, generator=torch.Generator().manual_seed(seed), **cfg).double()


def make_x(b=2, L=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, L, D_MODEL, generator=g, dtype=torch.float64)


def random_first(b, L, seed=3, p=0.25):
    g = torch.Generator().manual_seed(seed)
    first = torch.rand(b, L, generator=g) < p
    first[0, 4] = True  # on a chunk boundary (chunk 4)
    first[1, 5:7] = True  # consecutive, mid-chunk
    return first


def plain_mamba2(m: Mamba2, x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Independent per-token re-implementation of the Mamba-2 block (explicit conv taps and state update)."""
    b, L, _ = x.shape
    H, P, N, G, W = m.nheads, m.headdim, m.d_state, m.ngroups, m.d_conv
    zxbcdt = x @ m.in_proj.weight.T
    z, xbc, dt = zxbcdt.split([m.d_inner, m.conv_dim, H], -1)
    hist = []  # inputs of the conv since the last reset, per batch element
    ys = []
    for i in range(b):
        h = torch.zeros(H, P, N, dtype=x.dtype)
        window = []
        out = []
        for t in range(L):
            if first[i, t]:
                h = torch.zeros_like(h)
                window = []
            window = (window + [xbc[i, t]])[-W:]
            u = m.conv_bias.clone()
            for k, v in enumerate(reversed(window)):  # k steps back uses tap W-1-k
                u = u + m.conv_weight[:, W - 1 - k] * v
            u = F.silu(u)
            xs = u[: m.d_inner].reshape(H, P)
            Bt = u[m.d_inner : m.d_inner + G * N].reshape(G, N)
            Ct = u[m.d_inner + G * N :].reshape(G, N)
            d = F.softplus(dt[i, t] + m.dt_bias)
            A = -torch.exp(m.A_log)
            yt = torch.empty(H, P, dtype=x.dtype)
            for hh in range(H):
                g = hh // (H // G)
                h[hh] = torch.exp(d[hh] * A[hh]) * h[hh] + d[hh] * torch.outer(xs[hh], Bt[g])
                yt[hh] = h[hh] @ Ct[g] + m.D[hh] * xs[hh]
            gated = yt.reshape(-1) * F.silu(z[i, t])
            gs = gated.reshape(G, -1)
            gs = gs / torch.sqrt(gs.pow(2).mean(-1, keepdim=True) + m.norm.eps)
            out.append((gs.reshape(-1) * m.norm.weight) @ m.out_proj.weight.T)
        ys.append(torch.stack(out))
        hist.append(window)
    return torch.stack(ys)


@pytest.mark.parametrize("ngroups", [1, 2])
def test_forward_matches_plain_implementation(ngroups):
    m = make_layer(ngroups=ngroups)
    x = make_x(L=9)
    first = random_first(2, 9)
    with torch.no_grad():
        y, _ = m(x, first)
        torch.testing.assert_close(y, plain_mamba2(m, x, first), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_step_equals_forward_with_resets(backend):
    m = make_layer(backend=backend)
    x = make_x()
    first = random_first(2, 11)
    with torch.no_grad():
        y, s = m(x, first)
        st = m.initial_state(2)
        for t in range(11):
            y_t, st = m.step(x[:, t], first[:, t], st)
            torch.testing.assert_close(y_t, y[:, t], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(st.ssm, s.ssm, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(st.conv, s.conv, rtol=1e-10, atol=1e-10)


def test_carried_state_equals_one_pass():
    m = make_layer(chunk_size=3)
    x = make_x(L=12, seed=5)
    first = random_first(2, 12, seed=6)
    with torch.no_grad():
        y, s = m(x, first)
        y1, s1 = m(x[:, :7], first[:, :7])
        y2, s2 = m(x[:, 7:], first[:, 7:], s1)
        # step continues from a forward's state, forward continues from a step's state
        y3, s3 = m.step(x[:, 7], first[:, 7], s1)
        y4, s4 = m(x[:, 8:], first[:, 8:], s3)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s2.ssm, s.ssm, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y3, y[:, 7], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y4, y[:, 8:], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s4.conv, s.conv, rtol=1e-10, atol=1e-10)


def test_reset_equals_separate_sequences_and_blocks_gradients():
    m = make_layer()
    x = make_x(L=10, seed=8).requires_grad_(True)
    k = 6
    first = torch.zeros(2, 10, dtype=torch.bool)
    first[:, k] = True
    carried = Mamba2State(*(torch.randn(t.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
                            for t in m.initial_state(2)))
    y, _ = m(x, first, carried)
    y_b, _ = m(x[:, k:].detach())  # fresh zero state
    torch.testing.assert_close(y[:, k:].detach(), y_b, rtol=1e-10, atol=1e-10)
    y[:, k:].pow(2).sum().backward()
    assert torch.equal(x.grad[:, :k], torch.zeros_like(x.grad[:, :k]))
    assert x.grad[:, k:].abs().sum() > 0


def test_init_params_and_no_weight_decay():
    m = Mamba2(32, d_state=8, headdim=16, generator=torch.Generator().manual_seed(0))
    m2 = Mamba2(32, d_state=8, headdim=16, generator=torch.Generator().manual_seed(0))
    for (n, p), (_, p2) in zip(m.named_parameters(), m2.named_parameters()):
        assert torch.equal(p, p2), n  # seeded init is reproducible
    assert m.nheads == 4 and m.in_proj.out_features == 2 * 64 + 2 * 8 + 4
    dt = F.softplus(m.dt_bias)
    assert (dt >= 1e-3 * 0.999).all() and (dt <= 0.1 * 1.001).all()
    A = -torch.exp(m.A_log)
    assert (A <= -1.0).all() and (A >= -16.0).all()
    names = {n for n, _ in m.named_parameters()}
    assert m.no_weight_decay() == {"A_log", "dt_bias", "D"} and m.no_weight_decay() <= names


def test_autocast_keeps_ssm_in_float32():
    m = Mamba2(D_MODEL, d_state=4, headdim=8, chunk_size=4, generator=torch.Generator().manual_seed(0))
    x = make_x(L=8).float()
    y32, s32 = m(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, s16 = m(x)
    assert s16.ssm.dtype == torch.float32 and s16.conv.dtype == torch.float32
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=5e-2, atol=5e-2)


def test_mamba2_bad_inputs():
    m = make_layer()
    x = make_x()
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, d_model\) with d_model=16"):
        m(x[..., :8])
    with pytest.raises(ValueError, match=r"first must be a bool tensor of shape \(B, L\)"):
        m(x, torch.zeros(2, 11))
    with pytest.raises(ValueError, match=r"state.ssm must have shape"):
        st = m.initial_state(2)
        m(x, None, Mamba2State(st.conv, st.ssm[:, :1]))
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, d_model\)"):
        m.step(x, None, m.initial_state(2))
    with pytest.raises(ValueError, match=r"first_t must be a bool tensor of shape \(B,\)"):
        m.step(x[:, 0], torch.zeros(3, dtype=torch.bool), m.initial_state(2))
    with pytest.raises(ValueError, match=r"divisible by headdim"):
        Mamba2(10, headdim=8)


# --------------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------------
def test_rmsnorm_formula():
    n = RMSNorm(5, eps=1e-6).double()
    with torch.no_grad():
        n.weight.copy_(torch.arange(1.0, 6.0))
    x = make_x()[..., :5]
    want = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * torch.arange(1.0, 6.0, dtype=x.dtype)
    torch.testing.assert_close(n(x), want)


def test_block_matches_residual_formula():
    layer = make_layer()
    block = SSMBlock(layer, D_MODEL, mlp_ratio=2.0, norm="layer").double()
    x = make_x()
    first = random_first(2, 11)
    with torch.no_grad():
        y, _ = block(x, first)
        h = x + layer(block.norm(x), first)[0]
        want = h + block.mlp(block.norm2(h))
    torch.testing.assert_close(y, want)
    assert isinstance(block.norm, torch.nn.LayerNorm) and block.mlp[0].out_features == 32


@pytest.mark.parametrize("mlp_ratio,norm", [(0.0, "rms"), (2.0, "layer")])
def test_stack_step_equals_forward(mlp_ratio, norm):
    blocks = [SSMBlock(make_layer(seed=s), D_MODEL, mlp_ratio=mlp_ratio, norm=norm) for s in (1, 2)]
    stack = SSMStack(blocks, final_norm=norm).double()
    x = make_x(L=10, seed=9)
    first = random_first(2, 10, seed=4)
    with torch.no_grad():
        y, states = stack(x, first)
        st = stack.initial_state(2)
        assert isinstance(st, list) and len(st) == 2
        for t in range(10):
            y_t, st = stack.step(x[:, t], first[:, t], st)
            torch.testing.assert_close(y_t, y[:, t], rtol=1e-10, atol=1e-10)
        for a, b in zip(st, states):
            torch.testing.assert_close(a.ssm, b.ssm, rtol=1e-10, atol=1e-10)
        # carried list of states: two halves equal one pass; manual composition equals the stack
        y1, s1 = stack(x[:, :5], first[:, :5])
        y2, _ = stack(x[:, 5:], first[:, 5:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-10, atol=1e-10)
        h = blocks[1](blocks[0](x, first)[0], first)[0]
        torch.testing.assert_close(stack.norm(h), y)


def test_stack_and_block_bad_inputs():
    stack = SSMStack([SSMBlock(make_layer(), D_MODEL)]).double()
    x = make_x()
    with pytest.raises(ValueError, match=r"state must be a list of 1 per-block states"):
        stack(x, None, [None, None])
    with pytest.raises(ValueError, match=r'norm must be "rms" or "layer"'):
        SSMBlock(make_layer(), D_MODEL, norm="batch")
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, d_model\)"):
        stack(x[..., :4])
    with pytest.raises(ValueError, match=r"blocks must hold at least one block"):
        SSMStack([])
