"""Behaviour cloning baseline: an MLP ``state -> action`` trained on the same windows (every step counts)."""
from __future__ import annotations

import torch
import torch.nn as nn

from agents.offline.config import ModelConfig


class BC(nn.Module):
    """``forward(batch) -> {"action" (B, K, A)}`` from ``batch["states"] (B, K, O)`` only."""

    kind = "bc"

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        d = cfg.d_model
        layers: list[nn.Module] = []
        inp = obs_dim
        for _ in range(max(1, cfg.n_layers)):
            layers += [nn.Linear(inp, d), nn.ReLU(), nn.Dropout(cfg.dropout)]
            inp = d
        layers += [nn.Linear(inp, act_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"action": self.net(batch["states"])}

    def loss(self, batch: dict[str, torch.Tensor], action_target: torch.Tensor | None = None):
        target = batch["actions"] if action_target is None else action_target
        a_loss = (self(batch)["action"] - target).pow(2).mean()
        return a_loss, {"action_loss": a_loss.item()}

    def begin(self, batch_size: int, device=None) -> None:
        return None

    def act(self, cache, rtg: torch.Tensor, state: torch.Tensor, timestep: torch.Tensor, first: torch.Tensor):
        return self.net(state), cache

    def record_action(self, cache, action: torch.Tensor, timestep: torch.Tensor):
        return cache
