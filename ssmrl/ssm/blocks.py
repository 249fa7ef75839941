"""Norms and residual blocks that stack SSM layers (pre-norm residual, optional MLP).

Any layer with the SSM layer interface fits:
    forward(x, first=None, state=None) -> (y, state)    x: (B, L, d_model)
    step(x_t, first_t, state) -> (y_t, state)           x_t: (B, d_model), first_t: (B,)
    initial_state(batch_size, device=None) -> state
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["RMSNorm", "SSMBlock", "SSMStack", "make_norm"]


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim, in at least float32 (returned in x's dtype)."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cd = torch.promote_types(x.dtype, torch.float32)  # at least float32, float64 stays float64
        return torch.nn.functional.rms_norm(x.to(cd), (x.shape[-1],), self.weight.to(cd), self.eps).to(x.dtype)


def make_norm(kind: str, d: int, eps: float = 1e-5) -> nn.Module:
    """`"rms"` -> RMSNorm, `"layer"` -> nn.LayerNorm."""
    if kind == "rms":
        return RMSNorm(d, eps)
    if kind == "layer":
        return nn.LayerNorm(d, eps=eps)
    raise ValueError(f'norm must be "rms" or "layer", got {kind!r}')


def _check_x(name: str, x: torch.Tensor, dims: int, d_model: int, desc: str) -> None:
    if x.dim() != dims or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape {desc} with d_model={d_model}, got {tuple(x.shape)}")


class SSMBlock(nn.Module):
    """Pre-norm residual block: h = x + layer(norm(x)); then h + MLP(norm2(h)) when mlp_ratio > 0.

    Args:
        layer: SSM layer (S4D, S5, Mamba, Mamba2, ...) mapping d_model -> d_model.
        d_model: width.
        mlp_ratio: hidden width of the GELU MLP as a multiple of d_model; 0 disables it (mamba-ssm's
            Mamba-2 default, as in Drama).
        norm: "rms" | "layer".
        dropout: dropout on both residual branches.
    """

    def __init__(
        self,
        layer: nn.Module,
        d_model: int,
        mlp_ratio: float = 0.0,
        norm: str = "rms",
        dropout: float = 0.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be >= 0, got {mlp_ratio}")
        self.d_model = d_model
        self.layer = layer
        self.norm = make_norm(norm, d_model, eps)
        self.drop = nn.Dropout(dropout)
        if mlp_ratio > 0:
            hidden = max(1, int(round(mlp_ratio * d_model)))
            self.norm2 = make_norm(norm, d_model, eps)
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        else:
            self.norm2 = None
            self.mlp = None

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        if self.mlp is None:
            return h
        return h + self.drop(self.mlp(self.norm2(h)))

    def forward(self, x: torch.Tensor, first: torch.Tensor | None = None, state: Any = None):
        """x: (B, L, d_model), first: bool (B, L) -> (y (B, L, d_model), state)."""
        _check_x("x", x, 3, self.d_model, "(B, L, d_model)")
        y, state = self.layer(self.norm(x), first=first, state=state)
        return self._mlp(x + self.drop(y)), state

    def step(self, x_t: torch.Tensor, first_t: torch.Tensor | None, state: Any):
        """x_t: (B, d_model), first_t: bool (B,) -> (y_t (B, d_model), state)."""
        _check_x("x_t", x_t, 2, self.d_model, "(B, d_model)")
        y, state = self.layer.step(self.norm(x_t), first_t, state)
        return self._mlp(x_t + self.drop(y)), state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        return self.layer.initial_state(batch_size, device=device)


class SSMStack(nn.Module):
    """N blocks applied in order, carrying a list of per-block states; optional final norm.

    Args:
        blocks: the blocks (each with forward/step/initial_state and a `d_model` attribute when
            `final_norm` is set).
        final_norm: None | "rms" | "layer" applied to the last block's output.
    """

    def __init__(self, blocks: Sequence[nn.Module], final_norm: str | None = "rms", eps: float = 1e-5):
        super().__init__()
        if len(blocks) == 0:
            raise ValueError("blocks must hold at least one block")
        self.blocks = nn.ModuleList(blocks)
        self.norm = make_norm(final_norm, blocks[-1].d_model, eps) if final_norm is not None else nn.Identity()

    def _states(self, state: list | None) -> list:
        if state is None:
            return [None] * len(self.blocks)
        if not isinstance(state, (list, tuple)) or len(state) != len(self.blocks):
            n = len(state) if isinstance(state, (list, tuple)) else type(state).__name__
            raise ValueError(f"state must be a list of {len(self.blocks)} per-block states, got {n}")
        return list(state)

    def forward(self, x: torch.Tensor, first: torch.Tensor | None = None, state: list | None = None):
        """x: (B, L, d_model), first: bool (B, L), state: list per block (None = zeros) -> (y, states)."""
        new = []
        for block, s in zip(self.blocks, self._states(state)):
            x, s = block(x, first=first, state=s)
            new.append(s)
        return self.norm(x), new

    def step(self, x_t: torch.Tensor, first_t: torch.Tensor | None, state: list):
        """x_t: (B, d_model), first_t: bool (B,) -> (y_t, states)."""
        new = []
        for block, s in zip(self.blocks, self._states(state)):
            x_t, s = block.step(x_t, first_t, s)
            new.append(s)
        return self.norm(x_t), new

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> list:
        return [b.initial_state(batch_size, device=device) for b in self.blocks]
