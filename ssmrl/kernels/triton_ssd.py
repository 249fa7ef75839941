"""Triton backend of `ssd_scan`: a sequential-in-time recurrence per (batch, head, block of P rows).

Forward keeps the (BLOCK_P, N) state in registers and writes it once per chunk (checkpoints).
Backward walks the chunks in reverse: it recomputes the chunk's states from its checkpoint into a
scratch buffer, then runs the adjoint recurrence backwards, so memory stays O(L/chunk) states.
Rows of P evolve independently, so P is split across programs; per-row partial sums for dB, dC,
ddt and dA are reduced in torch. D x is added outside the kernel (plain autograd).

Triton is imported lazily (the package is optional). Offsets are 64-bit (program ids widened). Verified under
TRITON_INTERPRET=1 on CPU and compiled ahead of time for sm_90 in the tests; not yet run on a GPU here.
"""
from __future__ import annotations

import functools

import torch

from ssmrl.kernels.backend import launch_guard

__all__ = ["ssd_scan_triton"]


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool):
    # the cache key makes kernels built in and out of the interpreter distinct objects
    import triton
    import triton.language as tl

    @triton.jit
    def fwd_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, f_ptr, h0_ptr, y_ptr, ck_ptr, hT_ptr,
        L, H, G, P, N, NC, REP,
        Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        pid_bh = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B*L*H*P and the buffers pass 2^31 elements
        pid_p = tl.program_id(1).to(tl.int64)
        b = pid_bh // H
        h = pid_bh % H
        g = h // REP
        offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        offs_n = tl.arange(0, BLOCK_N)
        mp = offs_p < P
        mn = offs_n < N
        mpn = mp[:, None] & mn[None, :]
        a_h = tl.load(A_ptr + h)
        pn = offs_p[:, None] * N + offs_n[None, :]
        state = tl.load(h0_ptr + (b * H + h) * P * N + pn, mask=mpn, other=0.0)
        for c in range(NC):
            tl.store(ck_ptr + ((b * H + h) * NC + c) * P * N + pn, state, mask=mpn)
            for i in range(Q):
                t = c * Q + i
                x = tl.load(x_ptr + ((b * L + t) * H + h) * P + offs_p, mask=mp, other=0.0)
                dt = tl.load(dt_ptr + (b * L + t) * H + h)
                f = tl.load(f_ptr + b * L + t)
                Bv = tl.load(B_ptr + ((b * L + t) * G + g) * N + offs_n, mask=mn, other=0.0)
                Cv = tl.load(C_ptr + ((b * L + t) * G + g) * N + offs_n, mask=mn, other=0.0)
                decay = tl.exp(dt * a_h) * (1.0 - f)
                state = decay * state + (dt * x)[:, None] * Bv[None, :]
                y = tl.sum(state * Cv[None, :], axis=1)
                tl.store(y_ptr + ((b * L + t) * H + h) * P + offs_p, y, mask=mp)
        tl.store(hT_ptr + (b * H + h) * P * N + pn, state, mask=mpn)

    @triton.jit
    def bwd_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, f_ptr, ck_ptr, dy_ptr, dhT_ptr, scr_ptr,
        dx_ptr, dB_ptr, dC_ptr, ddt_ptr, gA_ptr, dh0_ptr,
        BSZ, L, H, G, P, N, NC, REP,
        Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        pid_bh = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B*L*H*P and the buffers pass 2^31 elements
        pid_p = tl.program_id(1).to(tl.int64)
        b = pid_bh // H
        h = pid_bh % H
        g = h // REP
        offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        offs_n = tl.arange(0, BLOCK_N)
        mp = offs_p < P
        mn = offs_n < N
        mpn = mp[:, None] & mn[None, :]
        pn = offs_p[:, None] * N + offs_n[None, :]
        a_h = tl.load(A_ptr + h)
        scr = scr_ptr + (b * H + h) * (Q + 1) * P * N  # (Q+1, P, N): entering state, then after each step
        dh = tl.load(dhT_ptr + (b * H + h) * P * N + pn, mask=mpn, other=0.0)
        for cc in range(NC):
            c = NC - 1 - cc
            state = tl.load(ck_ptr + ((b * H + h) * NC + c) * P * N + pn, mask=mpn, other=0.0)
            tl.store(scr + pn, state, mask=mpn)
            for i in range(Q):  # recompute this chunk's states
                t = c * Q + i
                x = tl.load(x_ptr + ((b * L + t) * H + h) * P + offs_p, mask=mp, other=0.0)
                dt = tl.load(dt_ptr + (b * L + t) * H + h)
                f = tl.load(f_ptr + b * L + t)
                Bv = tl.load(B_ptr + ((b * L + t) * G + g) * N + offs_n, mask=mn, other=0.0)
                state = tl.exp(dt * a_h) * (1.0 - f) * state + (dt * x)[:, None] * Bv[None, :]
                tl.store(scr + (i + 1) * P * N + pn, state, mask=mpn)
            tl.debug_barrier()
            for ii in range(Q):  # adjoint recurrence, newest step first
                i = Q - 1 - ii
                t = c * Q + i
                x = tl.load(x_ptr + ((b * L + t) * H + h) * P + offs_p, mask=mp, other=0.0)
                dt = tl.load(dt_ptr + (b * L + t) * H + h)
                f = tl.load(f_ptr + b * L + t)
                Bv = tl.load(B_ptr + ((b * L + t) * G + g) * N + offs_n, mask=mn, other=0.0)
                Cv = tl.load(C_ptr + ((b * L + t) * G + g) * N + offs_n, mask=mn, other=0.0)
                dy = tl.load(dy_ptr + ((b * L + t) * H + h) * P + offs_p, mask=mp, other=0.0)
                h_t = tl.load(scr + (i + 1) * P * N + pn, mask=mpn, other=0.0)
                h_prev = tl.load(scr + i * P * N + pn, mask=mpn, other=0.0)
                decay = tl.exp(dt * a_h) * (1.0 - f)
                dh = dh + dy[:, None] * Cv[None, :]  # total gradient of h_t
                sc = ((pid_p * BSZ + b) * L + t) * H + h  # (NPB, B, L, H) layout of the partial sums
                part = sc * N + offs_n
                tl.store(dC_ptr + part, tl.sum(h_t * dy[:, None], axis=0), mask=mn)
                tl.store(dB_ptr + part, dt * tl.sum(dh * x[:, None], axis=0), mask=mn)
                tl.store(dx_ptr + ((b * L + t) * H + h) * P + offs_p, dt * tl.sum(dh * Bv[None, :], axis=1), mask=mp)
                du = tl.sum(tl.sum(dh * x[:, None] * Bv[None, :], axis=1), axis=0)
                gdec = tl.sum(tl.sum(dh * h_prev, axis=1), axis=0) * decay
                tl.store(ddt_ptr + sc, du + gdec * a_h)
                tl.store(gA_ptr + sc, gdec * dt)
                dh = dh * decay
            tl.debug_barrier()
        tl.store(dh0_ptr + (b * H + h) * P * N + pn, dh, mask=mpn)

    return triton, fwd_kernel, bwd_kernel


def _launch_cfg(P: int, N: int):
    import triton

    block_p = min(triton.next_power_of_2(P), 32)
    block_n = triton.next_power_of_2(N)
    return block_p, block_n, triton.cdiv(P, block_p)


class _SSDTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, f, h0, chunk_size):
        from ssmrl.kernels.backend import triton_interpret

        _, fwd, _ = _kernels(triton_interpret())
        bsz, L, H, P = x.shape
        G, N = B.shape[-2:]
        Q = chunk_size  # L is a multiple of Q (padded by the caller)
        nc = L // Q
        block_p, block_n, npb = _launch_cfg(P, N)
        y = torch.empty_like(x)
        ck = torch.empty(bsz, H, nc, P, N, device=x.device, dtype=x.dtype)
        hT = torch.empty(bsz, H, P, N, device=x.device, dtype=x.dtype)
        with launch_guard(x):  # Triton launches on the current device
            fwd[(bsz * H, npb)](x, dt, A, B, C, f, h0, y, ck, hT, L, H, G, P, N, nc, H // G,
                                Q=Q, BLOCK_P=block_p, BLOCK_N=block_n)
        ctx.save_for_backward(x, dt, A, B, C, f, ck)
        ctx.Q = Q
        return y, hT

    @staticmethod
    def backward(ctx, dy, dhT):
        from ssmrl.kernels.backend import triton_interpret

        _, _, bwd = _kernels(triton_interpret())
        x, dt, A, B, C, f, ck = ctx.saved_tensors
        Q = ctx.Q
        bsz, L, H, P = x.shape
        G, N = B.shape[-2:]
        nc = ck.shape[2]
        block_p, block_n, npb = _launch_cfg(P, N)
        dy = torch.zeros_like(x) if dy is None else dy.contiguous()
        dhT = torch.zeros(bsz, H, P, N, device=x.device, dtype=x.dtype) if dhT is None else dhT.contiguous()
        scr = torch.empty(bsz, H, Q + 1, P, N, device=x.device, dtype=x.dtype)
        dx = torch.empty_like(x)
        dBh = torch.zeros(npb, bsz, L, H, N, device=x.device, dtype=x.dtype)
        dCh = torch.zeros_like(dBh)
        ddt = torch.zeros(npb, bsz, L, H, device=x.device, dtype=x.dtype)
        gA = torch.zeros_like(ddt)
        dh0 = torch.empty(bsz, H, P, N, device=x.device, dtype=x.dtype)
        with launch_guard(x):  # Triton launches on the current device
            bwd[(bsz * H, npb)](x, dt, A, B, C, f, ck, dy, dhT, scr, dx, dBh, dCh, ddt, gA, dh0,
                                bsz, L, H, G, P, N, nc, H // G, Q=Q, BLOCK_P=block_p, BLOCK_N=block_n)
        rep = H // G
        dB = dBh.sum(0).reshape(bsz, L, G, rep, N).sum(3)
        dC = dCh.sum(0).reshape(bsz, L, G, rep, N).sum(3)
        return dx, ddt.sum(0), gA.sum((0, 1, 2)), dB, dC, None, dh0, None


def ssd_scan_triton(x, dt, A, B, C, D, first, h0, chunk_size: int):
    """Same contract as `ssd_scan` (inputs already validated, float32); returns (y, final_state)."""
    if x.dtype != torch.float32:
        raise TypeError(f'backend="triton" computes in float32; got x of dtype {x.dtype} '
                        '(use backend="torch" for float64)')
    bsz, L, H, P = x.shape
    N = B.shape[-1]
    f = first.to(x.dtype) if first is not None else torch.zeros(bsz, L, device=x.device, dtype=x.dtype)
    h0_ = h0 if h0 is not None else torch.zeros(bsz, H, P, N, device=x.device, dtype=x.dtype)
    Q = max(1, min(chunk_size, L))
    pad = (-L) % Q
    if pad:  # dt = x = first = 0 on the padding: decay 1 and no input, so the kernels need no time masks
        pad_t = torch.nn.functional.pad
        x, B, C = (pad_t(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = pad_t(dt, (0, 0, 0, pad))
        f = pad_t(f, (0, pad))
    y, hT = _SSDTriton.apply(
        x.contiguous(), dt.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), f.contiguous(),
        h0_.contiguous(), Q,
    )
    y, x = y[:, :L], x[:, :L]
    if D is not None:
        y = y + (D[:, None] if D.dim() == 1 else D) * x
    return y, hT
