"""S4D, S5 and Mamba layers: step == forward, resets == independent sequences, inits, gradcheck, autocast."""
import math
import os
import subprocess
import sys

import pytest
import torch
from torch.func import functional_call

from ssmrl.kernels.backend import triton_available
from ssmrl.ssm.init import hippo_legs, hippo_normal, s4d_inv, s4d_lin, zoh
from ssmrl.ssm.mamba import Mamba
from ssmrl.ssm.s4d import S4D
from ssmrl.ssm.s5 import S5

from tests import ROOT

D_MODEL = 6
LAYERS = {
    "s4d_lin": lambda g, **kw: S4D(D_MODEL, d_state=8, init="lin", generator=g, **kw),
    "s4d_inv": lambda g, **kw: S4D(D_MODEL, d_state=8, init="inv", generator=g, **kw),
    "s5": lambda g, **kw: S5(D_MODEL, d_state=8, generator=g, **kw),
    "mamba": lambda g, **kw: Mamba(D_MODEL, d_state=4, d_conv=3, expand=2, generator=g, **kw),
}


def make(name, **kw):
    torch.manual_seed(0)  # nn.Linear's default init (Mamba) uses the global generator
    return LAYERS[name](torch.Generator().manual_seed(0), **kw).double()


def data(B=3, L=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D_MODEL, generator=g, dtype=torch.float64)
    first = torch.rand(B, L, generator=g) < 0.25
    first[0, 3:5] = True
    return x, first


def close(a, b, tol=1e-10):
    if isinstance(a, (tuple, list)):
        for u, v in zip(a, b):
            close(u, v, tol)
    else:
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", LAYERS)
def test_step_equals_forward(name):
    layer = make(name)
    x, first = data()
    _, state0 = layer(x[:, :4])  # a non-trivial carried state
    y, state = layer(x[:, 4:], first[:, 4:], state0)
    s = state0
    for t in range(x.shape[1] - 4):
        yt, s = layer.step(x[:, 4 + t], first[:, 4 + t], s)
        close(yt, y[:, t])
    close(s, state)
    # initial_state() behaves like "no state"
    close(layer(x)[0], layer(x, None, layer.initial_state(3))[0])


@pytest.mark.parametrize("name", LAYERS)
def test_reset_equals_two_sequences_and_zero_grads(name):
    layer = make(name)
    x, _ = data()
    k = 5
    first = torch.zeros(3, 9, dtype=torch.bool)
    first[:, k] = True
    _, state0 = layer(x[:, :3].flip(1))
    y, state = layer(x, first, state0)
    y1, _ = layer(x[:, :k], None, state0)
    y2, s2 = layer(x[:, k:])
    close(y, torch.cat([y1, y2], 1))
    close(state, s2)
    xg = x.clone().requires_grad_()
    y, state = layer(xg, first)
    parts = [state] if isinstance(state, torch.Tensor) else list(state)
    loss = y[:, k:].sum() + sum(p.abs().sum() for p in parts)
    (gx,) = torch.autograd.grad(loss, xg)
    assert torch.all(gx[:, :k] == 0) and torch.any(gx[:, k:] != 0)


@pytest.mark.parametrize("name", LAYERS)
def test_torch_backend_equals_reference_backend(name):
    x, first = data()
    outs = []
    for backend in ("reference", "torch"):
        layer = make(name, backend=backend)
        y, state = layer(x, first)
        grads = torch.autograd.grad(y.square().sum(), list(layer.parameters()))
        outs.append((y, state, grads))
    close(outs[0], outs[1])


def test_s4d_impulse_response_is_the_s4d_kernel():
    """K_l = 2 Re sum_n C_n (exp(dt A_n) - 1) / A_n exp(l dt A_n), plus D at l = 0 (S4D paper)."""
    layer = make("s4d_inv")
    L = 12
    u = torch.zeros(1, L, D_MODEL, dtype=torch.float64)
    u[0, 0] = 1.0
    y, _ = layer(u)
    A = torch.complex(-torch.exp(layer.A_log_re), layer.A_im)  # (H, N/2)
    dt = torch.exp(layer.log_dt)[:, None]
    C = torch.view_as_complex(layer.C)
    l = torch.arange(L, dtype=torch.float64)[:, None, None]
    K = 2 * (C * (torch.exp(dt * A) - 1) / A * torch.exp(l * dt * A)).sum(-1).real  # (L, H)
    K[0] += layer.D
    close(y[0], K.detach())


def test_s4d_inits_and_zoh():
    torch.testing.assert_close(s4d_lin(3).imag, torch.tensor([0.0, math.pi, 2 * math.pi], dtype=torch.float64))
    torch.testing.assert_close(s4d_inv(2, 4).imag, torch.tensor([4 / math.pi * 3, 4 / math.pi * (4 / 3 - 1)],
                                                                dtype=torch.float64))
    assert torch.all(s4d_inv(4).real == -0.5)
    A, dt = torch.tensor([-0.5 + 2j], dtype=torch.complex128), torch.tensor([0.1], dtype=torch.float64)
    dA, dB = zoh(A, dt)
    # ZOH input matrix equals the integral int_0^dt exp(s A) ds (midpoint rule, fine grid)
    s = (torch.arange(20000, dtype=torch.float64) + 0.5) * (0.1 / 20000)
    torch.testing.assert_close(dB, (torch.exp(s * A) * (0.1 / 20000)).sum().reshape(1))
    torch.testing.assert_close(dA, torch.exp(0.1 * A))


def test_hippo():
    r3, r5, r15 = math.sqrt(3), math.sqrt(5), math.sqrt(15)
    want = torch.tensor([[-1, 0, 0], [-r3, -2, 0], [-r5, -r15, -3]], dtype=torch.float64)
    torch.testing.assert_close(hippo_legs(3), want)
    Lam, V = hippo_normal(8)
    p = torch.sqrt(torch.arange(8, dtype=torch.float64) + 0.5)
    S = hippo_legs(8) + p[:, None] * p[None, :]
    torch.testing.assert_close((V * Lam) @ V.conj().T, S.to(torch.complex128))
    torch.testing.assert_close(Lam.real, torch.full((8,), -0.5, dtype=torch.float64))
    # conjugate pairs: the imaginary parts are symmetric around 0
    torch.testing.assert_close(torch.sort(Lam.imag).values, -torch.sort(-Lam.imag).values.flip(0))


def test_s5_parameters_pass_gradcheck():
    layer = S5(3, d_state=4, generator=torch.Generator().manual_seed(0)).double()
    x, _ = data(B=2, L=5)
    x = x[..., :3]
    first = torch.tensor([[False, False, True, False, False], [True, False, False, False, True]])
    names = ["Lambda_re", "Lambda_im", "B", "C", "D", "log_step"]
    params = tuple(getattr(layer, n).detach().clone().requires_grad_() for n in names)
    h0 = layer.initial_state(2) + 0.3j

    def f(*ps):
        y, h = functional_call(layer, dict(zip(names, ps)), (x, first, h0))
        return y, torch.view_as_real(h)

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", LAYERS)
def test_autocast_keeps_ssm_in_float32(name):
    torch.manual_seed(0)
    layer = LAYERS[name](torch.Generator().manual_seed(0))
    x, first = data()
    x = x.float()
    y32, s32 = layer(x, first)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = layer(x, first)
        yt, st = layer.step(x[:, 0], first[:, 0], layer.initial_state(3))
    parts = [state, st] if isinstance(state, torch.Tensor) else [*state, *st]
    ssm = parts[-1]
    assert ssm.dtype in (torch.float32, torch.complex64)
    assert torch.isfinite(y.float()).all()
    tol = 1e-6 if name != "mamba" else 0.1  # Mamba's projections run in bfloat16 under autocast
    torch.testing.assert_close(y.float(), y32, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", LAYERS)
def test_no_weight_decay_names_and_bad_input(name):
    layer = make(name)
    names = dict(layer.named_parameters())
    nwd = layer.no_weight_decay()
    assert nwd and nwd <= set(names)
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, d_model\) with d_model=6"):
        layer(torch.zeros(2, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, d_model\)"):
        layer.step(torch.zeros(2, 3, 6, dtype=torch.float64), None, layer.initial_state(2))


LAYER_TRITON_SCRIPT = """
import torch
import tests.ssmrl.ssm.test_layers as T
for name in ("s5", "mamba"):
    x, first = T.data(B=2, L=5)
    outs = []
    for backend in ("reference", "triton"):
        layer = T.make(name, backend=backend)
        y, state = layer(x, first)
        outs.append((y, state, torch.autograd.grad(y.square().sum(), list(layer.parameters()))))
    T.close(outs[0], outs[1])
print("ok")
"""


@pytest.mark.skipif(not triton_available(), reason="triton is not installed")
def test_layers_with_triton_backend_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-c", LAYER_TRITON_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
