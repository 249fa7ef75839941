"""Resettable depthwise causal 1-d convolution over (B, L, C) (the short conv of Mamba blocks).

    y_t[c] = bias[c] + sum_{k=0}^{W-1} weight[c, k] * x_{t-W+1+k}[c]

with every tap that would reach an input from before the most recent ``first`` (at or before t) reading zero
instead, so no information crosses an episode boundary.

State convention: ``state`` (B, C, W-1) holds the last W-1 inputs, oldest first, *with every input from before
the most recent reset replaced by zero*. This is exactly the window the next step may use: if the last reset
happened within the last W-1 steps, the slots before it are zero (the new episode started from an empty
window), so continuing from ``state`` equals running on the whole sequence. A state passed in is treated as
inputs that come before ``x[:, 0]`` in the same episode (unless ``first[:, 0]`` resets it).

Backends: ``reference`` is a per-step loop; ``torch`` (also used for ``triton``, since the vectorised tap loop
is a handful of elementwise ops that run on CUDA as they are) builds a per-tap validity mask from
``cumsum(first)`` episode ids. For float32 CPU tensors ``torch`` runs the output through the C kernel in
``_selective_cpu.c`` (same mask, one pass; optional, built by ``pip install``): autograd's backward of the
tap loop (slice gradients scattered into zero-filled buffers) made the conv ~60 ms of a 230 ms Mamba layer
fwd+bwd at Decision Mamba's size, as much as its selective scan.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ssmrl.kernels.backend import resolve_backend
from ssmrl.kernels.diag import check_first, expect_float, expect_shape

try:  # built from _selective_cpu.c by `pip install -e .`; optional
    from ssmrl.kernels import _selective_cpu as _native
except ImportError:  # pragma: no cover - only without a C compiler
    _native = None

__all__ = ["causal_conv1d", "causal_conv1d_step"]


def _check_params(weight: Tensor, bias: Tensor | None, ref: Tensor, ref_name: str, C: int) -> int:
    expect_shape("weight", weight, (C, None), "(C, W)")
    W = weight.shape[1]
    if W < 1:
        raise ValueError(f"weight must have shape (C, W) with W >= 1, got {tuple(weight.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != ref.dtype:
            raise TypeError(f"{name} must have dtype {ref.dtype} (the dtype of {ref_name}), got {t.dtype}")
    if bias is not None:
        expect_shape("bias", bias, (C,), "(C,)")
    return W


def _check_state(state: Tensor | None, ref: Tensor, B: int, C: int, W: int) -> None:
    if state is None:
        return
    expect_shape("state", state, (B, C, W - 1), "(B, C, W-1)")
    if state.dtype != ref.dtype:
        raise TypeError(f"state must have dtype {ref.dtype}, got {state.dtype}")


def _conv_reference(x, weight, bias, first, state) -> tuple[Tensor, Tensor]:
    B, L, C = x.shape
    W = weight.shape[1]
    st = x.new_zeros(B, C, W - 1) if state is None else state
    ys = []
    for t in range(L):
        if first is not None:
            st = st * (~first[:, t]).to(x.dtype)[:, None, None]
        window = torch.cat([st, x[:, t, :, None]], dim=2)  # (B, C, W)
        y = (window * weight).sum(-1)
        if bias is not None:
            y = y + bias
        ys.append(y)
        st = window[:, :, 1:]
    return torch.stack(ys, 1), st


class _ConvNativeFn(torch.autograd.Function):
    """y of the conv through the C kernel. x (B, L, C), prev (B, W-1, C) or None, weight (C, W), bias (C,) or
    None, first bool (B, L) or None; float32 CPU."""

    @staticmethod
    def forward(ctx, x, prev, weight, bias, first):
        B, L, C = x.shape
        W = weight.shape[1]
        x, weight = x.detach().contiguous(), weight.detach().contiguous()
        prev = None if prev is None else prev.detach().contiguous()
        first_u8 = None if first is None else first.to(torch.uint8).contiguous()
        y = torch.empty_like(x)
        _native.conv_forward(B, L, C, W, *(None if t is None else t.detach().contiguous().numpy()
                                           for t in (x, prev, weight, bias, first_u8, y)))
        ctx.save_for_backward(x, prev, weight, first_u8)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        x, prev, weight, first_u8 = ctx.saved_tensors
        B, L, C = x.shape
        W = weight.shape[1]
        gy = gy.contiguous()
        gx, gw = torch.empty_like(x), torch.empty_like(weight)
        gprev = None if prev is None else torch.empty_like(prev)
        _native.conv_backward(B, L, C, W, *(None if t is None else t.numpy()
                                            for t in (x, prev, weight, first_u8, gy, gx, gprev, gw)))
        gbias = gy.sum((0, 1)) if ctx.has_bias else None
        return gx, gprev, gw, gbias, None


def _native_ok(*tensors: Tensor | None) -> bool:
    return _native is not None and all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32)
                                       for t in tensors)


def _tail_state(x: Tensor, first: Tensor | None, W: int) -> Tensor:
    """The new state (B, C, W-1) when L >= W-1: the last W-1 inputs, zeroed where a later ``first`` (up to the
    last step) resets them."""
    L = x.shape[1]
    tail = x[:, L - W + 1:]  # (B, W-1, C)
    if first is not None:
        f = first[:, L - W + 1:].long()
        later = f.flip(1).cumsum(1).flip(1) - f  # resets strictly after each tail position
        tail = tail * (later == 0).to(x.dtype).unsqueeze(-1)
    return tail.transpose(1, 2).contiguous()


def _conv_torch(x, weight, bias, first, state) -> tuple[Tensor, Tensor]:
    B, L, C = x.shape
    W = weight.shape[1]
    carried = None if state is None else state.transpose(1, 2)  # (B, W-1, C)
    y = _ConvNativeFn.apply(x, carried, weight, bias, first) if _native_ok(x, weight, bias, state) else None
    if y is not None and L >= W - 1:  # the new state is the input's tail: no padded sequence or episode ids
        return y, _tail_state(x, first, W)
    prev = x.new_zeros(B, W - 1, C) if carried is None else carried
    xp = torch.cat([prev, x], dim=1)  # (B, W-1+L, C); padded position p holds input t = p - (W-1)
    seg = None
    if first is not None:
        # episode id of each padded position; the carried state belongs to episode 0 (before any reset)
        seg = torch.cat([first.new_zeros(B, W - 1, dtype=torch.long), first.long().cumsum(1)], dim=1)
    if y is None:
        for k in range(W):
            tap = xp[:, k : k + L] * weight[:, k]
            if seg is not None and k < W - 1:
                valid = (seg[:, k : k + L] == seg[:, W - 1 :]).to(x.dtype)  # same episode as the output step
                tap = tap * valid.unsqueeze(-1)
            y = tap if y is None else y + tap
        if bias is not None:
            y = y + bias
    new_state = xp[:, L:]  # last W-1 positions (B, W-1, C)
    if seg is not None and W > 1:
        new_state = new_state * (seg[:, L:] == seg[:, -1:]).to(x.dtype).unsqueeze(-1)
    return y, new_state.transpose(1, 2).contiguous()


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    first: Tensor | None = None,
    state: Tensor | None = None,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Depthwise causal conv with resets.

    Args:
        x: (B, L, C).  weight: (C, W).  bias: (C,) or None.  first: bool (B, L).
        state: (B, C, W-1) the previous W-1 inputs (oldest first), or None for zeros.
    Returns:
        y: (B, L, C) and the new state (B, C, W-1) (inputs before the latest reset zeroed; see module doc).
    """
    expect_float("x", x, complex_ok=False)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, L, C), got {tuple(x.shape)}")
    B, L, C = x.shape
    W = _check_params(weight, bias, x, "x", C)
    _check_state(state, x, B, C, W)
    check_first(first, B, L)
    backend = resolve_backend(backend, x, weight)
    if backend == "reference":
        return _conv_reference(x, weight, bias, first, state)
    return _conv_torch(x, weight, bias, first, state)


def causal_conv1d_step(
    x_t: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    first_t: Tensor | None = None,
    state: Tensor | None = None,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """One token: x_t (B, C), first_t bool (B,), state (B, C, W-1) -> (y_t (B, C), state (B, C, W-1))."""
    expect_float("x_t", x_t, complex_ok=False)
    if x_t.dim() != 2:
        raise ValueError(f"x_t must have shape (B, C), got {tuple(x_t.shape)}")
    B, C = x_t.shape
    W = _check_params(weight, bias, x_t, "x_t", C)
    _check_state(state, x_t, B, C, W)
    check_first(first_t, B, None)
    resolve_backend(backend, x_t, weight)
    # y = bias + x_t w[:, -1] + sum_k state_k w[:, k], accumulated tap by tap: no (B, C, W) window is built
    # (a loop of addcmul also beats a sum over the tiny last dim), and nothing is masked without resets
    y = x_t * weight[:, -1]
    if bias is not None:
        y = y + bias
    if W == 1:
        return y, x_t.new_zeros(B, C, 0)
    if state is None:
        return y, torch.cat([x_t.new_zeros(B, C, W - 2), x_t.unsqueeze(-1)], dim=2)
    if first_t is not None:
        state = state * (~first_t).to(x_t.dtype)[:, None, None]
    for k in range(W - 1):
        y = torch.addcmul(y, state[:, :, k], weight[:, k])
    return y, torch.cat([state[:, :, 1:], x_t.unsqueeze(-1)], dim=2)
