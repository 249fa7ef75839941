"""DeepMind Control Suite as gymnasium envs: ``dmc/<domain>-<task>`` (e.g. ``dmc/walker-walk``).

Presets are the 20 tasks of DreamerV3's DMC benchmark (:func:`ids`); any other suite task with bounded
actions is accepted too (``cup`` is an alias of ``ball_in_cup``). Conventions:

- Observations: a Dict with ``"vector"`` (float32 (D,), the task's proprioceptive observations concatenated in
  the task's key order, listed in ``info["settings"]["vector_layout"]``) for ``obs="proprio"``, ``"image"``
  (uint8 (H, W, 3) from ``camera``) for ``obs="pixels"``, both for ``obs="both"``.
- Actions: Box [-1, 1]^A (float32), clipped and rescaled linearly to the task's actuator bounds.
- ``action_repeat`` (default 2) underlying control steps per agent step, rewards summed.
- Time limit: ``time_limit`` underlying control steps (default 1000, i.e. 500 agent steps at repeat 2);
  reaching it sets ``truncated``. ``terminated`` only when the task itself ends with discount 0.
- Rendering is headless: ``MUJOCO_GL`` is chosen by :func:`envs.rendering.select_gl` (EGL, then OSMesa) before
  dm_control is imported; ``info["settings"]["render_backend"]`` says which is in force. Importing this module
  also imports triton first when it is installed (Mesa's GL plus a later triton import segfaults).
  ``fast_render=True`` switches shadows and reflections off (several times faster on a CPU).
- All randomness comes from ``reset(seed=...)``: every reset re-seeds the task's RandomState from the
  env's ``np_random``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.rendering import gl_info, preload_triton, select_gl

# Both must precede the first dm_control import, which opens the GL display (see envs.rendering).
if select_gl() in ("egl", "osmesa"):
    preload_triton()

import mujoco  # noqa: E402
from dm_control import suite  # noqa: E402
from dm_control.mujoco import engine  # noqa: E402

# DreamerV3's DMC benchmark (proprio and vision): 20 tasks, "cup" meaning ball_in_cup.
PRESETS = (
    "acrobot-swingup", "cartpole-balance", "cartpole-balance_sparse", "cartpole-swingup",
    "cartpole-swingup_sparse", "cheetah-run", "cup-catch", "finger-spin", "finger-turn_easy",
    "finger-turn_hard", "hopper-hop", "hopper-stand", "pendulum-swingup", "quadruped-run", "quadruped-walk",
    "reacher-easy", "reacher-hard", "walker-run", "walker-stand", "walker-walk",
)
ALIASES = {"cup": "ball_in_cup"}
# DreamerV3 renders the quadruped from camera 2, everything else from camera 0.
DEFAULT_CAMERA = {"quadruped": 2}
# Domains whose actions are unbounded (no [-1, 1] rescaling possible).
_UNBOUNDED = {"lqr"}
_FAST_FLAGS = {mujoco.mjtRndFlag.mjRND_SHADOW: False, mujoco.mjtRndFlag.mjRND_REFLECTION: False}


@dataclass
class DMCConfig:
    """Settings of one DMC env; every field lands in ``info["settings"]`` at reset.

    camera: camera id or name; None picks the domain default (DreamerV3's choice).
    size: (height, width) of ``"image"``. render_size: side of ``render()`` frames.
    """

    domain: str = "walker"
    task: str = "walk"
    obs: str = "proprio"
    size: tuple[int, int] = (64, 64)
    camera: int | str | None = None
    action_repeat: int = 2
    time_limit: int = 1000
    fast_render: bool = False
    render_size: int = 256


def parse(name: str) -> tuple[str, str]:
    """``"<domain>-<task>"`` -> (suite domain, task), resolving aliases."""
    domain, sep, task = name.partition("-")
    if not sep or not task:
        raise ValueError(f"dmc name must look like '<domain>-<task>', got {name!r}")
    return ALIASES.get(domain, domain), task


def ids() -> list[str]:
    """The 20 preset names (DreamerV3's DMC benchmark), without the ``dmc/`` prefix."""
    return list(PRESETS)


def accepts(name: str) -> bool:
    """True for any dm_control suite task with bounded actions, written ``<domain>-<task>``."""
    try:
        domain, task = parse(name)
    except ValueError:
        return False
    return (domain, task) in suite.ALL_TASKS and domain not in _UNBOUNDED


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in [-1, 1] (clipped first) linearly onto [low, high]."""
    a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    return low + (a + 1.0) * 0.5 * (high - low)


class DMCEnv(gym.Env):
    """One dm_control suite task behind the gymnasium API; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, config: DMCConfig, render_mode: str | None = None, env_id: str | None = None):
        if config.obs not in ("proprio", "pixels", "both"):
            raise ValueError(f"obs must be 'proprio', 'pixels' or 'both', got {config.obs!r}")
        if config.action_repeat < 1 or config.time_limit < 1:
            raise ValueError("action_repeat and time_limit must be >= 1, got "
                             f"{config.action_repeat} and {config.time_limit}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if (config.domain, config.task) not in suite.ALL_TASKS or config.domain in _UNBOUNDED:
            raise ValueError(f"unknown or unsupported dm_control task {config.domain}-{config.task}")
        if len(config.size) != 2 or min(config.size) < 1:
            raise ValueError(f"size must be (height, width) of positive ints, got {config.size}")
        backend = gl_info()["dm_control_backend"]
        if config.obs != "proprio" and backend in ("off", "disable", "disabled", "false", "0"):
            raise RuntimeError(f"obs={config.obs!r} needs rendering but MUJOCO_GL={backend!r}: no headless GL was "
                               "found (Debian: install libegl1 + libegl-mesa0, or libosmesa6)")
        if config.camera is None:
            config = dataclasses.replace(config, camera=DEFAULT_CAMERA.get(config.domain, 0))
        self.config = config
        self.render_mode = render_mode
        self.env_id = env_id or f"dmc/{config.domain}-{config.task}"
        # dm_control's own limit is switched off: this wrapper counts control steps itself.
        self._env = suite.load(config.domain, config.task, task_kwargs={"time_limit": float("inf")})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, dtype=np.float32)
        self._layout = [(k, int(np.prod(v.shape))) for k, v in self._env.observation_spec().items()]
        spaces: dict[str, gym.Space] = {}
        if config.obs in ("proprio", "both"):
            dim = sum(n for _, n in self._layout)
            spaces["vector"] = gym.spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float32)
        if config.obs in ("pixels", "both"):
            spaces["image"] = gym.spaces.Box(0, 255, (*config.size, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._camera: engine.Camera | None = None
        self._render_camera: engine.Camera | None = None
        self._steps = 0
        self._started = False

    @property
    def physics(self):
        return self._env.physics

    def settings(self) -> dict[str, Any]:
        out = asdict(self.config)
        out["env_id"] = self.env_id
        out["size"] = list(self.config.size)
        out["vector_layout"] = [list(item) for item in self._layout]
        out["observation_keys"] = list(self.observation_space.spaces)
        out["action_low"] = self._low.tolist()
        out["action_high"] = self._high.tolist()
        out["control_timestep"] = float(self._env.control_timestep())
        out["agent_steps_per_episode"] = -(-self.config.time_limit // self.config.action_repeat)
        info = gl_info()
        out["render_backend"] = info["dm_control_backend"] or info["mujoco_gl"]
        return out

    def _new_camera(self, height: int, width: int) -> engine.Camera:
        return engine.Camera(self.physics, height, width, self.config.camera)

    def _image(self) -> np.ndarray:
        if self._camera is None:
            self._camera = self._new_camera(*self.config.size)
        flags = _FAST_FLAGS if self.config.fast_render else None
        return self._camera.render(render_flag_overrides=flags).copy()

    def _obs(self, timestep) -> dict[str, np.ndarray]:
        out = {}
        if "vector" in self.observation_space.spaces:
            parts = [np.asarray(v, np.float32).reshape(-1) for v in timestep.observation.values()]
            out["vector"] = np.concatenate(parts)
        if "image" in self.observation_space.spaces:
            out["image"] = self._image()
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._env.task.random.seed(int(self.np_random.integers(2**31)))
        timestep = self._env.reset()
        self._steps = 0
        self._started = True
        return self._obs(timestep), {"settings": self.settings(), "env_steps": 0}

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        ctrl = rescale(action, self._low, self._high)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.config.action_repeat):
            timestep = self._env.step(ctrl)
            self._steps += 1
            reward += float(timestep.reward or 0.0)
            if timestep.last():
                terminated = timestep.discount == 0.0
                truncated = not terminated
                break
            if self._steps >= self.config.time_limit:
                truncated = True
                break
        if terminated or truncated:
            self._started = False
        return self._obs(timestep), reward, terminated, truncated, {"env_steps": self._steps}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._render_camera is None:
            s = self.config.render_size
            self._render_camera = self._new_camera(s, s)
        flags = _FAST_FLAGS if self.config.fast_render else None
        return self._render_camera.render(render_flag_overrides=flags).copy()

    def close(self):
        """Free the cameras and the physics' GL contexts (they are re-created if the env renders again)."""
        for cam in (self._camera, self._render_camera):
            if cam is not None:
                cam._scene.free()  # what dm_control's Physics.render does with its own cameras
        self._camera = self._render_camera = None
        if self.physics._contexts is not None:  # dm_control has no public call for this
            self.physics._free_rendering_contexts()


def make(name: str, render_mode: str | None = None, **overrides: Any) -> DMCEnv:
    """Build ``dmc/<name>``; ``overrides`` are fields of :class:`DMCConfig` (not domain/task)."""
    if not accepts(name):
        raise ValueError(f"unknown dmc task {name!r}; presets: {ids()} (any suite '<domain>-<task>' works)")
    fields = {f.name for f in dataclasses.fields(DMCConfig)} - {"domain", "task"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown dmc setting(s) {unknown}; valid: {sorted(fields)}")
    if "size" in overrides:
        overrides["size"] = tuple(overrides["size"])
    domain, task = parse(name)
    return DMCEnv(DMCConfig(domain=domain, task=task, **overrides), render_mode, env_id=f"dmc/{name}")
