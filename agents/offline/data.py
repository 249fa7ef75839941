"""Offline data pipeline: D4RL arrays -> episodes with returns-to-go -> context windows of K steps.

A window is K consecutive transitions of the dataset stream. It may cross an episode boundary: the step that
begins the new episode is marked ``first`` (True) and the models reset their state there, so no padding tokens
are ever needed. Tensors returned by :meth:`OfflineData.sample`:

    states (B, K, O) normalised, actions (B, K, A), rtg (B, K, 1) / rtg_scale, timesteps (B, K) long,
    first (B, K) bool, next_states (B, K, O) normalised, next_rtg (B, K, 1) / rtg_scale
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.offline.io import flat_observations
from ssmrl.replay import episode_bounds, returns_to_go
from ssmrl.replay.offline import d4rl_episodes


class StateStats:
    """What acting needs from the data: the state normaliser and the RTG scale (restorable from a checkpoint)."""

    def __init__(self, state_mean: np.ndarray, state_std: np.ndarray, rtg_scale: float, **_: Any):
        self.state_mean = np.asarray(state_mean, np.float32)
        self.state_std = np.asarray(state_std, np.float32)
        self.rtg_scale = float(rtg_scale)

    def normalise_state(self, obs: np.ndarray) -> np.ndarray:
        return ((np.asarray(obs, np.float32) - self.state_mean) / self.state_std).astype(np.float32)


class OfflineData:
    """Holds one dataset as a flat stream plus per-step RTG, timestep and ``first``; samples K-windows."""

    def __init__(self, data: dict[str, np.ndarray], context: int, rtg_scale: float = 1000.0, max_timestep: int = 1000,
                 metadata: dict[str, Any] | None = None):
        for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
            if k not in data:
                raise KeyError(f"offline dataset is missing {k!r}")
        n = len(data["rewards"])
        if context < 1 or n < context:
            raise ValueError(f"context K={context} must be in [1, {n}] (the dataset has {n} transitions)")
        self.metadata = metadata or {}
        self.context, self.rtg_scale = context, float(rtg_scale)
        obs = flat_observations(data["observations"])
        self.obs_dim = obs.shape[1]
        acts = np.asarray(data["actions"], np.float32).reshape(n, -1)
        if np.abs(acts).max() > 1 + 1e-6:  # the action heads are tanh: they could never reproduce such actions
            raise ValueError(f"dataset actions lie in [{acts.min():g}, {acts.max():g}], outside the [-1, 1] the "
                             "policies' tanh heads can output; store actions scaled to [-1, 1]")
        self.act_dim = acts.shape[1]
        ends = data.get("episode_ends")
        if ends is None and "next_observations" in data:  # the replay reader also ends episodes at unflagged jumps
            ends = d4rl_episodes({**data, "observations": obs, "next_observations": flat_observations(data["next_observations"])})[0]
        # an episode ends at a terminal or timeout flag, at each of ``ends`` and at the end of the stream
        done = np.asarray(data["terminals"], bool).reshape(-1) | np.asarray(data["timeouts"], bool).reshape(-1)
        if ends is not None:
            done[np.asarray(ends, np.int64) - 1] = True
        first = np.zeros(n, bool)
        first[0] = True
        first[1:] = done[:-1]
        self.starts, stops = episode_bounds(first)
        self.ends = stops - 1  # inclusive
        rtg = returns_to_go(np.asarray(data["rewards"]).reshape(n), first)
        timesteps = np.zeros(n, np.int64)
        for s, e in zip(self.starts, self.ends):
            timesteps[s:e + 1] = np.arange(e - s + 1)
        nxt = data.get("next_observations")
        if nxt is None:  # next state = following observation inside an episode, else the same one
            nxt = np.concatenate([obs[1:], obs[-1:]])
            nxt[self.ends] = obs[self.ends]
        else:
            nxt = flat_observations(nxt)
        self.state_mean = obs.mean(0)
        self.state_std = obs.std(0) + 1e-6
        self.returns = np.array([rtg[s] for s in self.starts])
        # tensors kept once; sampling gathers rows
        self._states = torch.from_numpy((obs - self.state_mean) / self.state_std)
        self._next_states = torch.from_numpy((nxt - self.state_mean) / self.state_std)
        self._actions = torch.from_numpy(acts)
        rewards = np.asarray(data["rewards"], np.float64).reshape(n)
        self._rtg = torch.from_numpy((rtg / self.rtg_scale).astype(np.float32)).unsqueeze(-1)
        self._next_rtg = torch.from_numpy(((rtg - rewards) / self.rtg_scale).astype(np.float32)).unsqueeze(-1)
        self._timesteps = torch.from_numpy(np.minimum(timesteps, max_timestep - 1))
        self._first = torch.from_numpy(first)
        self.size = n

    def window(self, starts: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows beginning at the given stream indices ``(B,)``."""
        idx = torch.as_tensor(starts, dtype=torch.long).unsqueeze(1) + torch.arange(self.context)
        if int(idx.max()) >= self.size or int(idx.min()) < 0:
            raise IndexError(f"window start out of range [0, {self.size - self.context}]")
        return {"states": self._states[idx], "actions": self._actions[idx], "rtg": self._rtg[idx],
                "timesteps": self._timesteps[idx], "first": self._first[idx],
                "next_states": self._next_states[idx], "next_rtg": self._next_rtg[idx]}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` windows with uniformly drawn starts."""
        return self.window(rng.integers(0, self.size - self.context + 1, size=batch_size))

    def normalise_state(self, obs: np.ndarray) -> np.ndarray:
        return ((np.asarray(obs, np.float32) - self.state_mean) / self.state_std).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """What acting needs besides the model (normaliser statistics and scales)."""
        return {"state_mean": self.state_mean, "state_std": self.state_std, "rtg_scale": self.rtg_scale,
                "context": self.context, "obs_dim": self.obs_dim, "act_dim": self.act_dim}
