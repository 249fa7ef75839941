"""Initialisations (HiPPO-LegS, HiPPO-N, S4D-Lin/Inv, log-uniform steps) and ZOH discretisation helpers.

Sources of the constants: HiPPO-LegS / HiPPO-N (Gu et al. 2020/2022; S5, Smith et al. 2023), S4D-Lin and
S4D-Inv (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State Space Models"),
Mamba's dt initialisation (Gu & Dao 2023).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "hippo_legs",
    "hippo_normal",
    "s4d_lin",
    "s4d_inv",
    "log_uniform",
    "zoh",
    "inverse_softplus",
    "mamba_dt_bias",
]


def hippo_legs(n: int) -> Tensor:
    """HiPPO-LegS matrix (n, n) float64: A_nk = -sqrt((2n+1)(2k+1)) for n > k, -(n+1) on the diagonal, 0 above."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    q = torch.sqrt(2 * torch.arange(n, dtype=torch.float64) + 1)
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1)
    return A - torch.diag(torch.arange(n, dtype=torch.float64) + 1)


def hippo_normal(n: int) -> tuple[Tensor, Tensor]:
    """Eigendecomposition of the normal part of HiPPO-LegS, S = A + P P^T with P_n = sqrt(n + 1/2).

    S = -I/2 + (skew-symmetric), so its eigenvalues are -1/2 + i w with real w. Returns
    ``(Lambda (n,) complex128, V (n, n) complex128)`` with S = V diag(Lambda) V^H and V unitary.
    """
    A = hippo_legs(n)
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    S = A + p[:, None] * p[None, :]
    skew = S + 0.5 * torch.eye(n, dtype=torch.float64)
    # skew is real skew-symmetric -> -i*skew is Hermitian: skew v = i w v
    w, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    Lam = torch.complex(torch.full_like(w, -0.5), w)
    return Lam, V


def s4d_lin(n_modes: int) -> Tensor:
    """S4D-Lin: A_n = -1/2 + i pi n for n = 0..n_modes-1 (complex128)."""
    n = torch.arange(n_modes, dtype=torch.float64)
    return torch.complex(torch.full_like(n, -0.5), math.pi * n)


def s4d_inv(n_modes: int, d_state: int | None = None) -> Tensor:
    """S4D-Inv: A_n = -1/2 + i (N/pi) (N/(2n+1) - 1), N = d_state (default 2 * n_modes), complex128."""
    N = 2 * n_modes if d_state is None else d_state
    n = torch.arange(n_modes, dtype=torch.float64)
    return torch.complex(torch.full_like(n, -0.5), (N / math.pi) * (N / (2 * n + 1) - 1))


def log_uniform(shape, lo: float, hi: float, generator: torch.Generator | None = None) -> Tensor:
    """Samples exp(U[log lo, log hi]) (float64)."""
    if not 0 < lo <= hi:
        raise ValueError(f"log_uniform needs 0 < lo <= hi, got lo={lo}, hi={hi}")
    u = torch.rand(shape, dtype=torch.float64, generator=generator)
    return torch.exp(u * (math.log(hi) - math.log(lo)) + math.log(lo))


def zoh(A: Tensor, dt: Tensor, B: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Zero-order hold for a diagonal A: returns (exp(dt A), (exp(dt A) - 1) / A * B) (B defaults to 1).

    A and dt broadcast against each other; B broadcasts against the result.
    """
    dA = torch.exp(dt * A)
    dB = (dA - 1) / A
    return dA, (dB if B is None else dB * B)


def inverse_softplus(x: Tensor) -> Tensor:
    """y with softplus(y) = x, for x > 0 (x + log(1 - exp(-x)))."""
    return x + torch.log(-torch.expm1(-x))


def mamba_dt_bias(
    d_inner: int,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    dt_init_floor: float = 1e-4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mamba's dt bias: inverse softplus of dt ~ log-uniform[dt_min, dt_max] (floored), float64 (d_inner,)."""
    dt = log_uniform((d_inner,), dt_min, dt_max, generator).clamp(min=dt_init_floor)
    return inverse_softplus(dt)
