"""Step N environments with a recurrent policy, write every step to replay, report finished episodes.

The engine steps a plain list of single ``gymnasium.Env`` (no vector-env autoreset), so that the final
observation of every episode is kept and ``first`` is explicit:

* ``policy.act(obs, first, state) -> (action, state)`` (or a plain callable with that signature) is called once
  per engine step for all N envs: ``obs`` is a dict of batched arrays ``{key: (N, ...)}``, ``first`` bool ``(N,)``
  is True where ``obs`` is the first observation of an episode. The policy must zero its recurrent state
  where ``first`` is True *before* consuming ``obs`` (the same contract as the SSM ``step``; ``reset_where``
  helps). The engine carries ``state`` between calls unchanged and never re-runs past frames.
* A gym ``terminated or truncated`` at step t becomes ``first`` at step t + 1 (the env is reset immediately).
* Replay records follow ``ssmrl.replay.buffer``: record t = (o_t, reward into o_t, is_first_t, is_last_t,
  is_terminal_t, action taken from o_t [, life_loss_t]). When an episode ends, the final observation is
  written as an extra record with ``is_last`` (and ``is_terminal`` if terminated) and a zero action, without a
  policy call: one policy call per env step.

Observations: a dict keeps its keys; a plain array becomes "image" when it is uint8 with rank >= 3 (H, W, C),
otherwise "vector". float64 arrays are cast to float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from ssmrl.rollout.config import RolloutConfig
from ssmrl.runs.seeding import derived_seeds

RESERVED = ("action", "reward", "is_first", "is_last", "is_terminal", "life_loss")


@dataclass
class EpisodeStats:
    """A finished episode: env index, undiscounted return, env steps, how it ended, lives lost."""

    env: int
    episode_return: float
    length: int
    terminated: bool
    truncated: bool
    life_losses: int = 0


def obs_to_dict(obs: Any) -> dict[str, np.ndarray]:
    """One env's observation as ``{key: array}`` (see module docstring for plain arrays)."""
    if isinstance(obs, Mapping):
        out = {str(k): np.asarray(v) for k, v in obs.items()}
    else:
        arr = np.asarray(obs)
        out = {"image" if arr.dtype == np.uint8 and arr.ndim >= 3 else "vector": arr}
    clash = [k for k in out if k in RESERVED]
    if clash:
        raise KeyError(f"observation keys {clash} clash with replay keys {RESERVED}")
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}


def reset_where(state: Any, first: Any) -> Any:
    """Zero the rows of a (nested) recurrent state where ``first`` (N,) is True; leaves are numpy arrays or
    torch tensors with the batch first. Returns the new state (None stays None)."""
    if state is None:
        return None
    if isinstance(state, Mapping):
        return {k: reset_where(v, first) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(reset_where(v, first) for v in state)
    if isinstance(state, np.ndarray):
        keep = ~np.asarray(first, dtype=bool)
        return state * keep.reshape(-1, *([1] * (state.ndim - 1))).astype(state.dtype)
    import torch

    keep = ~torch.as_tensor(np.asarray(first, dtype=bool), device=state.device)
    return state * keep.reshape(-1, *([1] * (state.dim() - 1))).to(state.dtype)


def _to_numpy(action: Any) -> np.ndarray:
    if hasattr(action, "detach"):
        action = action.detach().cpu().numpy()
    return np.asarray(action)


class RandomPolicy:
    """Uniform random actions for warm-up, from its own seeded generator. State is always None."""

    def __init__(self, action_spaces: Sequence[gym.Space] | gym.Space, num_envs: int | None = None, seed: int = 0):
        if isinstance(action_spaces, gym.Space):
            if num_envs is None:
                raise ValueError("num_envs is required with a single action space")
            action_spaces = [action_spaces] * num_envs
        self.spaces = list(action_spaces)
        self.rng = np.random.default_rng(seed)
        for i, space in enumerate(self.spaces):
            if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
                space.seed(int(self.rng.integers(2**31)) + i)

    def _sample(self, space: gym.Space) -> np.ndarray:
        rng = self.rng
        if isinstance(space, gym.spaces.Discrete):
            return np.asarray(space.start + rng.integers(space.n), dtype=np.int64)
        if isinstance(space, gym.spaces.Box):
            low, high = space.low.astype(np.float64), space.high.astype(np.float64)
            finite = np.isfinite(low) & np.isfinite(high)
            x = np.where(finite, rng.uniform(np.where(finite, low, 0), np.where(finite, high, 1)), rng.normal(size=space.shape))
            return x.astype(space.dtype)
        if isinstance(space, gym.spaces.MultiDiscrete):
            return rng.integers(0, space.nvec).astype(space.dtype)
        if isinstance(space, gym.spaces.MultiBinary):
            return rng.integers(0, 2, size=space.shape).astype(space.dtype)
        return np.asarray(space.sample())

    def act(self, obs: Mapping[str, np.ndarray], first: np.ndarray, state: Any = None) -> tuple[np.ndarray, None]:
        return np.stack([self._sample(s) for s in self.spaces]), None

    __call__ = act

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class RolloutEngine:
    """Steps ``envs`` with a policy, carrying its state; writes stream i of ``replay`` from env i."""

    def __init__(self, envs: Sequence[gym.Env], replay: Any = None, config: RolloutConfig | None = None,
                 seeds: Sequence[int] | None = None):
        self.envs = list(envs)
        if not self.envs:
            raise ValueError("RolloutEngine needs at least one environment")
        self.config = config or RolloutConfig()
        self.replay = replay
        if replay is not None and replay.num_streams != len(self.envs):
            raise ValueError(f"replay has {replay.num_streams} streams but there are {len(self.envs)} envs (one stream per env)")
        n = len(self.envs)
        self.seeds = list(seeds) if seeds is not None else derived_seeds(self.config.seed, n)
        if len(self.seeds) != n:
            raise ValueError(f"got {len(self.seeds)} seeds for {n} envs")
        self.state: Any = None
        self.first = np.ones(n, dtype=bool)
        self._obs: list[dict[str, np.ndarray]] | None = None
        self._reward = np.zeros(n, dtype=np.float32)
        self._life_loss = np.zeros(n, dtype=bool)
        self._return = np.zeros(n, dtype=np.float64)
        self._length = np.zeros(n, dtype=np.int64)
        self._lives_lost = np.zeros(n, dtype=np.int64)
        self.env_steps = 0
        self.policy_calls = 0

    @classmethod
    def from_env_id(cls, env_id: str, num_envs: int, replay: Any = None, config: RolloutConfig | None = None,
                    **overrides: Any) -> "RolloutEngine":
        """Envs built by ``envs.make`` with seeds derived from ``config.seed``."""
        import envs as env_factory

        config = config or RolloutConfig()
        seeds = derived_seeds(config.seed, num_envs)
        return cls([env_factory.make(env_id, seed=s, **overrides) for s in seeds], replay, config, seeds)

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    @property
    def action_spaces(self) -> list[gym.Space]:
        return [env.action_space for env in self.envs]

    def reset(self) -> None:
        """Reset every env with its seed; the next step starts fresh episodes (``first`` all True)."""
        self._obs = [obs_to_dict(env.reset(seed=int(s))[0]) for env, s in zip(self.envs, self.seeds)]
        self.first[:] = True
        self._reward[:] = 0
        self._life_loss[:] = False
        self._return[:] = 0
        self._length[:] = 0
        self._lives_lost[:] = 0
        self.state = None

    @property
    def obs(self) -> dict[str, np.ndarray]:
        """Current observations batched: ``{key: (N, ...)}``."""
        if self._obs is None:
            self.reset()
        assert self._obs is not None
        keys = self._obs[0].keys()
        return {k: np.stack([o[k] for o in self._obs]) for k in keys}

    def _record(self, i: int, obs: Mapping[str, np.ndarray], reward: float, first: bool, last: bool,
                terminal: bool, action: np.ndarray, life_loss: bool) -> None:
        if self.replay is None or not self.config.record:
            return
        step = dict(obs)
        step.update(action=action, reward=np.float32(reward), is_first=first, is_last=last, is_terminal=terminal)
        if self.config.life_loss_key is not None:
            step["life_loss"] = life_loss
        self.replay.add(step, stream=i)

    def step(self, policy: Any) -> list[EpisodeStats]:
        """One policy call and one env step per env. Returns the episodes that ended in this step."""
        obs = self.obs
        act: Callable = getattr(policy, "act", policy)
        if self.state is None and hasattr(policy, "initial_state"):
            self.state = policy.initial_state(self.num_envs)
        first = self.first.copy()
        action, self.state = act(obs, first, self.state)
        self.policy_calls += 1
        action = _to_numpy(action)
        if len(action) != self.num_envs:
            raise ValueError(f"policy returned {len(action)} actions for {self.num_envs} envs")
        assert self._obs is not None
        finished: list[EpisodeStats] = []
        key = self.config.life_loss_key
        for i, env in enumerate(self.envs):
            a = action[i]
            self._record(i, self._obs[i], self._reward[i], bool(first[i]), False, False, a, bool(self._life_loss[i]))
            env_action = a.item() if a.ndim == 0 and a.dtype.kind in "iub" else a
            o, r, terminated, truncated, info = env.step(env_action)
            self.env_steps += 1
            o = obs_to_dict(o)
            life_loss = bool(key is not None and info.get(key, False))
            self._return[i] += float(r)
            self._length[i] += 1
            self._lives_lost[i] += life_loss
            if terminated or truncated:
                self._record(i, o, float(r), False, True, bool(terminated), np.zeros_like(a), life_loss)
                finished.append(EpisodeStats(i, float(self._return[i]), int(self._length[i]), bool(terminated),
                                             bool(truncated), int(self._lives_lost[i])))
                self._obs[i] = obs_to_dict(env.reset()[0])
                self.first[i] = True
                self._reward[i] = 0.0
                self._life_loss[i] = False
                self._return[i] = self._length[i] = self._lives_lost[i] = 0
            else:
                self._obs[i] = o
                self.first[i] = False
                self._reward[i] = float(r)
                self._life_loss[i] = life_loss
        return finished

    def run(self, policy: Any, steps: int) -> list[EpisodeStats]:
        """``steps`` engine steps (``steps * num_envs`` env steps); all episodes that ended."""
        finished: list[EpisodeStats] = []
        for _ in range(steps):
            finished.extend(self.step(policy))
        return finished

    def close(self) -> None:
        for env in self.envs:
            env.close()
