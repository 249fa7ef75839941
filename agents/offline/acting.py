"""Acting over a sliding window of the last K steps, as the models were trained (K-step windows from a fresh
state): every env step runs the model's training forward on the window, whose first step starts the context.

Decision Transformer always acts this way (as the reference code does); Decision Mamba does by default
(``offline.acting=window``; its reference code also re-runs the last K steps), and can instead carry its
recurrent state over the whole episode (``offline.acting=recurrent``).
"""
from __future__ import annotations

import torch


class SlidingWindowActing:
    """``begin`` / ``act`` / ``record_action`` for a model with ``forward(batch)["action"]`` (B, K, A),
    ``self.context`` (K) and ``self.act_dim``."""

    context: int
    act_dim: int

    def window_begin(self, batch_size: int, device=None) -> dict[str, list]:
        return {"rtg": [], "states": [], "actions": [], "timesteps": []}

    def window_act(self, cache: dict, rtg: torch.Tensor, state: torch.Tensor, timestep: torch.Tensor,
                   first: torch.Tensor):
        """rtg (B, 1), state (B, O), timestep (B,), first (B,) -> (action (B, A), cache). Episodes start together."""
        if bool(first.any()):
            if not bool(first.all()):
                raise ValueError(f"{type(self).__name__}.act: episodes must start together "
                                 "(first all True or all False)")
            cache = self.window_begin(state.shape[0])
        cache["rtg"].append(rtg)
        cache["states"].append(state)
        cache["actions"].append(torch.zeros(state.shape[0], self.act_dim, device=state.device))  # unseen at s_t
        cache["timesteps"].append(timestep)
        for k in cache:
            del cache[k][:-self.context]
        batch = {k: torch.stack(v, 1) for k, v in cache.items()}
        batch["first"] = torch.zeros(batch["timesteps"].shape, dtype=torch.bool, device=state.device)
        batch["first"][:, 0] = True  # the window starts a fresh context, as every training window does
        return self(batch)["action"][:, -1], cache

    def window_record_action(self, cache: dict, action: torch.Tensor, timestep: torch.Tensor) -> dict:
        cache["actions"][-1] = action
        return cache
