"""Resettable diagonal (elementwise) linear scan: ``h_t = a_t * (1 - first_t) * h_{t-1} + b_t``.

Used by S4D and S5 (complex) and, after discretisation, by the torch path of the Mamba-1 selective scan.

Backends:
- ``reference``: plain sequential loop under autograd (float64/complex128 capable; the test oracle).
- ``torch``: a custom ``autograd.Function`` whose forward is an ``unbind``/``addcmul`` loop and whose backward
  is the reverse scan ``dh_{t-1} = conj(a_t (1 - first_t)) dh_t + g_{t-1}`` run by the same kind of loop.
  (Indexing ``a[:, t]`` under autograd is 100-1000x slower in backward: docs/references.md#cpu-loops-under-autograd.)
- ``triton``: ``ssmrl.kernels.triton_diag`` (CUDA, or the CPU interpreter with ``TRITON_INTERPRET=1``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ssmrl.kernels.backend import interpreter_warning, resolve_backend, run_triton

__all__ = ["diag_scan", "diag_scan_step"]


# ----------------------------------------------------------------------------------------------- validation
def expect_shape(name: str, t: Tensor, shape: Sequence[int | None], desc: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``t.shape`` matches ``shape`` (None = any size)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {desc}, got {type(t).__name__}")
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if not ok:
        want = tuple("*" if s is None else s for s in shape)
        raise ValueError(f"{name} must have shape {desc} = {want}, got {tuple(t.shape)}")


def expect_float(name: str, t: Tensor, complex_ok: bool = True) -> None:
    if not (t.is_floating_point() or (complex_ok and t.is_complex())):
        kinds = "a floating or complex" if complex_ok else "a floating"
        raise TypeError(f"{name} must have {kinds} dtype, got {t.dtype}")


def check_first(first: Tensor | None, batch: int, length: int | None) -> Tensor | None:
    """``first``: bool (B, L) (or (B,) for a step when ``length`` is None)."""
    if first is None:
        return None
    shape = (batch,) if length is None else (batch, length)
    desc = "(B,)" if length is None else "(B, L)"
    expect_shape("first" if length is not None else "first_t", first, shape, desc)
    if first.dtype != torch.bool:
        raise TypeError(f"first must be a bool tensor {desc}, got dtype {first.dtype}")
    return first


def keep_mask(first: Tensor, like: Tensor, extra_dims: int) -> Tensor:
    """``1 - first`` in ``like``'s dtype with ``extra_dims`` trailing singleton dims."""
    keep = (~first).to(like.real.dtype if like.is_complex() else like.dtype)
    return keep.reshape(keep.shape + (1,) * extra_dims)


def _validate(a: Tensor, b: Tensor, first: Tensor | None, h0: Tensor | None) -> Tensor:
    expect_float("b", b)
    if b.dim() < 2 or b.shape[1] < 1:
        raise ValueError(f"b must have shape (B, L, *S) with L >= 1, got {tuple(b.shape)}")
    expect_float("a", a)
    if a.dtype != b.dtype:
        raise TypeError(f"a must have the same dtype as b ({b.dtype}), got {a.dtype}")
    if a.shape != b.shape:
        try:
            a = a.expand(b.shape)  # cheap broadcast (e.g. a constant over batch/time); a view, no copy
        except RuntimeError:
            raise ValueError(
                f"a must have shape (B, L, *S) = {tuple(b.shape)} (or broadcast to it), got {tuple(a.shape)}"
            ) from None
    B, L = b.shape[:2]
    check_first(first, B, L)
    if h0 is not None:
        expect_shape("h0", h0, (B, *b.shape[2:]), "(B, *S)")
        if h0.dtype != b.dtype:
            raise TypeError(f"h0 must have dtype {b.dtype} (the dtype of b), got {h0.dtype}")
    return a


# ----------------------------------------------------------------------------------------------- reference
def _diag_reference(a: Tensor, b: Tensor, first: Tensor | None, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    B, L = b.shape[:2]
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    extra = b.dim() - 2
    hs = []
    for t in range(L):
        at = a[:, t]
        if first is not None:
            at = at * keep_mask(first[:, t], b, extra)
        h = at * h + b[:, t]
        hs.append(h)
    return torch.stack(hs, 1), h


# ----------------------------------------------------------------------------------------------- torch
def _scan_loop(a_eff: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
    """Forward loop without autograd: returns all h (B, L, *S)."""
    y = torch.empty_like(b)
    h = h0
    for at, bt, yt in zip(a_eff.unbind(1), b.unbind(1), y.unbind(1)):
        if h is None:
            yt.copy_(bt)
        else:
            torch.addcmul(bt, at, h, out=yt)
        h = yt
    return y


class _DiagScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, keep: Tensor | None, h0: Tensor | None):
        a_eff = a if keep is None else a * keep
        y = _scan_loop(a_eff, b, h0)
        ctx.save_for_backward(a_eff, y, keep, h0)
        ctx.h0_given = h0 is not None
        return y, y[:, -1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor, ghL: Tensor):
        a_eff, y, keep, h0 = ctx.saved_tensors
        if a_eff.is_complex():
            a_c = a_eff.conj().resolve_conj()
        else:
            a_c = a_eff
        # gb_t = dL/dh_t (total): gb_t = gy_t + conj(a_eff_{t+1}) gb_{t+1};  gb_{L-1} = gy_{L-1} + ghL
        gb = torch.empty_like(gy)
        gys = gy.unbind(1)
        gbs = gb.unbind(1)
        acs = a_c.unbind(1)
        L = gy.shape[1]
        torch.add(gys[L - 1], ghL, out=gbs[L - 1])
        for t in range(L - 2, -1, -1):
            torch.addcmul(gys[t], acs[t + 1], gbs[t + 1], out=gbs[t])
        ga = None
        if ctx.needs_input_grad[0]:
            ga = torch.empty_like(gy)
            h_prev = y[:, :-1].conj() if y.is_complex() else y[:, :-1]
            torch.mul(gb[:, 1:], h_prev, out=ga[:, 1:])
            if h0 is not None:
                torch.mul(gb[:, 0], h0.conj() if h0.is_complex() else h0, out=ga[:, 0])
            else:
                ga[:, 0].zero_()
            if keep is not None:
                ga.mul_(keep)
        gh0 = acs[0] * gbs[0] if (ctx.h0_given and ctx.needs_input_grad[3]) else None
        return ga, gb, None, gh0


def _diag_torch(a: Tensor, b: Tensor, first: Tensor | None, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    keep = None if first is None else keep_mask(first, b, b.dim() - 2)
    return _DiagScanFn.apply(a, b, keep, h0)


# ----------------------------------------------------------------------------------------------- public
def diag_scan(
    a: Tensor,
    b: Tensor,
    first: Tensor | None = None,
    h0: Tensor | None = None,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Resettable diagonal scan ``h_t = a_t * (1 - first_t) * h_{t-1} + b_t`` with ``h_{-1} = h0`` (or 0).

    Args:
        a: (B, L, *S) real or complex decay (may also be anything that broadcasts to b's shape).
        b: (B, L, *S) input, same dtype as a.
        first: bool (B, L); True where step t starts an episode (state zeroed before step t).
        h0: (B, *S) initial state, or None for zeros.
        backend: None | "reference" | "torch" | "triton".
    Returns:
        h: (B, L, *S) all states, and h_L: (B, *S) the final state.
    """
    a = _validate(a, b, first, h0)
    explicit = backend == "triton"
    backend = resolve_backend(backend, a, b)
    if backend == "reference":
        return _diag_reference(a, b, first, h0)
    if backend == "torch":
        return _diag_torch(a, b, first, h0)
    from ssmrl.kernels.triton_diag import diag_scan_triton

    interpreter_warning(a, b)
    variant = (b.dtype, tuple(b.shape[2:]))
    return run_triton("diag_scan", variant, explicit, lambda: diag_scan_triton(a, b, first, h0),
                      lambda: _diag_torch(a, b, first, h0))


def diag_scan_step(
    a_t: Tensor,
    b_t: Tensor,
    first_t: Tensor | None = None,
    state: Tensor | None = None,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """One step of :func:`diag_scan`: a_t, b_t (B, *S), first_t bool (B,), state (B, *S) -> (h_t, h_t).

    A single step is a couple of elementwise ops, so every backend shares this torch implementation.
    """
    expect_float("b_t", b_t)
    if b_t.dim() < 1:
        raise ValueError(f"b_t must have shape (B, *S), got {tuple(b_t.shape)}")
    expect_float("a_t", a_t)
    if a_t.dtype != b_t.dtype:
        raise TypeError(f"a_t must have the same dtype as b_t ({b_t.dtype}), got {a_t.dtype}")
    resolve_backend(backend, a_t, b_t)
    if state is None:
        return b_t, b_t
    expect_shape("state", state, tuple(b_t.shape), "(B, *S)")
    if state.dtype != b_t.dtype:
        raise TypeError(f"state must have dtype {b_t.dtype} (the dtype of b_t), got {state.dtype}")
    if first_t is not None:
        check_first(first_t, b_t.shape[0], None)
        a_t = a_t * keep_mask(first_t, b_t, b_t.dim() - 1)
    h = a_t * state + b_t
    return h, h
