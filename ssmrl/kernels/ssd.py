"""Mamba-2 SSD scan with episode resets: reference loop, chunked torch backend, Triton dispatch.

Recurrence (per batch b, head h, with group g = h // (H / G)):

    h_t = exp(dt_t A) (1 - first_t) h_{t-1} + dt_t x_t B_t^T      h_t: (P, N)
    y_t = h_t C_t + D x_t

`first_t` zeroes the carried state before step t consumes its input, which equals mamba-ssm's
``seq_idx = cumsum(first)`` with the initial state applying only to tokens before the first reset.
"""
from __future__ import annotations

import torch

from ssmrl.kernels.backend import interpreter_warning, resolve_backend

__all__ = ["ssd_scan", "ssd_scan_step"]

CPU_MAX_CHUNK = 16  # the torch backend splits longer chunks on CPU (see ssd_scan)


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _need_float(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")


def _need_shape(name: str, t: torch.Tensor, shape: tuple, desc: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {desc} = {tuple(shape)}, got {tuple(t.shape)}")


def _check_inputs(x, dt, A, B, C, D, first, h0, step: bool):
    """Validate shapes/dtypes; returns (batch, L or None, H, P, G, N)."""
    _need_float("x", x)
    if step:
        if x.dim() != 3:
            raise ValueError(f"x must have shape (B, H, P), got {tuple(x.shape)}")
        bsz, H, P = x.shape
        L = None
        lead, lead_desc = (bsz,), "(B"
    else:
        if x.dim() != 4:
            raise ValueError(f"x must have shape (B, L, H, P), got {tuple(x.shape)}")
        bsz, L, H, P = x.shape
        lead, lead_desc = (bsz, L), "(B, L"
    _need_float("dt", dt)
    _need_shape("dt", dt, lead + (H,), lead_desc + ", H)")
    _need_float("A", A)
    _need_shape("A", A, (H,), "(H,)")
    _need_float("B", B)
    if B.dim() != len(lead) + 2 or tuple(B.shape[: len(lead)]) != lead:
        raise ValueError(f"B must have shape {lead_desc}, G, N) with leading dims {lead}, got {tuple(B.shape)}")
    G, N = B.shape[-2:]
    if G < 1 or H % G != 0:
        raise ValueError(f"B's group count G={G} must divide the number of heads H={H} (x's shape {tuple(x.shape)})")
    _need_float("C", C)
    _need_shape("C", C, lead + (G, N), lead_desc + ", G, N)")
    if D is not None:
        _need_float("D", D)
        if tuple(D.shape) not in ((H,), (H, P)):
            raise ValueError(f"D must have shape (H,) = ({H},) or (H, P) = ({H}, {P}), got {tuple(D.shape)}")
    if first is not None:
        if not isinstance(first, torch.Tensor):
            raise TypeError(f"first must be a bool torch.Tensor, got {type(first).__name__}")
        if first.dtype != torch.bool:
            raise TypeError(f"first must be a bool tensor, got dtype {first.dtype}")
        _need_shape("first" if not step else "first_t", first, lead, lead_desc + ")")
    if h0 is not None:
        name = "state" if step else "h0"
        _need_float(name, h0)
        _need_shape(name, h0, (bsz, H, P, N), "(B, H, P, N)")
    return bsz, L, H, P, G, N


def _compute_dtype(*ts: torch.Tensor | None) -> torch.dtype:
    """float64 if any input is float64, else float32 (SSM math never runs in half precision)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in ts) else torch.float32


def _d_term(D: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """D x for D (H,) or (H, P) and x (..., H, P)."""
    return (D[:, None] if D.dim() == 1 else D) * x


# ----------------------------------------------------------------------------------------------
# reference: plain sequential loop (the oracle)
# ----------------------------------------------------------------------------------------------
def _ssd_reference(x, dt, A, B, C, D, first, h0):
    bsz, L, H, P = x.shape
    G, N = B.shape[-2:]
    rep = H // G
    h = h0 if h0 is not None else x.new_zeros(bsz, H, P, N)
    Bh = B.repeat_interleave(rep, dim=2)  # (B, L, H, N)
    Ch = C.repeat_interleave(rep, dim=2)
    firsts = first.unbind(1) if first is not None else [None] * L
    ys = []
    # unbind + stack: indexing x[:, t] under autograd is orders of magnitude slower in backward
    for x_t, dt_t, B_t, C_t, f_t in zip(x.unbind(1), dt.unbind(1), Bh.unbind(1), Ch.unbind(1), firsts):
        decay = torch.exp(dt_t * A)  # (B, H)
        if f_t is not None:
            decay = torch.where(f_t[:, None], torch.zeros_like(decay), decay)
        h = decay[:, :, None, None] * h + (dt_t[:, :, None] * x_t)[..., None] * B_t[:, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C_t))
    y = torch.stack(ys, 1) if ys else x.new_zeros(x.shape)
    if D is not None:
        y = y + _d_term(D, x)
    return y, h


# ----------------------------------------------------------------------------------------------
# torch: chunked SSD (intra-chunk quadratic form + inter-chunk state passing)
# ----------------------------------------------------------------------------------------------
def _ssd_chunked(x, dt, A, B, C, D, first, h0, chunk_size: int):
    bsz, L, H, P = x.shape
    G, N = B.shape[-2:]
    rep = H // G
    Q = max(1, min(chunk_size, L))
    pad = (-L) % Q
    if pad:
        # dt = 0 and x = 0 on padding: decay exp(0) = 1 and no input, so the final state is unchanged
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad))
        dt = torch.nn.functional.pad(dt, (0, 0, 0, pad))
        B = torch.nn.functional.pad(B, (0, 0, 0, 0, 0, pad))
        C = torch.nn.functional.pad(C, (0, 0, 0, 0, 0, pad))
        if first is not None:
            first = torch.nn.functional.pad(first, (0, pad), value=False)
    Lp = L + pad
    nc = Lp // Q

    xq = x.reshape(bsz, nc, Q, G, rep, P)
    dtq = dt.reshape(bsz, nc, Q, G, rep)
    Bq = B.reshape(bsz, nc, Q, G, N)
    Cq = C.reshape(bsz, nc, Q, G, N)
    a = (dtq * A.reshape(G, rep)).permute(0, 1, 3, 4, 2)  # log-decays (b, c, G, rep, Q)

    idx = torch.arange(Q, device=x.device)
    causal = idx[:, None] >= idx[None, :]  # (Q_i, Q_j), j <= i
    # seg[i, j] = sum_{k in (j, i]} a_k, summed from its own terms so that every entry depends only
    # on the decays between j and i (stable, and gradients across a reset are exactly zero)
    strict = idx[:, None] > idx[None, :]
    seg = torch.cumsum(a[..., :, None].expand(*a.shape, Q).masked_fill(~strict, 0.0), dim=-2)
    cs = torch.cumsum(a, dim=-1)  # sum_{k <= i} a_k: decay from the chunk's incoming state to step i
    if first is not None:
        R = torch.cumsum(first.reshape(bsz, nc, Q).to(torch.int32), dim=-1)  # resets seen so far in chunk
        valid = causal & (R[..., :, None] == R[..., None, :])  # no reset in (j, i]
        valid = valid[:, :, None, None]  # (b, c, 1, 1, Q, Q)
        carry_ok = (R == 0)[:, :, None, None, :]  # no reset in [0, i]
    else:
        valid = causal
        carry_ok = None
    neg_inf = float("-inf")
    Lmat = torch.exp(seg.masked_fill(~valid, neg_inf))  # (b, c, G, rep, Q, Q)
    carry = torch.exp(cs.masked_fill(~carry_ok, neg_inf) if carry_ok is not None else cs)  # (b, c, G, rep, Q)

    xdt = xq * dtq[..., None]  # (b, c, Q, G, rep, P)
    # intra-chunk: y_i = sum_j Lmat[i, j] (C_i . B_j) dt_j x_j
    CB = torch.einsum("bcign,bcjgn->bcgij", Cq, Bq)  # (b, c, G, Q, Q)
    M = Lmat * CB[:, :, :, None]  # (b, c, G, rep, Q, Q)
    y = torch.einsum("bcgrij,bcjgrp->bcigrp", M, xdt)

    # state each chunk adds by its end: sum_j Lmat[Q-1, j] dt_j x_j B_j^T
    U = torch.einsum("bcjgrp,bcjgn->bcgrpn", xdt * Lmat[..., Q - 1, :].permute(0, 1, 4, 2, 3)[..., None], Bq)
    total = carry[..., Q - 1, None, None]  # (b, c, G, rep, 1, 1): whole-chunk decay, 0 if it holds a reset
    h = h0.reshape(bsz, G, rep, P, N) if h0 is not None else x.new_zeros(bsz, G, rep, P, N)
    h_in = []
    for tot_c, U_c in zip(total.unbind(1), U.unbind(1)):
        h_in.append(h)
        h = torch.addcmul(U_c, tot_c, h)
    Hin = torch.stack(h_in, 1)  # (b, c, G, rep, P, N): state entering each chunk
    y = y + torch.einsum("bcgrpn,bcign->bcigrp", Hin, Cq) * carry.permute(0, 1, 4, 2, 3)[..., None]

    y = y.reshape(bsz, Lp, H, P)[:, :L]
    if D is not None:
        y = y + _d_term(D, x[:, :L])
    return y, h.reshape(bsz, H, P, N)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    first: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    chunk_size: int = 64,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resettable Mamba-2 SSD scan.

    Args:
        x: (B, L, H, P) inputs per head.
        dt: (B, L, H) positive step sizes (softplus already applied).
        A: (H,) negative reals (continuous-time decay per head).
        B, C: (B, L, G, N) input/output projections, H divisible by G (heads share their group's B, C).
        D: optional (H,) or (H, P) skip connection.
        first: optional bool (B, L); True zeroes the state before step t consumes its input.
        h0: optional (B, H, P, N) initial state (only reaches tokens before the first reset).
        chunk_size: chunk length of the torch/triton backends; on CPU the torch backend uses at most
            CPU_MAX_CHUNK (16), which was fastest there (the intra-chunk quadratic form costs O(L * chunk)).
        backend: None | "reference" | "torch" | "triton" (None -> "torch", on CPU and CUDA alike).

    Returns:
        y: (B, L, H, P) in x's dtype, final_state: (B, H, P, N) in float32 (float64 for float64 inputs).
    """
    _check_inputs(x, dt, A, B, C, D, first, h0, step=False)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    # None means the chunked torch form on every device: the Triton SSD kernel is a sequential
    # per-(batch, head) recurrence, verified only in the interpreter, and is run on request only
    backend = resolve_backend(backend, x, dt, A, B, C) if backend is not None else "torch"
    out_dtype = x.dtype
    cd = _compute_dtype(x, dt, A, B, C, D, h0)
    x, dt, A, B, C = (t.to(cd) for t in (x, dt, A, B, C))
    D = D.to(cd) if D is not None else None
    h0 = h0.to(cd) if h0 is not None else None
    if x.shape[1] == 0:  # empty sequence: nothing to scan, the state passes through
        bsz, _, H, P = x.shape
        h = h0 if h0 is not None else x.new_zeros(bsz, H, P, B.shape[-1])
        return x.to(out_dtype), h
    if backend == "reference":
        y, h = _ssd_reference(x, dt, A, B, C, D, first, h0)
    elif backend == "torch":
        # on CPU the O(L * chunk) intra-chunk part dominates: 16 measured fastest on the 2-core dev box
        # (results are the same for any chunk length, up to rounding)
        q = chunk_size if x.is_cuda else min(chunk_size, CPU_MAX_CHUNK)
        y, h = _ssd_chunked(x, dt, A, B, C, D, first, h0, q)
    else:  # only on request (see above), so a failure raises
        from ssmrl.kernels.triton_ssd import ssd_scan_triton

        interpreter_warning(x)
        y, h = ssd_scan_triton(x, dt, A, B, C, D, first, h0, chunk_size)
    return y.to(out_dtype), h


def ssd_scan_step(
    x_t: torch.Tensor,
    dt_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None = None,
    first_t: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of `ssd_scan`: x_t (B, H, P), dt_t (B, H), A (H,), B_t, C_t (B, G, N), first_t bool (B,),
    state (B, H, P, N) (None = zeros). Returns y_t (B, H, P) in x_t's dtype and the new state."""
    bsz, _, H, P, G, N = _check_inputs(x_t, dt_t, A, B_t, C_t, D, first_t, state, step=True)
    out_dtype = x_t.dtype
    cd = _compute_dtype(x_t, dt_t, A, B_t, C_t, D, state)
    x_t, dt_t, A, B_t, C_t = (t.to(cd) for t in (x_t, dt_t, A, B_t, C_t))
    rep = H // G
    h = state.to(cd) if state is not None else x_t.new_zeros(bsz, H, P, N)
    decay = torch.exp(dt_t * A)
    if first_t is not None:
        decay = torch.where(first_t[:, None], torch.zeros_like(decay), decay)
    # the state is the big tensor in step mode (B*H*P*N): touch it as few times as possible,
    # h' = decay * h (one pass, new tensor), h' += (dt x) B^T in place (batched rank-1 update), y = h' C
    xdt = (dt_t[:, :, None] * x_t).reshape(bsz * H, P, 1)
    Bh = B_t.repeat_interleave(rep, dim=1).reshape(bsz * H, 1, N)
    Ch = C_t.repeat_interleave(rep, dim=1).reshape(bsz * H, N, 1)
    h = (decay[:, :, None, None] * h).reshape(bsz * H, P, N)
    h = h.baddbmm_(xdt, Bh)  # in place on a fresh tensor: mul's backward does not need its output
    y = torch.bmm(h, Ch).reshape(bsz, H, P)
    h = h.reshape(bsz, H, P, N)
    if D is not None:
        y = y + _d_term(D.to(cd), x_t)
    return y.to(out_dtype), h
