"""Decision Transformer (Chen et al. 2021) on the same (R, s, a) tokens as Decision Mamba.

A pre-norm causal GPT over ``3K`` tokens. Attention is causal *and* confined to the current episode: a token
attends only to earlier tokens with the same episode index (``cumsum(first)``), so windows that cross an episode
start need no padding. Acting keeps the last K steps and re-runs the window each env step (DT's usual way).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.offline.acting import SlidingWindowActing
from agents.offline.config import ModelConfig
from agents.offline.tokens import TokenEmbedding, split_tokens


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model={d} must be divisible by n_heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, L, D)``, ``mask (B, 1, L, L)`` bool (True = may attend)."""
        b, l, d = x.shape
        q, k, v = self.qkv(x).reshape(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, l, d)))


class GPTBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, cfg.n_heads, cfg.dropout)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


def episode_causal_mask(first: torch.Tensor) -> torch.Tensor:
    """``first (B, L)`` -> ``(B, 1, L, L)``: i may attend j iff j <= i and both lie in the same episode."""
    seg = torch.cumsum(first.long(), dim=1)
    l = first.shape[1]
    causal = torch.ones(l, l, dtype=torch.bool, device=first.device).tril()
    return (causal & (seg.unsqueeze(2) == seg.unsqueeze(1))).unsqueeze(1)


class DecisionTransformer(SlidingWindowActing, nn.Module):
    """``forward(batch) -> {"action" (B, K, A)}``; ``batch`` as in ``agents/offline/data.py``."""

    kind = "dt"

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig | None = None, context: int = 20):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.obs_dim, self.act_dim, self.context = obs_dim, act_dim, context
        self.embed = TokenEmbedding(obs_dim, act_dim, cfg.d_model, cfg.max_timestep, cfg.dropout)
        self.blocks = nn.ModuleList(GPTBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.action_head = nn.Sequential(nn.Linear(cfg.d_model, act_dim), nn.Tanh())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, first = self.embed(batch["rtg"], batch["states"], batch["actions"], batch["timesteps"], batch["first"])
        mask = episode_causal_mask(first)
        for blk in self.blocks:
            x = blk(x, mask)
        _, hs, _ = split_tokens(self.norm(x))
        return {"action": self.action_head(hs)}

    def loss(self, batch: dict[str, torch.Tensor], action_target: torch.Tensor | None = None):
        target = batch["actions"] if action_target is None else action_target
        a_loss = (self(batch)["action"] - target).pow(2).mean()
        return a_loss, {"action_loss": a_loss.item()}

    # ---- acting over a sliding window of the last K steps (agents/offline/acting.py) ---------------------------
    begin = SlidingWindowActing.window_begin
    act = SlidingWindowActing.window_act
    record_action = SlidingWindowActing.window_record_action
