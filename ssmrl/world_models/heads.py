"""Prediction heads: symlog two-hot reward (DreamerV3: 255 bins on [-20, 20] in symlog space) and a
Bernoulli continuation head (trained with BCE on ``1 - is_terminal``)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .networks import MLP, symexp, symlog


def twohot(y: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot encoding of ``y`` (...,) on the sorted ``bins`` (K,): (..., K), weights on the two nearest bins
    that sum to 1 and reproduce ``y`` as their weighted mean (``y`` is clipped to the bin range)."""
    y = y.float().clamp(bins[0], bins[-1])
    k = bins.numel()
    above = torch.searchsorted(bins, y.contiguous(), right=True).clamp(1, k - 1)  # bins[above-1] <= y < bins[above]
    below = above - 1
    lo, hi = bins[below], bins[above]
    w_hi = ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros(*y.shape, k, device=y.device, dtype=torch.float32)
    out.scatter_(-1, below.unsqueeze(-1), (1.0 - w_hi).unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


class RewardHead(nn.Module):
    """features (..., in_dim) -> logits (..., bins) over symlog-spaced bins; zero-initialised output so that
    the initial prediction is exactly 0."""

    def __init__(self, in_dim: int, hidden: int, layers: int, bins: int = 255, low: float = -20.0,
                 high: float = 20.0) -> None:
        super().__init__()
        if bins < 2 or not low < high:
            raise ValueError(f"reward head needs bins >= 2 and low < high, got bins={bins}, [{low}, {high}]")
        self.net = MLP(in_dim, hidden, layers, out_dim=bins, zero_out=True)
        self.register_buffer("bins", torch.linspace(low, high, bins), persistent=False)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted reward (...,) = symexp(E[bin])."""
        return symexp((torch.softmax(logits.float(), -1) * self.bins).sum(-1))

    def loss(self, logits: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the two-hot of symlog(reward): (...,)."""
        target = twohot(symlog(reward.float()), self.bins)
        return -(target * torch.log_softmax(logits.float(), -1)).sum(-1)


class ContinueHead(nn.Module):
    """features (..., in_dim) -> logit (...,) of continuing (not terminal)."""

    def __init__(self, in_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = MLP(in_dim, hidden, layers, out_dim=1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat).squeeze(-1)

    @staticmethod
    def prob(logit: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logit.float())

    @staticmethod
    def loss(logit: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """BCE against ``cont`` in {0, 1}: (...,)."""
        return F.binary_cross_entropy_with_logits(logit.float(), cont.float(), reduction="none")
