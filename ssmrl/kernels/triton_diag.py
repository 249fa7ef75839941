"""Triton kernels for the resettable diagonal scan (forward and reverse-scan backward), real or complex.

One program owns one batch row and a block of BLOCK state elements and walks the L steps sequentially,
keeping h in registers. Complex tensors are passed as interleaved (re, im) float pairs (view_as_real).

``triton`` is imported lazily and the kernels are built on first use, so ``ssmrl`` imports without triton.
Triton (3.x) decides between compiling and the CPU interpreter when ``@triton.jit`` runs, i.e. from
``TRITON_INTERPRET`` at the moment the kernels are first built: set it before the first call in a process.
Verified only under ``TRITON_INTERPRET=1`` on CPU (no GPU in the development session).
"""
from __future__ import annotations

import functools

import torch

from ssmrl.kernels.backend import launch_guard
from torch import Tensor

__all__ = ["diag_scan_triton"]


@functools.lru_cache(maxsize=None)
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def fwd(a_ptr, b_ptr, keep_ptr, h0_ptr, y_ptr, L, S, W: tl.constexpr, BLOCK: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < S
        hr = tl.load(h0_ptr + pid_b * S * W + offs * W, mask=mask, other=0.0)
        hi = tl.zeros_like(hr)
        if W == 2:
            hi = tl.load(h0_ptr + pid_b * S * W + offs * W + 1, mask=mask, other=0.0)
        for t in range(L):
            k = tl.load(keep_ptr + pid_b * L + t)
            idx = (pid_b * L + t) * S * W + offs * W
            ar = tl.load(a_ptr + idx, mask=mask, other=0.0) * k
            br = tl.load(b_ptr + idx, mask=mask, other=0.0)
            if W == 2:
                ai = tl.load(a_ptr + idx + 1, mask=mask, other=0.0) * k
                bi = tl.load(b_ptr + idx + 1, mask=mask, other=0.0)
                hr, hi = ar * hr - ai * hi + br, ar * hi + ai * hr + bi
                tl.store(y_ptr + idx + 1, hi.to(y_ptr.dtype.element_ty), mask=mask)
            else:
                hr = ar * hr + br
            tl.store(y_ptr + idx, hr.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def bwd(a_ptr, keep_ptr, h0_ptr, y_ptr, gy_ptr, ghL_ptr, ga_ptr, gb_ptr, gh0_ptr, L, S,
            W: tl.constexpr, BLOCK: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < S
        sidx = pid_b * S * W + offs * W
        dr = tl.load(ghL_ptr + sidx, mask=mask, other=0.0)
        di = tl.zeros_like(dr)
        if W == 2:
            di = tl.load(ghL_ptr + sidx + 1, mask=mask, other=0.0)
        for tt in range(L):
            t = L - 1 - tt
            k = tl.load(keep_ptr + pid_b * L + t)
            idx = (pid_b * L + t) * S * W + offs * W
            dr += tl.load(gy_ptr + idx, mask=mask, other=0.0)
            tl.store(gb_ptr + idx, dr.to(gb_ptr.dtype.element_ty), mask=mask)
            # h_{t-1}: the previous output, or h0 at t = 0 (two predicated loads, one of them masked off)
            m_y = mask & ((offs * 0 + t) > 0)
            m_0 = mask & ((offs * 0 + t) == 0)
            pr = tl.load(y_ptr + idx - S * W, mask=m_y, other=0.0) + tl.load(h0_ptr + sidx, mask=m_0, other=0.0)
            ar = tl.load(a_ptr + idx, mask=mask, other=0.0) * k
            if W == 2:
                di += tl.load(gy_ptr + idx + 1, mask=mask, other=0.0)
                tl.store(gb_ptr + idx + 1, di.to(gb_ptr.dtype.element_ty), mask=mask)
                pi = tl.load(y_ptr + idx - S * W + 1, mask=m_y, other=0.0) + tl.load(
                    h0_ptr + sidx + 1, mask=m_0, other=0.0)
                ai = tl.load(a_ptr + idx + 1, mask=mask, other=0.0) * k
                # grad_a = dh * conj(h_prev) * keep ; dh_prev = conj(a * keep) * dh
                tl.store(ga_ptr + idx, ((dr * pr + di * pi) * k).to(ga_ptr.dtype.element_ty), mask=mask)
                tl.store(ga_ptr + idx + 1, ((di * pr - dr * pi) * k).to(ga_ptr.dtype.element_ty), mask=mask)
                dr, di = ar * dr + ai * di, ar * di - ai * dr
            else:
                tl.store(ga_ptr + idx, (dr * pr * k).to(ga_ptr.dtype.element_ty), mask=mask)
                dr = ar * dr
        tl.store(gh0_ptr + sidx, dr.to(gh0_ptr.dtype.element_ty), mask=mask)
        if W == 2:
            tl.store(gh0_ptr + sidx + 1, di.to(gh0_ptr.dtype.element_ty), mask=mask)

    return triton, fwd, bwd


def _flat(t: Tensor, B: int, L: int | None) -> Tensor:
    """(B, [L,] *S) -> contiguous real storage (B, [L,] S*W) (W = 2 for complex, interleaved)."""
    t = t.contiguous()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.reshape(B, -1) if L is None else t.reshape(B, L, -1)


def _unflat(t: Tensor, shape, complex_: bool) -> Tensor:
    if complex_:
        return torch.view_as_complex(t.reshape(*shape, 2))
    return t.reshape(shape)


def _grid(triton, B: int, S: int):
    block = min(512, triton.next_power_of_2(max(S, 1)))
    return (B, triton.cdiv(S, block)), block


class _DiagScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, keep: Tensor, h0: Tensor):
        triton, fwd, _ = _kernels()
        B, L = b.shape[:2]
        cplx = b.is_complex()
        W = 2 if cplx else 1
        S = b[0, 0].numel()
        af, bf, h0f = _flat(a, B, L), _flat(b, B, L), _flat(h0, B, None)
        yf = torch.empty_like(bf)
        grid, block = _grid(triton, B, S)
        with launch_guard(bf):  # Triton launches on the current device
            fwd[grid](af, bf, keep, h0f, yf, L, S, W=W, BLOCK=block)
        ctx.save_for_backward(af, keep, h0f, yf)
        ctx.meta = (B, L, S, W, tuple(b.shape), cplx)
        y = _unflat(yf, b.shape, cplx)
        return y, y[:, -1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor, ghL: Tensor):
        triton, _, bwd = _kernels()
        af, keep, h0f, yf = ctx.saved_tensors
        B, L, S, W, shape, cplx = ctx.meta
        gyf, ghLf = _flat(gy, B, L), _flat(ghL, B, None)
        ga, gb, gh0 = torch.empty_like(af), torch.empty_like(yf), torch.empty_like(h0f)
        grid, block = _grid(triton, B, S)
        with launch_guard(af):  # Triton launches on the current device
            bwd[grid](af, keep, h0f, yf, gyf, ghLf, ga, gb, gh0, L, S, W=W, BLOCK=block)
        return _unflat(ga, shape, cplx), _unflat(gb, shape, cplx), None, _unflat(gh0, (B, *shape[2:]), cplx)


def diag_scan_triton(a: Tensor, b: Tensor, first: Tensor | None, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    """Same contract as ``diag_scan`` (inputs already validated). Computes in the inputs' dtype, except that
    half-precision inputs are computed in float32 (and the results cast back)."""
    if b.dtype in (torch.float16, torch.bfloat16):
        y, hL = diag_scan_triton(a.float(), b.float(), first, None if h0 is None else h0.float())
        return y.to(b.dtype), hL.to(b.dtype)
    B, L = b.shape[:2]
    real = b.real.dtype if b.is_complex() else b.dtype
    keep = b.new_ones((B, L), dtype=real) if first is None else (~first).to(real).contiguous()
    if h0 is None:
        h0 = b.new_zeros((B, *b.shape[2:]))
    return _DiagScanTriton.apply(a, b, keep, h0)
