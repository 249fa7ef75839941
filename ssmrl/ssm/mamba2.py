"""Mamba-2 layer (SSD with heads and groups, gated RMSNorm) with episode resets and a step mode."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ssmrl.kernels.conv import causal_conv1d, causal_conv1d_step
from ssmrl.kernels.ssd import ssd_scan, ssd_scan_step

__all__ = ["Mamba2", "Mamba2State"]


class Mamba2State(NamedTuple):
    """conv: (B, conv_dim, d_conv - 1) last inputs of the causal conv; ssm: (B, H, P, N) SSD state (float32)."""

    conv: torch.Tensor
    ssm: torch.Tensor


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) * weight, normalised per group of `group_size` channels (mamba-ssm's
    norm_before_gate=False), in float32."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        if d % group_size != 0:
            raise ValueError(f"d={d} must be divisible by group_size={group_size}")
        self.group_size = group_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        cd = torch.promote_types(y.dtype, torch.float32)
        g = y.to(cd) * F.silu(z.to(cd))
        w = self.weight.to(cd)
        if self.group_size == g.shape[-1]:  # one group: a single fused rms_norm
            return F.rms_norm(g, (self.group_size,), w, self.eps)
        shape = g.shape
        g = F.rms_norm(g.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size), (self.group_size,),
                       eps=self.eps)
        return g.reshape(shape) * w


class Mamba2(nn.Module):
    """Mamba-2 block: in-projection to (z, x, B, C, dt); causal conv + SiLU over (x, B, C); SSD scan with
    A = -exp(A_log) per head, dt = softplus(dt + dt_bias), skip D; gated RMSNorm with silu(z); out-projection.

    Args:
        d_model: input/output width.
        d_state: N, state size per head channel.
        d_conv: causal conv width.
        expand: d_inner = expand * d_model.
        headdim: P; nheads H = d_inner / headdim.
        ngroups: G groups sharing B and C (H divisible by G).
        chunk_size: SSD chunk length (Drama uses 256).
        dt_min, dt_max, dt_init_floor: range of the initial dt (log-uniform), as in mamba-ssm.
        A_init_range: A_log initialised as log U(A_init_range).
        bias: bias of the in/out projections; conv_bias: bias of the conv.
        backend: kernel backend for the scan (None picks the fastest).
        generator: optional torch.Generator for the parameter initialisation.

    Shapes: forward x (B, L, d_model), first bool (B, L); step x_t (B, d_model), first_t bool (B,).
    State: `Mamba2State(conv (B, conv_dim, d_conv-1), ssm (B, H, headdim, d_state))`.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = 64,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        bias: bool = False,
        conv_bias: bool = True,
        norm_eps: float = 1e-5,
        backend: str | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim != 0:
            raise ValueError(f"expand * d_model = {d_inner} must be divisible by headdim={headdim}")
        nheads = d_inner // headdim
        if nheads % ngroups != 0:
            raise ValueError(f"nheads={nheads} must be divisible by ngroups={ngroups}")
        if d_conv < 1:
            raise ValueError(f"d_conv must be >= 1, got {d_conv}")
        if not (0 < dt_min <= dt_max):
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner, self.headdim, self.nheads, self.ngroups = d_inner, headdim, nheads, ngroups
        self.chunk_size = chunk_size
        self.backend = backend
        self.conv_dim = d_inner + 2 * ngroups * d_state

        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=bias)
        self.conv_weight = nn.Parameter(torch.empty(self.conv_dim, d_conv))
        self.conv_bias = nn.Parameter(torch.empty(self.conv_dim)) if conv_bias else None
        self.dt_bias = nn.Parameter(torch.empty(nheads))
        self.A_log = nn.Parameter(torch.empty(nheads))
        self.D = nn.Parameter(torch.ones(nheads))
        self.norm = GatedRMSNorm(d_inner, group_size=d_inner // ngroups, eps=norm_eps)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self._init(dt_min, dt_max, dt_init_floor, A_init_range, generator)

    @torch.no_grad()
    def _init(self, dt_min, dt_max, dt_floor, A_range, gen):
        def uniform(t, lo, hi):
            t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

        for lin in (self.in_proj, self.out_proj):
            bound = 1.0 / math.sqrt(lin.in_features)  # nn.Linear's default range, but seeded
            uniform(lin.weight, -bound, bound)
            if lin.bias is not None:
                lin.bias.zero_()
        cb = 1.0 / math.sqrt(self.d_conv)  # nn.Conv1d's default range for a depthwise conv
        uniform(self.conv_weight, -cb, cb)
        if self.conv_bias is not None:
            uniform(self.conv_bias, -cb, cb)
        # dt log-uniform in [dt_min, dt_max]; dt_bias = softplus^{-1}(dt)
        lo, hi = math.log(dt_min), math.log(dt_max)
        dt = torch.exp(torch.rand(self.nheads, generator=gen) * (hi - lo) + lo)
        dt = dt.clamp(min=dt_floor)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.rand(self.nheads, generator=gen) * (A_range[1] - A_range[0]) + A_range[0]
        self.A_log.copy_(torch.log(A))

    def no_weight_decay(self) -> set[str]:
        return {"A_log", "dt_bias", "D"}

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Mamba2State:
        device = self.A_log.device if device is None else device
        return Mamba2State(
            conv=torch.zeros(batch_size, self.conv_dim, self.d_conv - 1, device=device),
            ssm=torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device),
        )

    # ------------------------------------------------------------------------------------------
    def _split(self, zxbcdt: torch.Tensor):
        d, g = self.d_inner, self.ngroups * self.d_state
        z, xBC, dt = torch.split(zxbcdt, [d, d + 2 * g, self.nheads], dim=-1)
        return z, xBC, dt

    def _ssm_params(self, cd: torch.dtype):
        A = -torch.exp(self.A_log.to(cd))
        conv_b = self.conv_bias.to(cd) if self.conv_bias is not None else None
        return A, self.conv_weight.to(cd), conv_b, self.D.to(cd)

    def _check_state(self, state, batch: int) -> Mamba2State | None:
        if state is None:
            return None
        if not (isinstance(state, tuple) and len(state) == 2):
            raise TypeError(f"state must be a Mamba2State(conv, ssm), got {type(state).__name__}")
        conv, ssm = state
        want_conv = (batch, self.conv_dim, self.d_conv - 1)
        want_ssm = (batch, self.nheads, self.headdim, self.d_state)
        if tuple(conv.shape) != want_conv:
            raise ValueError(f"state.conv must have shape (B, conv_dim, d_conv-1) = {want_conv}, "
                             f"got {tuple(conv.shape)}")
        if tuple(ssm.shape) != want_ssm:
            raise ValueError(f"state.ssm must have shape (B, H, headdim, d_state) = {want_ssm}, got {tuple(ssm.shape)}")
        return Mamba2State(conv, ssm)

    def forward(
        self, x: torch.Tensor, first: torch.Tensor | None = None, state: Mamba2State | None = None
    ) -> tuple[torch.Tensor, Mamba2State]:
        """x: (B, L, d_model), first: bool (B, L), state: Mamba2State or None (zeros) -> (y (B, L, d_model), state)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, L, d_model) with d_model={self.d_model}, got {tuple(x.shape)}")
        bsz, L, _ = x.shape
        if first is not None and (first.dtype != torch.bool or tuple(first.shape) != (bsz, L)):
            raise ValueError(f"first must be a bool tensor of shape (B, L) = {(bsz, L)}, "
                             f"got {first.dtype} {tuple(first.shape)}")
        state = self._check_state(state, bsz)
        z, xBC, dt = self._split(self.in_proj(x))
        # SSM math in float32 even under autocast
        with torch.autocast(device_type=x.device.type, enabled=False):
            cd = torch.promote_types(x.dtype, torch.float32)
            A, conv_w, conv_b, D = self._ssm_params(cd)
            xBC, conv_state = causal_conv1d(
                xBC.to(cd), conv_w, conv_b, first=first, state=None if state is None else state.conv.to(cd),
                backend=self.backend,
            )
            xBC = F.silu(xBC)
            g = self.ngroups * self.d_state
            xs, B, C = torch.split(xBC, [self.d_inner, g, g], dim=-1)
            dt = F.softplus(dt.to(cd) + self.dt_bias.to(cd))
            y, ssm_state = ssd_scan(
                xs.reshape(bsz, L, self.nheads, self.headdim), dt, A,
                B.reshape(bsz, L, self.ngroups, self.d_state), C.reshape(bsz, L, self.ngroups, self.d_state),
                D=D, first=first, h0=None if state is None else state.ssm,
                chunk_size=self.chunk_size, backend=self.backend,
            )
            y = self.norm(y.reshape(bsz, L, self.d_inner), z)
        return self.out_proj(y.to(x.dtype)), Mamba2State(conv_state, ssm_state)

    def step(
        self, x_t: torch.Tensor, first_t: torch.Tensor | None, state: Mamba2State | None
    ) -> tuple[torch.Tensor, Mamba2State]:
        """x_t: (B, d_model), first_t: bool (B,) or None, state: Mamba2State (None = zeros)
        -> (y_t (B, d_model), state)."""
        if x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            raise ValueError(f"x_t must have shape (B, d_model) with d_model={self.d_model}, got {tuple(x_t.shape)}")
        bsz = x_t.shape[0]
        if first_t is not None and (first_t.dtype != torch.bool or tuple(first_t.shape) != (bsz,)):
            raise ValueError(f"first_t must be a bool tensor of shape (B,) = {(bsz,)}, "
                             f"got {first_t.dtype} {tuple(first_t.shape)}")
        state = self._check_state(state, bsz)
        if state is None:
            state = self.initial_state(bsz, device=x_t.device)
        z, xBC, dt = self._split(self.in_proj(x_t))
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            cd = torch.promote_types(x_t.dtype, torch.float32)
            A, conv_w, conv_b, D = self._ssm_params(cd)
            xBC, conv_state = causal_conv1d_step(xBC.to(cd), conv_w, conv_b, first_t, state.conv.to(cd))
            xBC = F.silu(xBC)
            g = self.ngroups * self.d_state
            xs, B, C = torch.split(xBC, [self.d_inner, g, g], dim=-1)
            dt = F.softplus(dt.to(cd) + self.dt_bias.to(cd))
            y, ssm_state = ssd_scan_step(
                xs.reshape(bsz, self.nheads, self.headdim), dt, A,
                B.reshape(bsz, self.ngroups, self.d_state), C.reshape(bsz, self.ngroups, self.d_state),
                D=D, first_t=first_t, state=state.ssm,
            )
            y = self.norm(y.reshape(bsz, self.d_inner), z)
        return self.out_proj(y.to(x_t.dtype)), Mamba2State(conv_state, ssm_state)
