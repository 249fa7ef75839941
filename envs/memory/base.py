"""Shared plumbing of the memory suites: spaces, step counter, truncation, settings in ``info``."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import gymnasium as gym
import numpy as np


class MemoryEnv(gym.Env):
    """Base class: a Dict observation ``{"image": uint8 (S, S, 3)}`` and a Discrete action space.

    Subclasses implement ``_reset_state()``, ``_apply(action) -> reward``, ``_frame() -> (S, S, 3) uint8``
    and ``_truth() -> dict`` (the ground truth put into ``info`` every step). All randomness comes from
    ``self.np_random``, which ``reset(seed=...)`` seeds. Episodes never terminate; they are truncated after
    ``max_steps`` agent steps. ``info["t"]`` counts agent steps since reset (0 at reset).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    suite_id: str = "memory"

    def __init__(self, config: Any, n_actions: int, action_meanings: list[str], render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if config.image_size < config.view_cells:
            raise ValueError(f"image_size ({config.image_size}) must be >= view_cells ({config.view_cells})")
        if config.view_cells < 1 or config.view_cells % 2 == 0:
            raise ValueError(f"view_cells must be a positive odd number, got {config.view_cells}")
        self.config = config
        self.render_mode = render_mode
        size = config.image_size
        self.observation_space = gym.spaces.Dict(
            {"image": gym.spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)}
        )
        self.action_space = gym.spaces.Discrete(n_actions)
        self.action_meanings = list(action_meanings)
        self.cell_px = size // config.view_cells
        self._t = 0
        self._frame_cache: np.ndarray | None = None

    # -- subclass hooks -------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        raise NotImplementedError

    def _apply(self, action: int) -> float:
        raise NotImplementedError

    def _frame(self) -> np.ndarray:
        raise NotImplementedError

    def _truth(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def max_steps(self) -> int:
        return int(self.config.max_steps)

    # -- gymnasium API --------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Every setting of this env (the resolved config plus the id and action meanings)."""
        out = {"env_id": self.suite_id, **asdict(self.config)}
        out["max_steps"] = self.max_steps
        out["action_meanings"] = list(self.action_meanings)
        out["observation_keys"] = ["image"]
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._reset_state()
        self._frame_cache = self._frame()
        info = self._info()
        info["settings"] = self.settings()
        return {"image": self._frame_cache.copy()}, info

    def step(self, action):
        if self._frame_cache is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        reward = float(self._apply(int(action)))
        self._t += 1
        self._frame_cache = self._frame()
        truncated = self._t >= self.max_steps
        return {"image": self._frame_cache.copy()}, reward, False, truncated, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._frame_cache is None else self._frame_cache.copy()
        return None

    def _info(self) -> dict[str, Any]:
        return {"t": self._t, **self._truth()}
