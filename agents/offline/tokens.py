"""(RTG, state, action) token embedding shared by Decision Mamba and the Decision Transformer.

Each step t gives three tokens in the order R_t, s_t, a_t, each a linear embedding plus a learned timestep
embedding. The action at step t is read from the output at the s_t token (it has seen R_<=t, s_<=t, a_<t);
next-state / next-RTG auxiliary predictions are read at the a_t token.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class TokenEmbedding(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, d_model: int, max_timestep: int, dropout: float):
        super().__init__()
        self.rtg = nn.Linear(1, d_model)
        self.state = nn.Linear(obs_dim, d_model)
        self.action = nn.Linear(act_dim, d_model)
        self.timestep = nn.Embedding(max_timestep, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.max_timestep = max_timestep

    def _finish(self, tok: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(tok))

    def _time(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.timestep(timesteps.clamp(0, self.max_timestep - 1))

    def forward(self, rtg: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``rtg (B, K, 1), states (B, K, O), actions (B, K, A), timesteps (B, K), first (B, K)`` ->
        tokens ``(B, 3K, D)`` interleaved R, s, a and token-level ``first (B, 3K)`` (True at R_t of a first step)."""
        b, k = states.shape[:2]
        te = self._time(timesteps)
        tok = torch.stack([self.rtg(rtg) + te, self.state(states) + te, self.action(actions) + te], dim=2)
        tok_first = torch.stack([first, torch.zeros_like(first), torch.zeros_like(first)], dim=2)
        return self._finish(tok.reshape(b, 3 * k, -1)), tok_first.reshape(b, 3 * k)

    def rtg_token(self, rtg: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """One R_t token ``(B, D)`` from ``rtg (B, 1)``, ``timestep (B,)``."""
        return self._finish(self.rtg(rtg) + self._time(timestep))

    def state_token(self, state: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self._finish(self.state(state) + self._time(timestep))

    def action_token(self, action: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self._finish(self.action(action) + self._time(timestep))


def split_tokens(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3K, D)`` -> outputs at the R, s and a tokens, each ``(B, K, D)``."""
    b, l, d = h.shape
    h = h.reshape(b, l // 3, 3, d)
    return h[:, :, 0], h[:, :, 1], h[:, :, 2]
