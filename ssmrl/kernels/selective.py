"""Resettable Mamba-1 selective scan.

    h_t = exp(dt_t A) (1 - first_t) h_{t-1} + dt_t B_t x_t      h: (B, Dm, N)
    y_t = C_t h_t + D x_t,   times silu(z_t) when z is given

Backends:
- ``reference``: plain sequential loop (float64 capable; the test oracle).
- ``torch``: on the CPU in float32, the fused C kernel ``_selective_cpu.c`` (built by ``pip install``;
  optional): each batch row runs its sequence with its (N, Dm) state in L1, vectorised over channels, and the
  backward recomputes the row's states into a scratch buffer, so no (B, L, Dm, N) grid is ever stored. At
  Decision Mamba's default size (B 64, L 60, Dm 256, N 16, one thread) fwd+bwd of one scan took 0.27 s with the
  grid path and 0.03 s with the kernel (ad-hoc timings, docs/results.md). The kernel also takes raw dt
  (``dt_softplus``), D and z, so softplus, the skip and the gate cost no separate passes over (B, L, Dm); its exp
  is an inlined polynomial (1 ulp) that vectorises without a libmvec call (0.34 vs 0.44 ns per element in the
  forward's loop). Elsewhere (other dtypes, GPUs without Triton, no compiler), a
  custom autograd Function that discretises on the full grid (vectorised exp and outer products), runs the
  scan as an in-place ``unbind`` loop, and computes the backward (a reverse scan plus a few matmuls) by hand;
  it was 1.3-2.2x faster fwd+bwd (1 thread) than letting autograd compose the same ops around ``diag_scan``.
  A chunked formulation does not pay off: the decay differs per (channel, state), so chunking cannot turn
  the recurrence into matmuls as SSD does, it only adds passes over the grid.
- ``triton``: ``ssmrl.kernels.triton_selective`` (never materialises (B, L, Dm, N)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmrl.kernels.backend import interpreter_warning, resolve_backend, run_triton
from ssmrl.kernels.diag import check_first, expect_float, expect_shape, keep_mask

try:  # built from _selective_cpu.c by `pip install -e .`; optional
    from ssmrl.kernels import _selective_cpu
except ImportError:  # pragma: no cover - only without a C compiler
    _selective_cpu = None

__all__ = ["selective_scan", "selective_scan_step"]


def _validate(x, dt, A, B, C, D, z, first, h0) -> None:
    expect_float("x", x, complex_ok=False)
    if x.dim() != 3 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (B, L, Dm) with L >= 1, got {tuple(x.shape)}")
    Bsz, L, Dm = x.shape
    expect_shape("A", A, (Dm, None), "(Dm, N)")
    N = A.shape[1]
    for name, t, shape, desc in (
        ("dt", dt, (Bsz, L, Dm), "(B, L, Dm)"),
        ("B", B, (Bsz, L, N), "(B, L, N)"),
        ("C", C, (Bsz, L, N), "(B, L, N)"),
        ("D", D, (Dm,), "(Dm,)"),
        ("z", z, (Bsz, L, Dm), "(B, L, Dm)"),
        ("h0", h0, (Bsz, Dm, N), "(B, Dm, N)"),
    ):
        if t is None:
            continue
        expect_shape(name, t, shape, desc)
        if t.dtype != x.dtype:
            raise TypeError(f"{name} must have dtype {x.dtype} (the dtype of x), got {t.dtype}")
    if A.dtype != x.dtype:
        raise TypeError(f"A must have dtype {x.dtype} (the dtype of x), got {A.dtype}")
    check_first(first, Bsz, L)


def _finish(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    if D is not None:
        y = torch.addcmul(y, x, D)
    if z is not None:
        y = y * F.silu(z)
    return y


def _selective_reference(x, dt, A, B, C, first, h0) -> tuple[Tensor, Tensor]:
    Bsz, L, Dm = x.shape
    h = x.new_zeros(Bsz, Dm, A.shape[1]) if h0 is None else h0
    ys = []
    for t in range(L):
        dA = torch.exp(dt[:, t, :, None] * A)
        if first is not None:
            dA = dA * keep_mask(first[:, t], x, 2)
        h = dA * h + (dt[:, t] * x[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1), h


class _SelectiveFn(torch.autograd.Function):
    """Fused forward/backward on the (B, L, Dm, N) grid: fewer passes over it than autograd's composition.

    Forward: dA = exp(dt A) keep, h = scan(dA, dt x B) in place, y = h C.
    Backward: gh = reverse scan of gy C; with gexp = gh * h_{t-1} * dA (the gradient of the exponent dt A):
    dx = dt (gh B), ddt = x (gh B) + gexp A, dA = sum_{b,l} gexp dt, dB = gh^T (dt x), dC = h^T gy.
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C, keep, h0):
        dA = torch.mul(dt.unsqueeze(-1), A)
        dA.exp_()
        if keep is not None:
            dA.mul_(keep)
        u = dt * x
        h = torch.mul(u.unsqueeze(-1), B.unsqueeze(2))
        hs = h.unbind(1)
        prev = h0
        for at, ht in zip(dA.unbind(1), hs):  # in place: h_t = dA_t h_{t-1} + u_t B_t
            if prev is not None:
                ht.addcmul_(at, prev)
            prev = ht
        y = torch.matmul(h, C.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(x, dt, A, B, C, h0, dA, h)
        return y, h[:, -1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, ghL):
        x, dt, A, B, C, h0, dA, h = ctx.saved_tensors
        L = x.shape[1]
        gh = torch.mul(gy.unsqueeze(-1), C.unsqueeze(2))  # direct contribution of y_t = C_t h_t
        ghs, das = gh.unbind(1), dA.unbind(1)
        ghs[L - 1].add_(ghL)
        for t in range(L - 2, -1, -1):  # gh_t += dA_{t+1} gh_{t+1}
            ghs[t].addcmul_(das[t + 1], ghs[t + 1])
        # row-vector @ matrix is much faster than matrix^T @ vector or einsum here (measured on CPU)
        gC = torch.matmul(gy.unsqueeze(-2), h).squeeze(-2)  # (B, L, N)
        u = dt * x
        gu = torch.matmul(gh, B.unsqueeze(-1)).squeeze(-1)  # (B, L, Dm)
        gB = torch.matmul(u.unsqueeze(-2), gh).squeeze(-2)  # (B, L, N)
        gexp = torch.empty_like(gh)  # d loss / d(dt A) = gh_t * h_{t-1} * dA_t
        torch.mul(h[:, :-1], dA[:, 1:], out=gexp[:, 1:])
        if h0 is not None:
            torch.mul(h0, dA[:, 0], out=gexp[:, 0])
        else:
            gexp[:, 0].zero_()
        gexp.mul_(gh)
        gh0 = dA[:, 0] * gh[:, 0] if h0 is not None else None
        gdt = torch.addcmul((gexp * A).sum(-1), gu, x)
        gA = gexp.mul_(dt.unsqueeze(-1)).sum((0, 1))  # gexp is not needed any more
        return gu * dt, gdt, gA, gB, gC, None, gh0


def _buffer(t: Tensor | None):
    """A float32 CPU tensor as the C kernel's buffer (None stays None)."""
    return None if t is None else t.detach().contiguous().numpy()


class _SelectiveNativeFn(torch.autograd.Function):
    """The fused CPU kernel (``_selective_cpu.c``): the scan of :class:`_SelectiveFn` with the softplus of dt,
    the D skip and the silu(z) gate fused in; saves only the inputs. ``keep``: (B, L) float32, 0 where the state
    resets before step t, or None; ``softplus``: dt is raw (the kernel applies softplus)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, keep, h0, D, z, softplus):
        bsz, L, Dm = x.shape
        N = A.shape[1]
        x, dt, A, B, C = (t.detach().contiguous() for t in (x, dt, A, B, C))
        h0, D, z = (None if t is None else t.detach().contiguous() for t in (h0, D, z))
        y, hL = torch.empty_like(x), x.new_empty(bsz, Dm, N)
        _selective_cpu.forward(bsz, L, Dm, N, *map(_buffer, (x, dt, A, B, C, keep, h0, D, z)), softplus,
                               _buffer(y), _buffer(hL))
        ctx.save_for_backward(x, dt, A, B, C, keep, h0, D, z)
        ctx.softplus = softplus
        return y, hL

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, ghL):
        x, dt, A, B, C, keep, h0, D, z = ctx.saved_tensors
        bsz, L, Dm = x.shape
        N = A.shape[1]
        gx, gdt, gA, gB, gC = (torch.empty_like(t) for t in (x, dt, A, B, C))
        gh0, gD, gz = (None if t is None else torch.empty_like(t) for t in (h0, D, z))
        ghL = None if ghL is None else ghL.contiguous()
        _selective_cpu.backward(bsz, L, Dm, N, *map(_buffer, (x, dt, A, B, C, keep, h0, D, z)), ctx.softplus,
                                *map(_buffer, (gy.contiguous(), ghL, gx, gdt, gA, gB, gC, gh0, gD, gz)))
        return gx, gdt, gA, gB, gC, None, gh0, gD, gz, None


def _native_ok(*tensors: Tensor | None) -> bool:
    return _selective_cpu is not None and all(
        t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def _selective_torch(x, dt, A, B, C, first, h0) -> tuple[Tensor, Tensor]:
    """The torch backend's scan alone (dt positive, no D or gate): the grid-based autograd Function."""
    keep = None if first is None else keep_mask(first, x, 2)
    return _SelectiveFn.apply(x, dt, A, B, C, keep, h0)


def selective_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    first: Tensor | None = None,
    h0: Tensor | None = None,
    backend: str | None = None,
    dt_softplus: bool = False,
) -> tuple[Tensor, Tensor]:
    """Resettable Mamba-1 selective scan.

    Args:
        x, dt: (B, L, Dm); dt positive, or raw with ``dt_softplus`` (the scan applies softplus, as mamba-ssm's
            ``delta_softplus``; fused into the CPU kernel).
        A: (Dm, N) (negative real for a stable SSM).  B, C: (B, L, N).  D: (Dm,).  z: (B, L, Dm) gate.
        first: bool (B, L), True where step t starts an episode.  h0: (B, Dm, N) initial state or None.
    Returns:
        y: (B, L, Dm) and the final state h_L: (B, Dm, N).
    """
    _validate(x, dt, A, B, C, D, z, first, h0)
    explicit = backend == "triton"
    backend = resolve_backend(backend, x, dt, A, B, C)
    if backend == "torch" and _native_ok(x, dt, A, B, C, D, z, h0):
        keep = None if first is None else (~first.bool()).to(torch.float32).contiguous()
        return _SelectiveNativeFn.apply(x, dt, A, B, C, keep, h0, D, z, dt_softplus)
    if dt_softplus:
        dt = F.softplus(dt)
    if backend == "reference":
        y, hL = _selective_reference(x, dt, A, B, C, first, h0)
    elif backend == "torch":
        y, hL = _selective_torch(x, dt, A, B, C, first, h0)
    else:
        from ssmrl.kernels.triton_selective import selective_scan_triton

        interpreter_warning(x)
        y, hL = run_triton("selective_scan", (x.dtype, x.shape[2], A.shape[1]), explicit,
                           lambda: selective_scan_triton(x, dt, A, B, C, first, h0),
                           lambda: _selective_torch(x, dt, A, B, C, first, h0))
    return _finish(y, x, D, z), hL


def selective_scan_step(
    x_t: Tensor,
    dt_t: Tensor,
    A: Tensor,
    B_t: Tensor,
    C_t: Tensor,
    D: Tensor | None = None,
    z_t: Tensor | None = None,
    first_t: Tensor | None = None,
    state: Tensor | None = None,
    backend: str | None = None,
    dt_softplus: bool = False,
) -> tuple[Tensor, Tensor]:
    """One token of :func:`selective_scan`: x_t, dt_t, z_t (B, Dm); B_t, C_t (B, N); first_t bool (B,);
    state (B, Dm, N) -> (y_t (B, Dm), state). Shared torch math for every backend (a few small ops)."""
    expect_float("x_t", x_t, complex_ok=False)
    if x_t.dim() != 2:
        raise ValueError(f"x_t must have shape (B, Dm), got {tuple(x_t.shape)}")
    Bsz, Dm = x_t.shape
    expect_shape("A", A, (Dm, None), "(Dm, N)")
    N = A.shape[1]
    for name, t, shape, desc in (
        ("dt_t", dt_t, (Bsz, Dm), "(B, Dm)"),
        ("B_t", B_t, (Bsz, N), "(B, N)"),
        ("C_t", C_t, (Bsz, N), "(B, N)"),
        ("D", D, (Dm,), "(Dm,)"),
        ("z_t", z_t, (Bsz, Dm), "(B, Dm)"),
        ("state", state, (Bsz, Dm, N), "(B, Dm, N)"),
    ):
        if t is None:
            continue
        expect_shape(name, t, shape, desc)
        if t.dtype != x_t.dtype:
            raise TypeError(f"{name} must have dtype {x_t.dtype} (the dtype of x_t), got {t.dtype}")
    check_first(first_t, Bsz, None)
    resolve_backend(backend, x_t)
    if dt_softplus:
        dt_t = F.softplus(dt_t)
    h = (dt_t * x_t).unsqueeze(-1) * B_t.unsqueeze(1)
    if state is not None:
        dA = torch.exp(dt_t.unsqueeze(-1) * A)
        if first_t is not None:
            dA = dA * keep_mask(first_t, x_t, 2)
        h = dA * state + h
    y = torch.matmul(h, C_t.unsqueeze(-1)).squeeze(-1)
    return _finish(y, x_t, D, z_t), h
