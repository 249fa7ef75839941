"""Gymnasium MuJoCo locomotion (v5) for the offline-RL work: ``mujoco/<Env>``.

Presets: ``HalfCheetah``, ``Hopper``, ``Walker2d``, ``Ant`` (any other Gymnasium MuJoCo v5 env name in
:data:`OTHERS` is accepted too). Conventions:

- Observations: a Dict ``{"vector": float32 (D,)}`` (the v5 observation cast to float32; Ant-v5 has D = 105,
  D4RL's Ant had 111), or the bare float32 Box with ``flat_obs=True`` (what D4RL-style datasets store).
- Actions: the env's own Box (``[-1, 1]`` for the four presets), unchanged.
- Episodes: Gymnasium's rules (Hopper/Walker2d/Ant terminate when unhealthy) and a ``max_episode_steps`` time
  limit (default 1000) that sets ``truncated``.
- ``info`` passes the env's own entries through (``x_position``, ``reward_forward`` ...) and adds
  ``info["settings"]`` at reset. All randomness comes from ``reset(seed=...)``, passed to the MuJoCo env.
- D4RL-normalised scores are the offline agents' business: ``agents/offline/scores.py`` holds D4RL's reference
  returns and refuses them for a v5 return unless asked (v5 envs differ from D4RL's v2 ones).
- :func:`make_task` builds the task an offline dataset names (``hopper``, ``mujoco/Hopper``, ``Hopper-v5``, any
  Gymnasium ``Name-vN``) with flat observations: the one place SAC collection and offline evaluation get their envs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from envs.rendering import preload_triton, select_gl

select_gl()  # before MuJoCo is imported (it reads MUJOCO_GL then), so rgb_array rendering works headless

PRESETS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")
OTHERS = ("InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Pusher", "Swimmer", "Humanoid",
          "HumanoidStandup")


@dataclass
class MujocoConfig:
    """Settings of one MuJoCo env; every field lands in ``info["settings"]`` at reset.

    env_kwargs: keyword arguments for the Gymnasium env (e.g. ``{"ctrl_cost_weight": 0.1}``).
    render_size: (height, width) of ``render()`` frames.
    """

    name: str = "Hopper"
    version: str = "v5"
    max_episode_steps: int = 1000
    flat_obs: bool = False
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    render_size: tuple[int, int] = (256, 256)


def ids() -> list[str]:
    """The preset names (without the ``mujoco/`` prefix)."""
    return list(PRESETS)


def accepts(name: str) -> bool:
    """True for the presets and the other Gymnasium MuJoCo env names in :data:`OTHERS`."""
    return name in PRESETS or name in OTHERS


class MujocoEnv(gym.Env):
    """A Gymnasium MuJoCo env with float32 observations and settings in ``info``; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, config: MujocoConfig, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if config.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {config.max_episode_steps}")
        self.config = config
        self.render_mode = render_mode
        kwargs = dict(config.env_kwargs)
        if render_mode is not None:
            preload_triton()  # before the renderer opens Mesa's GL (see envs.rendering)
            kwargs.update(render_mode=render_mode, height=config.render_size[0], width=config.render_size[1])
        self._env = gym.make(f"{config.name}-{config.version}", max_episode_steps=config.max_episode_steps,
                             disable_env_checker=True, **kwargs)
        inner = self._env.observation_space
        vector = gym.spaces.Box(-np.inf, np.inf, inner.shape, dtype=np.float32)
        self.observation_space = vector if config.flat_obs else gym.spaces.Dict({"vector": vector})
        self.action_space = self._env.action_space

    def _obs(self, obs: np.ndarray):
        vec = np.asarray(obs, np.float32)
        return vec if self.config.flat_obs else {"vector": vec}

    def settings(self) -> dict[str, Any]:
        out = asdict(self.config)
        out["render_size"] = list(self.config.render_size)
        base = self._env.unwrapped
        out["env_id"] = f"mujoco/{self.config.name}"
        out["gym_id"] = f"{self.config.name}-{self.config.version}"
        out["observation_dim"] = int(self.observation_space.shape[0] if self.config.flat_obs
                                     else self.observation_space["vector"].shape[0])
        out["observation_keys"] = [] if self.config.flat_obs else ["vector"]
        out["action_low"] = self.action_space.low.tolist()
        out["action_high"] = self.action_space.high.tolist()
        out["frame_skip"] = int(base.frame_skip)
        out["dt"] = float(base.dt)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed, options=options)
        return self._obs(obs), {**info, "settings": self.settings()}

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(action)
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self._env.render() if self.render_mode == "rgb_array" else None

    def close(self):
        self._env.close()


def make(name: str, render_mode: str | None = None, **overrides: Any) -> MujocoEnv:
    """Build ``mujoco/<name>``; ``overrides`` are fields of :class:`MujocoConfig` (not ``name``)."""
    if not accepts(name):
        raise ValueError(f"unknown mujoco env {name!r}; presets: {ids()}, also: {list(OTHERS)}")
    fields = {f.name for f in dataclasses.fields(MujocoConfig)} - {"name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown mujoco setting(s) {unknown}; valid: {sorted(fields)}")
    if "render_size" in overrides:
        overrides["render_size"] = tuple(overrides["render_size"])
    return MujocoEnv(MujocoConfig(name=name, **overrides), render_mode)


# D4RL task names (lower case) -> Gymnasium MuJoCo v5 ids
D4RL_TASKS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}


def gym_id(task: str) -> str:
    """``Hopper`` / ``hopper`` / ``mujoco/Hopper`` / ``Hopper-v5`` -> ``Hopper-v5``; other ``X-vN`` ids pass through."""
    name = task.split("/", 1)[1] if task.startswith("mujoco/") else task
    if "-v" in name:
        return name
    key = name.lower()
    if key not in D4RL_TASKS:
        raise ValueError(f"unknown MuJoCo task {task!r}; expected one of {sorted(D4RL_TASKS)} or a Gymnasium id 'Name-vN'")
    return D4RL_TASKS[key]


def task_key(task: str) -> str:
    """The D4RL task key (``hopper``) of a task name, used for reference scores and file names."""
    return gym_id(task).split("-v")[0].lower()


def make_task(task: str, seed: int | None = None, max_episode_steps: int | None = None) -> gym.Env:
    """The env of an offline task with flat float32 observations (the form D4RL-style datasets store).

    The four D4RL tasks in their v5 version are this suite's envs (``mujoco/<Name>`` with ``flat_obs=True``); any
    other Gymnasium id is made by Gymnasium directly. ``seed`` seeds the first reset and the action space.
    """
    gid = gym_id(task)
    preload_triton()  # before MuJoCo may open Mesa's GL in this process (see envs.rendering)
    name = gid.split("-v")[0]
    if gid.endswith("-v5") and name.lower() in D4RL_TASKS:
        env = make(name, flat_obs=True, **({} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}))
    else:
        env = gym.make(gid, max_episode_steps=max_episode_steps) if max_episode_steps else gym.make(gid)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
