"""S4D: a diagonal complex state space model per channel (Gu et al. 2022), resettable via ``diag_scan``.

    h_t = exp(dt A) (1 - first_t) h_{t-1} + (exp(dt A) - 1) / A * u_t          (ZOH, B fixed to 1)
    y_t = 2 Re(sum_n C_n h_t[n]) + D u_t                                          (conjugate symmetry)

Each of the ``d_model`` channels has ``d_state // 2`` complex modes (the other half are the conjugates).
The FFT-convolution mode of S4D cannot express mid-sequence resets. Two exact resettable modes exist instead:

- ``"scan"``: materialise the complex state h (B, L, H, N/2) with ``diag_scan``.
- ``"chunked"``: S4D is time-invariant, so inside chunks of T steps the output is a causal Toeplitz convolution
  with the kernel K_l = 2 Re sum_n C_n B~_n a_n^l (l < T) whose entries across a reset are masked out, plus the
  contribution of the state carried into the chunk (zero from the chunk's first reset on). Only the chunk-final
  states (B, L/T, H, N/2) are materialised, linked by a short loop over the L/T chunks. All of it is real
  batched matmuls that autograd differentiates; ~20x faster than "scan" fwd+bwd on CPU (scripts/bench_s4d.py).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ssmrl.kernels.diag import check_first, diag_scan, diag_scan_step, expect_shape
from ssmrl.ssm.init import log_uniform, s4d_inv, s4d_lin, zoh

__all__ = ["S4D", "S4D_MODES"]

S4D_MODES = ("scan", "chunked")
# chunked mode: up to this many reset segments in a chunk, the masked Toeplitz product is one matmul per segment
_MAX_SEGMENT_MATMULS = 4


def _reads_segments(u: Tensor) -> bool:
    """Whether the chunked path may read the segment count back to the host (CPU tensors only)."""
    return not u.is_cuda


def ssm_dtypes(param: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(real, complex) dtypes for SSM math: at least float32/complex64 (float64 stays float64)."""
    real = torch.promote_types(param.dtype, torch.float32)
    return real, (torch.complex128 if real == torch.float64 else torch.complex64)


def check_input(name: str, x: Tensor, d_model: int, step: bool) -> None:
    want = "(B, d_model)" if step else "(B, L, d_model)"
    if x.dim() != (2 if step else 3) or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape {want} with d_model={d_model}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")


class _PermuteContiguous(torch.autograd.Function):
    """``x.permute(dims).contiguous()`` whose backward also returns a contiguous gradient: ``bmm`` on CPU is
    several times slower on a permuted (non-unit-stride) gradient than on a contiguous one."""

    @staticmethod
    def forward(ctx, x: Tensor, dims: tuple[int, ...]) -> Tensor:
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return x.permute(dims).contiguous()

    @staticmethod
    def backward(ctx, g: Tensor):
        return g.permute(ctx.inverse).contiguous(), None


class S4D(nn.Module):
    """Diagonal complex SSM, (B, L, d_model) -> (B, L, d_model). State: complex (B, d_model, d_state // 2).

    Args:
        d_model: channels H.  d_state: state size N (even; N/2 complex modes are kept).
        init: "lin" (A_n = -1/2 + i pi n) or "inv" (A_n = -1/2 + i N/pi (N/(2n+1) - 1)).
        dt_min, dt_max: log-uniform range of the per-channel step.
        backend: kernel backend passed to ``diag_scan`` (mode "scan").  generator: seeds the initialisation.
        mode: "chunked" (masked Toeplitz chunks, the fast default on CPU) or "scan" (per-step state scan);
            both are exact with resets.
        chunk_len: T, the chunk length of the "chunked" mode (a last partial chunk is handled separately).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        init: str = "lin",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        backend: str | None = None,
        generator: torch.Generator | None = None,
        mode: str = "chunked",
        chunk_len: int = 16,
    ):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        if init not in ("lin", "inv"):
            raise ValueError(f'init must be "lin" or "inv", got {init!r}')
        if mode not in S4D_MODES:
            raise ValueError(f"mode must be one of {S4D_MODES}, got {mode!r}")
        if not isinstance(chunk_len, int) or chunk_len < 1:
            raise ValueError(f"chunk_len must be an int >= 1, got {chunk_len!r}")
        self.d_model, self.d_state, self.n_modes, self.backend = d_model, d_state, d_state // 2, backend
        self.mode, self.chunk_len = mode, chunk_len
        A = s4d_lin(self.n_modes) if init == "lin" else s4d_inv(self.n_modes, d_state)
        A = A.expand(d_model, -1)
        # A = -exp(A_log_re) + i A_im keeps Re(A) < 0 (stable) whatever the optimiser does
        self.A_log_re = nn.Parameter(torch.log(-A.real).float().contiguous())
        self.A_im = nn.Parameter(A.imag.float().contiguous())
        self.log_dt = nn.Parameter(torch.log(log_uniform((d_model,), dt_min, dt_max, generator)).float())
        # C ~ CN(0, 1) (real and imaginary parts each with variance 1/2), stored as a real (H, N/2, 2) view
        C = torch.randn(d_model, self.n_modes, 2, generator=generator) * math.sqrt(0.5)
        self.C = nn.Parameter(C)
        self.D = nn.Parameter(torch.randn(d_model, generator=generator))

    def no_weight_decay(self) -> set[str]:
        return {"A_log_re", "A_im", "log_dt"}

    def initial_state(self, batch_size: int, device=None) -> Tensor:
        _, cdt = ssm_dtypes(self.log_dt)
        return torch.zeros(batch_size, self.d_model, self.n_modes, dtype=cdt, device=device or self.log_dt.device)

    def _discrete(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        real, _ = ssm_dtypes(self.log_dt)
        A = torch.complex(-torch.exp(self.A_log_re.to(real)), self.A_im.to(real))
        dA, dB = zoh(A, torch.exp(self.log_dt.to(real)).unsqueeze(-1))
        return dA, dB, torch.view_as_complex(self.C.to(real)), self.D.to(real)

    def forward(self, x: Tensor, first: Tensor | None = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, L, H); first: bool (B, L); state: complex (B, H, N/2) -> y (B, L, H), state."""
        check_input("x", x, self.d_model, step=False)
        if self.mode == "scan":
            return self._forward_scan(x, first, state)
        B, L, _ = x.shape
        if L < 1:
            raise ValueError(f"x must have shape (B, L, d_model) with L >= 1, got {tuple(x.shape)}")
        check_first(first, B, L)
        if state is not None:
            expect_shape("state", state, (B, self.d_model, self.n_modes), "(B, d_model, d_state // 2)")
            if state.dtype != ssm_dtypes(self.log_dt)[1]:
                raise TypeError(f"state must have dtype {ssm_dtypes(self.log_dt)[1]}, got {state.dtype}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtA, dB, C, D = self._continuous_step()
            u = x.to(D.dtype)
            T = min(self.chunk_len, L)
            L_full = L - L % T
            y, state = self._chunks(u[:, :L_full], None if first is None else first[:, :L_full], state, T,
                                    dtA, dB, C)
            if L_full < L:  # the last partial chunk is one chunk of its own length
                y_rest, state = self._chunks(u[:, L_full:], None if first is None else first[:, L_full:], state,
                                             L - L_full, dtA, dB, C)
                y = torch.cat([y, y_rest], 1)
            y = y + u * D
        return y.to(x.dtype), state

    def _forward_scan(self, x: Tensor, first: Tensor | None, state: Tensor | None) -> tuple[Tensor, Tensor]:
        with torch.autocast(device_type=x.device.type, enabled=False):
            dA, dB, C, D = self._discrete()
            u = x.to(D.dtype)
            b = u.unsqueeze(-1) * dB  # (B, L, H, N/2) complex
            h, state = diag_scan(dA.expand_as(b), b, first, state, backend=self.backend)
            y = 2 * torch.einsum("blhn,hn->blh", h, C).real + u * D
        return y.to(x.dtype), state

    def _continuous_step(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(dt A, B~ = (exp(dt A) - 1) / A, C, D): (H, N/2) complex x3 and (H,) real."""
        real, _ = ssm_dtypes(self.log_dt)
        A = torch.complex(-torch.exp(self.A_log_re.to(real)), self.A_im.to(real))
        dtA = torch.exp(self.log_dt.to(real)).unsqueeze(-1) * A
        dB = (torch.exp(dtA) - 1) / A
        return dtA, dB, torch.view_as_complex(self.C.to(real)), self.D.to(real)

    def _chunks(self, u: Tensor, first: Tensor | None, h0: Tensor | None, T: int, dtA: Tensor, dB: Tensor,
                C: Tensor) -> tuple[Tensor, Tensor]:
        """Chunked output without the D term. u: (B, L, H) real with L % T == 0; first: bool (B, L) | None;
        h0: complex (B, H, N/2) | None -> y (B, L, H), final state (B, H, N/2).

        Works channel-major, (H, B * L / T, T), so that every contraction is one batched matmul over H.
        Complex (H, ..., N/2) quantities are stored as real (H, ..., N) with (Re, Im) interleaved.
        """
        B, L, H = u.shape
        nc, n2 = L // T, self.n_modes
        BC, real = B * nc, u.dtype
        # a^l = exp(l dt A) for l = 0..T, via real exp/cos/sin (complex exp is slow on CPU)
        lr = dtA.real.unsqueeze(1) * torch.arange(T + 1, dtype=real, device=u.device)[:, None]  # (H, T+1, N/2)
        li = dtA.imag.unsqueeze(1) * torch.arange(T + 1, dtype=real, device=u.device)[:, None]
        mag = torch.exp(lr)
        pw = torch.complex(mag * torch.cos(li), mag * torch.sin(li))
        # intra-chunk Toeplitz kernel W[h, s, t] = K_{t-s} (t >= s), K_l = 2 Re sum_n C_n B~_n a_n^l
        K = 2 * (pw[:, :T] * (C * dB).unsqueeze(1)).real.sum(-1)  # (H, T)
        lag = torch.arange(T, device=u.device)
        lag = lag[None, :] - lag[:, None]  # [s, t] -> t - s
        Wt = K[:, lag.clamp(min=0)] * (lag >= 0).to(real)  # (H, T_s, T_t)
        # chunk-final state sum_s B~ a^{T-1-s} u_s and state read-out 2 Re(C a^{t+1} h) as real matrices
        Q = torch.view_as_real(dB.unsqueeze(1) * pw[:, :T].flip(1)).reshape(H, T, 2 * n2)  # (H, T_s, N)
        P = C.unsqueeze(1) * pw[:, 1:]  # (H, T, N/2); Re(P h) = Re P Re h - Im P Im h
        Pt = (2 * torch.stack([P.real, -P.imag], -1)).reshape(H, T, 2 * n2).transpose(1, 2)  # (H, N, T)
        uh = _PermuteContiguous.apply(u, (2, 0, 1)).reshape(H, BC, T)
        if first is None:
            y = torch.bmm(uh, Wt)
            ue, reset, keep0 = uh, None, None
        else:
            seg = first.reshape(BC, T).cumsum(-1)  # resets so far inside each chunk
            # the cheapest form depends on the number of segments, which only the host can branch on: read it
            # back on the CPU (free there); on a GPU take the general form rather than sync every layer
            n_seg = int(seg[:, -1].max()) + 1 if _reads_segments(u) else T + 1
            # the mask "no reset in (s, t]" is applied with exact zeros, so gradients across a reset are exactly 0
            if n_seg == 1:
                y = torch.bmm(uh, Wt)
            elif n_seg <= _MAX_SEGMENT_MATMULS:
                # mask = sum_k [seg_s = k][seg_t = k]: one matmul per segment index k
                e = (seg == torch.arange(n_seg, device=u.device)[:, None, None]).to(real)  # (S, BC, T)
                y = torch.bmm((uh.unsqueeze(1) * e).reshape(H, n_seg * BC, T), Wt)
                y = (y.reshape(H, n_seg, BC, T) * e).sum(1)
            else:  # many resets in some chunk: mask a per-chunk copy of the kernel, (H, BC, T, T)
                same = (seg.unsqueeze(-1) == seg.unsqueeze(-2)).to(real)  # (BC, T_s, T_t)
                y = torch.matmul(uh.unsqueeze(-2), Wt.unsqueeze(1) * same).squeeze(-2)
            ue = uh * (seg == seg[:, -1:]).to(real)  # only inputs after the chunk's last reset reach its end
            reset = seg[:, -1].reshape(B, nc) > 0
            keep0 = (seg == 0).to(real)  # the carried state is gone from the chunk's first reset on
        loc = torch.view_as_complex(torch.bmm(ue, Q).reshape(H, B, nc, n2, 2))  # (H, B, nc, N/2)
        if nc == 1 and h0 is None:
            return _PermuteContiguous.apply(y.reshape(H, B, L), (1, 2, 0)), loc[:, :, 0].transpose(0, 1).contiguous()
        # link the chunks: h_end[c] = a^T (1 - reset_c) h_end[c-1] + loc[c]; a short loop over L/T chunks
        aT = pw[:, T].unsqueeze(1)  # (H, 1, N/2)
        keep = None if reset is None else (~reset).to(real).unsqueeze(-1)  # (B, nc, 1)
        h = torch.zeros_like(loc[:, :, 0]) if h0 is None else h0.transpose(0, 1)  # (H, B, N/2)
        h_in = [h]
        # unbind, not indexing: the backward of each index op would build a zero tensor of loc's full size
        for c, loc_c in enumerate(loc.unbind(2)):
            h = (aT * h if keep is None else aT * h * keep[:, c]) + loc_c
            if c < nc - 1:
                h_in.append(h)
        h_in = torch.view_as_real(torch.stack(h_in, 2)).reshape(H, BC, 2 * n2)
        ys = torch.bmm(h_in, Pt)  # (H, BC, T)
        if keep0 is not None:
            ys = ys * keep0
        return _PermuteContiguous.apply((y + ys).reshape(H, B, L), (1, 2, 0)), h.transpose(0, 1).contiguous()

    def step(self, x_t: Tensor, first_t: Tensor | None, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """x_t: (B, H); first_t: bool (B,); state: complex (B, H, N/2) -> y_t (B, H), state."""
        check_input("x_t", x_t, self.d_model, step=True)
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            dA, dB, C, D = self._discrete()
            u = x_t.to(D.dtype)
            b = u.unsqueeze(-1) * dB
            h, state = diag_scan_step(dA.expand_as(b), b, first_t, state)
            y = 2 * torch.einsum("bhn,hn->bh", h, C).real + u * D
        return y.to(x_t.dtype), state
