"""S5: a MIMO diagonal state space model (Smith et al. 2023), resettable via ``diag_scan``.

    x_t = exp(Lambda step) (1 - first_t) x_{t-1} + (exp(Lambda step) - 1) / Lambda * (B~ u_t)      (ZOH)
    y_t = 2 Re(C~ x_t) + D u_t                                                         (conjugate symmetry)

HiPPO-N initialisation: Lambda and V from the normal part of HiPPO-LegS (real parts -1/2), B~ = V^H B,
C~ = C V (V unitary, so V^-1 = V^H), keeping the d_state/2 modes with positive imaginary part.
With resets the scan is the plain diagonal scan with Lambda_bar_t replaced by Lambda_bar (1 - first_t)
(Lu et al. 2023).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ssmrl.kernels.diag import diag_scan, diag_scan_step
from ssmrl.ssm.init import hippo_normal, log_uniform, zoh
from ssmrl.ssm.s4d import check_input, ssm_dtypes

__all__ = ["S5"]


class S5(nn.Module):
    """MIMO diagonal SSM, (B, L, d_model) -> (B, L, d_model). State: complex (B, d_state // 2).

    Args:
        d_model: input/output size H.  d_state: P (even); P/2 complex modes are kept.
        dt_min, dt_max: log-uniform range of the per-mode step.
        max_real: Re(Lambda) is clipped to at most this (negative) value for stability.
        backend: kernel backend passed to ``diag_scan``.  generator: seeds the initialisation.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        max_real: float = -1e-4,
        backend: str | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        self.d_model, self.d_state, self.n_modes = d_model, d_state, d_state // 2
        self.max_real, self.backend = max_real, backend
        Lam, V = hippo_normal(d_state)
        keep = torch.argsort(Lam.imag, descending=True)[: self.n_modes]  # one of each conjugate pair
        Lam, V = Lam[keep], V[:, keep]  # (P/2,), (P, P/2)
        B = torch.randn(d_state, d_model, dtype=torch.float64, generator=generator) / math.sqrt(d_model)
        Cr = torch.randn(d_model, d_state, 2, dtype=torch.float64, generator=generator) * math.sqrt(0.5 / d_state)
        B_t = V.conj().T @ B.to(torch.complex128)  # (P/2, H)
        C_t = torch.view_as_complex(Cr) @ V  # (H, P/2)
        self.Lambda_re = nn.Parameter(Lam.real.float())
        self.Lambda_im = nn.Parameter(Lam.imag.float())
        self.B = nn.Parameter(torch.view_as_real(B_t).float())  # (P/2, H, 2)
        self.C = nn.Parameter(torch.view_as_real(C_t).float())  # (H, P/2, 2)
        self.D = nn.Parameter(torch.randn(d_model, generator=generator))
        self.log_step = nn.Parameter(torch.log(log_uniform((self.n_modes,), dt_min, dt_max, generator)).float())

    def no_weight_decay(self) -> set[str]:
        return {"Lambda_re", "Lambda_im", "B", "log_step"}

    def initial_state(self, batch_size: int, device=None) -> Tensor:
        _, cdt = ssm_dtypes(self.Lambda_re)
        return torch.zeros(batch_size, self.n_modes, dtype=cdt, device=device or self.Lambda_re.device)

    def _discrete(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        real, _ = ssm_dtypes(self.Lambda_re)
        Lam = torch.complex(self.Lambda_re.to(real).clamp(max=self.max_real), self.Lambda_im.to(real))
        B = torch.view_as_complex(self.B.to(real))
        dA, dB = zoh(Lam, torch.exp(self.log_step.to(real)), B.T)  # dB: (H, P/2) = B_bar^T
        return dA, dB, torch.view_as_complex(self.C.to(real)), self.D.to(real)

    def forward(self, x: Tensor, first: Tensor | None = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, L, H); first: bool (B, L); state: complex (B, P/2) -> y (B, L, H), state."""
        check_input("x", x, self.d_model, step=False)
        with torch.autocast(device_type=x.device.type, enabled=False):
            dA, dBT, C, D = self._discrete()
            u = x.to(D.dtype)
            b = torch.matmul(u.to(dBT.dtype), dBT)  # (B, L, P/2)
            h, state = diag_scan(dA.expand_as(b), b, first, state, backend=self.backend)
            y = 2 * torch.matmul(h, C.T).real + u * D
        return y.to(x.dtype), state

    def step(self, x_t: Tensor, first_t: Tensor | None, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """x_t: (B, H); first_t: bool (B,); state: complex (B, P/2) -> y_t (B, H), state."""
        check_input("x_t", x_t, self.d_model, step=True)
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            dA, dBT, C, D = self._discrete()
            u = x_t.to(D.dtype)
            b = torch.matmul(u.to(dBT.dtype), dBT)
            h, state = diag_scan_step(dA.expand_as(b), b, first_t, state)
            y = 2 * torch.matmul(h, C.T).real + u * D
        return y.to(x_t.dtype), state
