"""Prediction heads: symlog two-hot reward (DreamerV3: 255 bins on [-20, 20] in symlog space) and a
Bernoulli continuation head (trained with BCE on ``1 - is_terminal``)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssmrl.distributions import twohot_encode

from .networks import MLP, symexp, symlog


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
        target = twohot_encode(symlog(reward.float()), self.bins)
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
