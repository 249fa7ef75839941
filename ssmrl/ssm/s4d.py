"""S4D: a diagonal complex state space model per channel (Gu et al. 2022), resettable via ``diag_scan``.

    h_t = exp(dt A) (1 - first_t) h_{t-1} + (exp(dt A) - 1) / A * u_t          (ZOH, B fixed to 1)
    y_t = 2 Re(sum_n C_n h_t[n]) + D u_t                                          (conjugate symmetry)

Each of the ``d_model`` channels has ``d_state // 2`` complex modes (the other half are the conjugates).
The FFT-convolution mode of S4D cannot express mid-sequence resets, so the scan is used for training too.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ssmrl.kernels.diag import diag_scan, diag_scan_step
from ssmrl.ssm.init import log_uniform, s4d_inv, s4d_lin, zoh

__all__ = ["S4D"]


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


class S4D(nn.Module):
    """Diagonal complex SSM, (B, L, d_model) -> (B, L, d_model). State: complex (B, d_model, d_state // 2).

    Args:
        d_model: channels H.  d_state: state size N (even; N/2 complex modes are kept).
        init: "lin" (A_n = -1/2 + i pi n) or "inv" (A_n = -1/2 + i N/pi (N/(2n+1) - 1)).
        dt_min, dt_max: log-uniform range of the per-channel step.
        backend: kernel backend passed to ``diag_scan``.  generator: seeds the initialisation.
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
    ):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        if init not in ("lin", "inv"):
            raise ValueError(f'init must be "lin" or "inv", got {init!r}')
        self.d_model, self.d_state, self.n_modes, self.backend = d_model, d_state, d_state // 2, backend
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
        with torch.autocast(device_type=x.device.type, enabled=False):
            dA, dB, C, D = self._discrete()
            u = x.to(D.dtype)
            b = u.unsqueeze(-1) * dB  # (B, L, H, N/2) complex
            h, state = diag_scan(dA.expand_as(b), b, first, state, backend=self.backend)
            y = 2 * torch.einsum("blhn,hn->blh", h, C).real + u * D
        return y.to(x.dtype), state

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
