"""Triton kernels for the resettable Mamba-1 selective scan (the ``C h`` part; D skip and gate are done in torch).

Never materialises a (B, L, Dm, N) tensor. One program owns one batch row and BLOCK_D channels with all N
states in registers and walks the L steps sequentially.
- forward: h_t = exp(dt_t A) keep_t h_{t-1} + dt_t x_t B_t; y_t = sum_n C_t h_t. It also stores the state
  before every chunk of K steps (ckpt, (B, L/K, Dm, N)).
- backward: chunks in reverse; each chunk's K states are recomputed from its checkpoint into a per-program
  scratch (B, #D-blocks, K, BLOCK_D, N) and then walked backwards with the reverse scan
  dh_{t-1} = exp(dt_t A) keep_t dh_t (+ C_t gy_{t-1}). Per-D-block partial sums of dB, dC (over channels)
  and per-row partials of dA (over batch) are reduced on the host.

Triton is imported lazily; the kernels are built on first use (see ``triton_diag`` on TRITON_INTERPRET).
Verified only under ``TRITON_INTERPRET=1`` on CPU (no GPU in the development session).
"""
from __future__ import annotations

import functools

import torch

from ssmrl.kernels.backend import launch_guard
from torch import Tensor

__all__ = ["selective_scan_triton"]


@functools.lru_cache(maxsize=None)
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def fwd(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, keep_ptr, h0_ptr, y_ptr, hL_ptr, ck_ptr, L, Dm, N, NC,
            K: tl.constexpr, BD: tl.constexpr, NP: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        od = tl.program_id(1) * BD + tl.arange(0, BD)
        on = tl.arange(0, NP)
        md, mn = od < Dm, on < N
        m2 = md[:, None] & mn[None, :]
        o2 = od[:, None] * N + on[None, :]
        A = tl.load(A_ptr + o2, mask=m2, other=0.0)
        h = tl.load(h0_ptr + pid_b * Dm * N + o2, mask=m2, other=0.0)
        for t in range(L):
            if t % K == 0:
                tl.store(ck_ptr + (pid_b * NC + t // K) * Dm * N + o2, h, mask=m2)
            k = tl.load(keep_ptr + pid_b * L + t)
            row = (pid_b * L + t)
            x = tl.load(x_ptr + row * Dm + od, mask=md, other=0.0)
            dt = tl.load(dt_ptr + row * Dm + od, mask=md, other=0.0)
            Bt = tl.load(B_ptr + row * N + on, mask=mn, other=0.0)
            Ct = tl.load(C_ptr + row * N + on, mask=mn, other=0.0)
            h = tl.exp(dt[:, None] * A) * k * h + (dt * x)[:, None] * Bt[None, :]
            tl.store(y_ptr + row * Dm + od, tl.sum(h * Ct[None, :], axis=1), mask=md)
        tl.store(hL_ptr + pid_b * Dm * N + o2, h, mask=m2)

    @triton.jit
    def bwd(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, keep_ptr, ck_ptr, gy_ptr, ghL_ptr, sc_ptr,
            dx_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dh0_ptr, L, Dm, N, NC, Bsz,
            K: tl.constexpr, BD: tl.constexpr, NP: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        pid_d = tl.program_id(1)
        od = pid_d * BD + tl.arange(0, BD)
        on = tl.arange(0, NP)
        md, mn = od < Dm, on < N
        m2 = md[:, None] & mn[None, :]
        o2 = od[:, None] * N + on[None, :]
        s2 = tl.arange(0, BD)[:, None] * NP + on[None, :]  # scratch layout (BD, NP)
        sbase = (pid_b * tl.num_programs(1) + pid_d) * K * BD * NP
        A = tl.load(A_ptr + o2, mask=m2, other=0.0)
        dh = tl.load(ghL_ptr + pid_b * Dm * N + o2, mask=m2, other=0.0)
        dA_acc = tl.zeros_like(dh)
        for ci in range(NC):
            c = NC - 1 - ci
            ck = tl.load(ck_ptr + (pid_b * NC + c) * Dm * N + o2, mask=m2, other=0.0)
            h = ck
            for j in range(K):  # recompute this chunk's states
                t = c * K + j
                if t < L:
                    k = tl.load(keep_ptr + pid_b * L + t)
                    row = pid_b * L + t
                    x = tl.load(x_ptr + row * Dm + od, mask=md, other=0.0)
                    dt = tl.load(dt_ptr + row * Dm + od, mask=md, other=0.0)
                    Bt = tl.load(B_ptr + row * N + on, mask=mn, other=0.0)
                    h = tl.exp(dt[:, None] * A) * k * h + (dt * x)[:, None] * Bt[None, :]
                    tl.store(sc_ptr + sbase + j * BD * NP + s2, h)
            tl.debug_barrier()
            for jj in range(K):  # and walk them backwards
                j = K - 1 - jj
                t = c * K + j
                if t < L:
                    k = tl.load(keep_ptr + pid_b * L + t)
                    row = pid_b * L + t
                    x = tl.load(x_ptr + row * Dm + od, mask=md, other=0.0)
                    dt = tl.load(dt_ptr + row * Dm + od, mask=md, other=0.0)
                    Bt = tl.load(B_ptr + row * N + on, mask=mn, other=0.0)
                    Ct = tl.load(C_ptr + row * N + on, mask=mn, other=0.0)
                    gy = tl.load(gy_ptr + row * Dm + od, mask=md, other=0.0)
                    ht = tl.load(sc_ptr + sbase + j * BD * NP + s2)
                    if j > 0:
                        hp = tl.load(sc_ptr + sbase + (j - 1) * BD * NP + s2)
                    else:
                        hp = ck
                    tl.store(dC_ptr + ((pid_d * Bsz + pid_b) * L + t) * N + on,
                             tl.sum(gy[:, None] * ht, axis=0), mask=mn)
                    dh += gy[:, None] * Ct[None, :]
                    u = dt * x
                    tl.store(dB_ptr + ((pid_d * Bsz + pid_b) * L + t) * N + on,
                             tl.sum(dh * u[:, None], axis=0), mask=mn)
                    du = tl.sum(dh * Bt[None, :], axis=1)
                    dA = tl.exp(dt[:, None] * A) * k
                    g = dh * hp * dA  # gradient w.r.t. the exponent dt * A
                    tl.store(dx_ptr + row * Dm + od, du * dt, mask=md)
                    tl.store(ddt_ptr + row * Dm + od, du * x + tl.sum(g * A, axis=1), mask=md)
                    dA_acc += g * dt[:, None]
                    dh = dh * dA
            tl.debug_barrier()
        tl.store(dh0_ptr + pid_b * Dm * N + o2, dh, mask=m2)
        tl.store(dA_ptr + pid_b * Dm * N + o2, dA_acc, mask=m2)

    return triton, fwd, bwd


def _config(triton, Dm: int, N: int, L: int, chunk: int):
    NP = triton.next_power_of_2(N)
    BD = max(1, min(triton.next_power_of_2(Dm), max(16, 4096 // NP), 64))
    return NP, BD, triton.cdiv(Dm, BD), triton.cdiv(L, chunk)


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, Bm, Cm, keep, h0, chunk: int):
        triton, fwd, _ = _kernels()
        x, dt, A, Bm, Cm, h0 = (t.contiguous() for t in (x, dt, A, Bm, Cm, h0))
        Bsz, L, Dm = x.shape
        N = A.shape[1]
        NP, BD, nd, NC = _config(triton, Dm, N, L, chunk)
        y = torch.empty_like(x)
        hL = torch.empty_like(h0)
        ck = x.new_empty(Bsz, NC, Dm, N)
        with launch_guard(x):  # Triton launches on the current device
            fwd[(Bsz, nd)](x, dt, A, Bm, Cm, keep, h0, y, hL, ck, L, Dm, N, NC, K=chunk, BD=BD, NP=NP)
        ctx.save_for_backward(x, dt, A, Bm, Cm, keep, ck)
        ctx.chunk = chunk
        return y, hL

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, ghL):
        triton, _, bwd = _kernels()
        x, dt, A, Bm, Cm, keep, ck = ctx.saved_tensors
        K = ctx.chunk
        Bsz, L, Dm = x.shape
        N = A.shape[1]
        NP, BD, nd, NC = _config(triton, Dm, N, L, K)
        gy, ghL = gy.contiguous(), ghL.contiguous()
        scratch = x.new_empty(Bsz, nd, K, BD, NP)
        dx, ddt = torch.empty_like(x), torch.empty_like(dt)
        dA = x.new_empty(Bsz, Dm, N)
        dB = x.new_empty(nd, Bsz, L, N)
        dC = x.new_empty(nd, Bsz, L, N)
        dh0 = torch.empty_like(ghL)
        with launch_guard(x):  # Triton launches on the current device
            bwd[(Bsz, nd)](x, dt, A, Bm, Cm, keep, ck, gy, ghL, scratch, dx, ddt, dA, dB, dC, dh0,
                           L, Dm, N, NC, Bsz, K=K, BD=BD, NP=NP)
        return dx, ddt, dA.sum(0), dB.sum(0), dC.sum(0), None, dh0, None


def selective_scan_triton(x, dt, A, Bm, Cm, first, h0, chunk: int = 32) -> tuple[Tensor, Tensor]:
    """y = C h part of ``selective_scan`` (inputs already validated) and the final state (B, Dm, N).

    Computes in the inputs' dtype, except that half-precision inputs are computed in float32.
    ``chunk`` is the checkpoint interval K of the backward recomputation.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        y, hL = selective_scan_triton(
            x.float(), dt.float(), A.float(), Bm.float(), Cm.float(), first,
            None if h0 is None else h0.float(), chunk,
        )
        return y.to(x.dtype), hL.to(x.dtype)
    Bsz, L, Dm = x.shape
    keep = x.new_ones(Bsz, L) if first is None else (~first).to(x.dtype).contiguous()
    if h0 is None:
        h0 = x.new_zeros(Bsz, Dm, A.shape[1])
    return _SelectiveScanTriton.apply(x, dt, A, Bm, Cm, keep, h0, chunk)
