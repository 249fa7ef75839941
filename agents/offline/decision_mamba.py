"""Decision Mamba (Lv et al., NeurIPS 2024) with resettable SSMs, a recurrent acting cache and PSER.

Per layer (pre-norm residual):
    h = LN(x)
    coarse = Mamba(h)   over the whole token stream, state reset where an episode begins (``first``)
    fine   = SSM(h)     over each step's (R_t, s_t, a_t) triplet in order: state reset at every R_t token
    g = sigmoid(W_g h)  one gate shared by both branches
    x = x + Dropout(g * coarse + (1 - g) * fine)

No feed-forward MLP follows the mixer: the public code's block is a Mamba block (norm, mixers, residual), and
Mamba's gated in/out projections take the MLP's place. (An earlier version added a 4x GELU MLP per layer; it cost
a quarter of an update and is not in the reference.)

The fine branch runs the SSM itself over the three tokens of a step (reset at each R token) instead of the
public code's tiling of features, so the s_t output never sees a_t. No padding tokens exist: windows that
cross an episode start reset all states there. Heads: action (at s_t, tanh), next state and next RTG (at a_t).

Acting (``acting``): "window" (default) re-runs the last K steps from a fresh state at every env step, as the
model was trained (K-step windows from a zero state) and as the reference code acts; "recurrent" steps the layers
token by token (3 ``step`` calls per env step) and carries the state over the whole episode.

Loss: ``action_coef`` MSE(action) + ``aux_state_coef`` L(next state) + ``aux_rtg_coef`` L(next RTG) with L =
SmoothL1 (the public code's 0.9 / 0.05 / 0.05) or MSE.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.offline.acting import SlidingWindowActing
from agents.offline.config import ACTING_MODES, ModelConfig
from agents.offline.tokens import TokenEmbedding, split_tokens


def make_ssm(kind: str, d_model: int, cfg: ModelConfig) -> nn.Module:
    """An SSM layer with the ``forward(x, first, state)`` / ``step`` / ``initial_state`` contract."""
    if kind == "mamba":
        from ssmrl.ssm.mamba import Mamba

        return Mamba(d_model, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand)
    if kind == "s4d":
        from ssmrl.ssm.s4d import S4D

        return S4D(d_model, d_state=cfg.d_state)
    if kind == "s5":
        from ssmrl.ssm.s5 import S5

        return S5(d_model, d_state=cfg.d_state)
    raise ValueError(f"fine_ssm must be 'mamba', 's4d' or 's5', got {kind!r}")


class DMLayer(nn.Module):
    """One Decision Mamba layer. Sequence: ``x (B, L, D)``, ``first (B, L)``, ``triplet_first (B, L)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.norm = nn.LayerNorm(d)
        self.coarse = make_ssm("mamba", d, cfg)
        self.fine = make_ssm(cfg.fine_ssm, d, cfg)
        self.gate = nn.Linear(d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def _mix(self, x, h, coarse, fine):
        g = torch.sigmoid(self.gate(h))
        return x + self.drop(torch.lerp(fine, coarse, g))  # g * coarse + (1 - g) * fine

    def forward(self, x: torch.Tensor, first: torch.Tensor, triplet_first: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        coarse, _ = self.coarse(h, first=first)
        fine, _ = self.fine(h, first=triplet_first)
        return self._mix(x, h, coarse, fine)

    def initial_state(self, batch: int, device=None) -> tuple[Any, Any]:
        return self.coarse.initial_state(batch, device=device), self.fine.initial_state(batch, device=device)

    def step(self, x_t: torch.Tensor, first_t: torch.Tensor, triplet_first_t: torch.Tensor, state):
        """``x_t (B, D)``, ``first_t, triplet_first_t (B,)`` bool -> ``(y_t (B, D), state)``."""
        cs, fs = state
        h = self.norm(x_t)
        coarse, cs = self.coarse.step(h, first_t, cs)
        fine, fs = self.fine.step(h, triplet_first_t, fs)
        return self._mix(x_t, h, coarse, fine), (cs, fs)


class DecisionMamba(SlidingWindowActing, nn.Module):
    """``forward(batch) -> {"action" (B, K, A), "next_state" (B, K, O), "next_rtg" (B, K, 1)}``.

    ``batch`` holds ``rtg (B, K, 1), states (B, K, O), actions (B, K, A), timesteps (B, K), first (B, K)``
    (see ``agents/offline/data.py``).
    """

    kind = "dm"

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig | None = None, context: int = 20,
                 acting: str = "window"):
        super().__init__()
        if acting not in ACTING_MODES:
            raise ValueError(f"acting must be one of {ACTING_MODES}, got {acting!r}")
        self.cfg = cfg = cfg or ModelConfig()
        self.obs_dim, self.act_dim, self.context, self.acting = obs_dim, act_dim, context, acting
        self.embed = TokenEmbedding(obs_dim, act_dim, cfg.d_model, cfg.max_timestep, cfg.dropout)
        self.layers = nn.ModuleList(DMLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.action_head = nn.Sequential(nn.Linear(cfg.d_model, act_dim), nn.Tanh())
        self.state_head = nn.Linear(cfg.d_model, obs_dim)
        self.rtg_head = nn.Linear(cfg.d_model, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, first = self.embed(batch["rtg"], batch["states"], batch["actions"], batch["timesteps"], batch["first"])
        triplet_first = torch.zeros_like(first)
        triplet_first[:, 0::3] = True
        for layer in self.layers:
            x = layer(x, first, triplet_first)
        _, hs, ha = split_tokens(self.norm(x))
        return {"action": self.action_head(hs), "next_state": self.state_head(ha), "next_rtg": self.rtg_head(ha)}

    # ---- acting -----------------------------------------------------------------------------------------------
    def begin(self, batch_size: int, device=None):
        """Fresh cache for ``batch_size`` parallel episodes: the window (``acting="window"``) or per-layer SSM states."""
        if self.acting == "window":
            return self.window_begin(batch_size, device)
        return [layer.initial_state(batch_size, device=device) for layer in self.layers]

    def _step_token(self, tok: torch.Tensor, first_t: torch.Tensor, triplet_first_t: torch.Tensor, cache: list):
        new = []
        for layer, st in zip(self.layers, cache):
            tok, st = layer.step(tok, first_t, triplet_first_t, st)
            new.append(st)
        return self.norm(tok), new

    def act(self, cache: list, rtg: torch.Tensor, state: torch.Tensor, timestep: torch.Tensor, first: torch.Tensor):
        """Feed R_t then s_t; ``rtg (B, 1)`` scaled, ``state (B, O)`` normalised, ``timestep (B,)``, ``first (B,)``
        (True at an episode's first step: resets the coarse state). Returns ``(action (B, A), cache)``."""
        if self.acting == "window":
            return self.window_act(cache, rtg, state, timestep, first)
        yes = torch.ones_like(first)
        no = torch.zeros_like(first)
        _, cache = self._step_token(self.embed.rtg_token(rtg, timestep), first, yes, cache)
        h, cache = self._step_token(self.embed.state_token(state, timestep), no, no, cache)
        return self.action_head(h), cache

    def record_action(self, cache: list, action: torch.Tensor, timestep: torch.Tensor) -> list:
        """Feed the a_t token that was executed ``(B, A)``."""
        if self.acting == "window":
            return self.window_record_action(cache, action, timestep)
        no = torch.zeros(action.shape[0], dtype=torch.bool, device=action.device)
        _, cache = self._step_token(self.embed.action_token(action, timestep), no, no, cache)
        return cache

    def loss(self, batch: dict[str, torch.Tensor], action_target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE to the (possibly PSER-refined) action target plus the auxiliary next-state / next-RTG losses."""
        out = self(batch)
        target = batch["actions"] if action_target is None else action_target
        aux = F.smooth_l1_loss if self.cfg.aux_loss == "smooth_l1" else F.mse_loss
        a_loss = (out["action"] - target).pow(2).mean()
        s_loss = aux(out["next_state"], batch["next_states"])
        r_loss = aux(out["next_rtg"], batch["next_rtg"])
        total = self.cfg.action_coef * a_loss + self.cfg.aux_state_coef * s_loss + self.cfg.aux_rtg_coef * r_loss
        return total, {"action_loss": a_loss.item(), "next_state_loss": s_loss.item(), "next_rtg_loss": r_loss.item()}
