"""Mamba-1 block (Gu & Dao 2023) with resets: in-projection to (x, z), resettable causal conv + SiLU,
x-projection to (dt, B, C), softplus dt, resettable selective scan with D skip and silu(z) gate,
out-projection. State = (conv_state (B, d_inner, d_conv-1), ssm_state (B, d_inner, d_state)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmrl.kernels.conv import causal_conv1d, causal_conv1d_step
from ssmrl.kernels.selective import selective_scan, selective_scan_step
from ssmrl.ssm.init import mamba_dt_bias
from ssmrl.ssm.s4d import check_input, ssm_dtypes

__all__ = ["Mamba"]


class Mamba(nn.Module):
    """(B, L, d_model) -> (B, L, d_model).

    Args:
        d_model: model width.  d_state: N.  d_conv: causal conv width.  expand: d_inner = expand * d_model.
        dt_rank: rank of the dt projection ("auto" = ceil(d_model / 16)).
        dt_min, dt_max, dt_init_floor, dt_scale: dt initialisation (dt log-uniform in [dt_min, dt_max]).
        bias: bias of the in/out projections.  conv_bias: bias of the conv.
        backend: kernel backend for conv and scan.  generator: seeds the SSM-specific initialisation
        (the nn.Linear layers use torch's default initialisation and global RNG).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        bias: bool = False,
        conv_bias: bool = True,
        backend: str | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if d_conv < 1:
            raise ValueError(f"d_conv must be >= 1, got {d_conv}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = backend
        di = self.d_inner
        self.in_proj = nn.Linear(d_model, 2 * di, bias=bias)
        bound = 1 / math.sqrt(d_conv)  # nn.Conv1d's default for a depthwise conv (fan_in = d_conv)
        self.conv_weight = nn.Parameter((torch.rand(di, d_conv, generator=generator) * 2 - 1) * bound)
        self.conv_bias = nn.Parameter((torch.rand(di, generator=generator) * 2 - 1) * bound) if conv_bias else None
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=True)
        std = self.dt_rank**-0.5 * dt_scale
        with torch.no_grad():
            self.dt_proj.weight.copy_((torch.rand(di, self.dt_rank, generator=generator) * 2 - 1) * std)
            self.dt_proj.bias.copy_(mamba_dt_bias(di, dt_min, dt_max, dt_init_floor, generator).float())
        # S4D-real initialisation A_n = -(n + 1), stored as log(-A)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d_model, bias=bias)

    def no_weight_decay(self) -> set[str]:
        return {"A_log", "D", "dt_proj.bias"}

    def initial_state(self, batch_size: int, device=None) -> tuple[Tensor, Tensor]:
        device = device or self.A_log.device
        real, _ = ssm_dtypes(self.A_log)
        conv = torch.zeros(batch_size, self.d_inner, self.d_conv - 1, dtype=self.conv_weight.dtype, device=device)
        return conv, torch.zeros(batch_size, self.d_inner, self.d_state, dtype=real, device=device)

    def _ssm_inputs(self, xc: Tensor, real: torch.dtype):
        """xc (..., d_inner) after conv+SiLU -> raw dt (the scan applies softplus), B, C in the SSM dtype (float32
        at least)."""
        dbc = self.x_proj(xc)
        dtr, Bm, Cm = torch.split(dbc, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        with torch.autocast(device_type=xc.device.type, enabled=False):
            dt = F.linear(dtr.to(real), self.dt_proj.weight.to(real), self.dt_proj.bias.to(real))
        return dt, Bm.to(real), Cm.to(real)

    def _in_projections(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (..., d_model) -> xs, z (..., d_inner), each contiguous: one product per half of ``in_proj``'s weight.
        (One product then ``chunk`` leaves strided halves that the kernels copy, and its backward concatenates.)"""
        w, b, di = self.in_proj.weight, self.in_proj.bias, self.d_inner
        return (F.linear(x, w[:di], None if b is None else b[:di]),
                F.linear(x, w[di:], None if b is None else b[di:]))

    @staticmethod
    def _split_state(state):
        if state is None:
            return None, None
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise TypeError("state must be a tuple (conv_state (B, d_inner, d_conv-1), ssm_state (B, d_inner, N))")
        return state

    def forward(self, x: Tensor, first: Tensor | None = None, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: (B, L, d_model); first: bool (B, L); state: (conv_state, ssm_state) or None -> y, state."""
        check_input("x", x, self.d_model, step=False)
        conv_state, ssm_state = self._split_state(state)
        real, _ = ssm_dtypes(self.A_log)
        xs, z = self._in_projections(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            w = self.conv_weight
            xc, conv_state = causal_conv1d(xs.to(w.dtype), w, self.conv_bias, first, conv_state, backend=self.backend)
            xc = F.silu(xc)
        dt, Bm, Cm = self._ssm_inputs(xc, real)
        with torch.autocast(device_type=x.device.type, enabled=False):
            A = -torch.exp(self.A_log.to(real))
            y, ssm_state = selective_scan(
                xc.to(real), dt, A, Bm, Cm, self.D.to(real), z.to(real), first, ssm_state, backend=self.backend,
                dt_softplus=True,
            )
        return self.out_proj(y.to(x.dtype)), (conv_state, ssm_state)

    def step(self, x_t: Tensor, first_t: Tensor | None, state) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x_t: (B, d_model); first_t: bool (B,); state: (conv_state, ssm_state) -> y_t (B, d_model), state."""
        check_input("x_t", x_t, self.d_model, step=True)
        conv_state, ssm_state = self._split_state(state)
        real, _ = ssm_dtypes(self.A_log)
        xs, z = self._in_projections(x_t)
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            w = self.conv_weight
            xc, conv_state = causal_conv1d_step(xs.to(w.dtype), w, self.conv_bias, first_t, conv_state)
            xc = F.silu(xc)
        dt, Bm, Cm = self._ssm_inputs(xc, real)
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            A = -torch.exp(self.A_log.to(real))
            y, ssm_state = selective_scan_step(
                xc.to(real), dt, A, Bm, Cm, self.D.to(real), z.to(real), first_t, ssm_state, dt_softplus=True
            )
        return self.out_proj(y.to(x_t.dtype)), (conv_state, ssm_state)
