"""Distracting-memory hallway: the reward depends on a position that the frames alone do not reveal.

Rules (``memory/distracting-<width>``):

- The world is a 1D hallway of ``width`` cells, positions ``0 .. width-1``; outside it are walls.
- Actions: 0 = stay, 1 = left, 2 = right (one cell). Moving into a wall leaves the agent in place.
- The agent starts at cell 0 (``start="left"``, the default) or at a uniformly random cell (``start="random"``).
- Reward after each step: ``1.0`` if ``(position // segment + cue) % 2 == 1`` else ``0.0``, where ``segment``
  defaults to ``width // 10``: the hallway is ten alternating segments, starting with a zero-reward one.
  The segments are not drawn, so predicting the reward needs the position, i.e. memory of the path since
  the last wall was in view. ``cue`` is 0 unless the config asks for one (``cue=True``): then it is drawn at
  reset (0 or 1, equally likely) and shown only by the left wall's colour (brown for 0, blue for 1; the far
  wall stays brown), so it leaves the frames once the agent walks away from the start and a model must hold it
  for the rest of the episode: a model that tracks the position but forgets the cue is right half the time.
- Frame (S x S RGB, S = 64): ``view_cells`` cells of ``S // view_cells`` px centred on the agent (white
  square); the hallway band is the middle half of the frame; cells alternate between two greys by the
  parity of their index (so motion is visible), walls are brown full-height columns. ``n_distractors``
  coloured squares move in screen coordinates with random velocities, bouncing off the frame edges and
  re-drawing their velocity with probability 0.1 per step; they carry no information.
- Never terminates; truncated after ``max_steps`` (default ``max(500, 5 * width)``) agent steps.

Ground truth in ``info``: ``t``, ``position``, ``segment`` (index), ``reward_zone`` (bool),
``distractor_xy`` (n, 2) int pixel (x, y) of each distractor's top-left corner, and ``cue`` when the config
draws one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import draw
from envs.memory.base import MemoryEnv
from envs.memory.config import DistractingConfig

_FLOOR_A = (60, 60, 60)
_FLOOR_B = (95, 95, 95)
_CEILING = (15, 15, 15)
_WALL = (140, 90, 40)
_CUE_WALL = (40, 90, 140)  # the left wall when the cue is 1


class DistractingHallway(MemoryEnv):
    """See the module docstring for the rules. ``config``: a :class:`DistractingConfig`."""

    def __init__(self, config: DistractingConfig | None = None, render_mode: str | None = None):
        config = config or DistractingConfig()
        if config.width < 2:
            raise ValueError(f"width must be >= 2, got {config.width}")
        if config.start not in ("left", "random"):
            raise ValueError(f"start must be 'left' or 'random', got {config.start!r}")
        if not isinstance(config.cue, bool):
            raise ValueError(f"cue must be true or false, got {config.cue!r}")
        if config.cue and config.start != "left":
            raise ValueError("cue needs start='left': the cue is shown by the left wall, where the agent starts")
        if config.n_distractors < 0:
            raise ValueError(f"n_distractors must be >= 0, got {config.n_distractors}")
        if config.segment < 0 or config.max_steps < 0:
            raise ValueError("segment and max_steps must be >= 0 (0 picks the default)")
        super().__init__(config, 3, ["stay", "left", "right"], render_mode)
        self.suite_id = f"memory/distracting-{config.width}"
        self.segment = config.segment or max(1, config.width // 10)
        size, px = config.image_size, self.cell_px
        band = slice(size // 4, size - size // 4)
        floor_a, floor_b = draw.solid(size, px, _CEILING), draw.solid(size, px, _CEILING)
        floor_a[band], floor_b[band] = _FLOOR_A, _FLOOR_B
        # tile codes: 0 wall, 1 even cell, 2 odd cell, 3 the left wall showing cue 1
        self._tiles = np.stack([draw.solid(size, px, _WALL), floor_a, floor_b, draw.solid(size, px, _CUE_WALL)])
        self.position = 0
        self.cue = 0
        n = config.n_distractors
        self._d_xy = np.zeros((n, 2), np.int64)
        self._d_vel = np.zeros((n, 2), np.int64)
        self._d_size = np.zeros(n, np.int64)
        self._d_color = np.zeros((n, 3), np.uint8)

    @property
    def max_steps(self) -> int:
        return int(self.config.max_steps or max(500, 5 * self.config.width))

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["segment"] = self.segment
        return out

    def reward_at(self, position: int) -> float:
        """The reward rule as a function of the position (and of this episode's cue)."""
        return float((position // self.segment + self.cue) % 2 == 1)

    def _new_velocities(self, mask: np.ndarray) -> None:
        vel = self.np_random.integers(1, 4, size=(int(mask.sum()), 2))
        sign = self.np_random.choice(np.array([-1, 1]), size=vel.shape)
        self._d_vel[mask] = vel * sign

    def _reset_state(self) -> None:
        cfg = self.config
        self.position = 0 if cfg.start == "left" else int(self.np_random.integers(cfg.width))
        n, size = cfg.n_distractors, cfg.image_size
        self._d_size[:] = self.np_random.integers(5, 11, size=n)
        self._d_xy[:] = self.np_random.integers(0, size - self._d_size[:, None] + 1, size=(n, 2))
        self._d_color[:] = draw.PALETTE[self.np_random.integers(len(draw.PALETTE), size=n)]
        self._new_velocities(np.ones(n, bool))
        # drawn last, and only when asked for, so episodes without a cue keep their random stream
        self.cue = int(self.np_random.integers(2)) if cfg.cue else 0

    def _move_distractors(self) -> None:
        size = self.config.image_size
        self._d_xy += self._d_vel
        hi = size - self._d_size[:, None]
        low_out, high_out = self._d_xy < 0, self._d_xy > hi
        # reflect off the frame edges
        self._d_xy = np.where(low_out, -self._d_xy, self._d_xy)
        self._d_xy = np.where(high_out, 2 * hi - self._d_xy, self._d_xy)
        self._d_xy = np.clip(self._d_xy, 0, hi)
        self._d_vel = np.where(low_out | high_out, -self._d_vel, self._d_vel)
        redraw = self.np_random.random(len(self._d_size)) < 0.1
        if redraw.any():
            self._new_velocities(redraw)

    def _apply(self, action: int) -> float:
        step = (0, -1, 1)[action]
        self.position = int(np.clip(self.position + step, 0, self.config.width - 1))
        self._move_distractors()
        return self.reward_at(self.position)

    def _frame(self) -> np.ndarray:
        cfg, px = self.config, self.cell_px
        half = cfg.view_cells // 2
        cells = np.arange(self.position - half, self.position + half + 1)
        codes = np.where((cells < 0) | (cells >= cfg.width), 0, 1 + (cells % 2))
        codes = np.where((cells < 0) & (self.cue == 1), 3, codes)[None, :]
        canvas = np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8)
        draw.paste(canvas, draw.compose(codes, self._tiles))
        for (x, y), s, c in zip(self._d_xy, self._d_size, self._d_color):
            draw.fill_rect(canvas, int(y), int(x), int(s), int(s), c)
        agent = px - 2
        draw.fill_rect(canvas, cfg.image_size // 2 - agent // 2, half * px + 1, agent, agent, draw.WHITE)
        return canvas

    def _truth(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "segment": self.position // self.segment,
            "reward_zone": bool(self.reward_at(self.position)),
            "distractor_xy": self._d_xy.copy(),
            **({"cue": self.cue} if self.config.cue else {}),
        }


class DistractingPolicy:
    """Scripted data collection: walk towards one end, turn at it, walk to the other, and so on.

    Each step moves towards the current target end with probability ``p_forward``, stays with ``p_stay``
    and steps back otherwise, so the walk covers the whole hallway with some jitter.
    ``act(obs, info) -> int``; a new episode is recognised by ``info["t"] == 0``.
    """

    def __init__(self, width: int, rng: np.random.Generator, p_forward: float = 0.8, p_stay: float = 0.1):
        if not 0 <= p_forward + p_stay <= 1:
            raise ValueError(f"p_forward + p_stay must lie in [0, 1], got {p_forward + p_stay}")
        self.width, self.rng = width, rng
        self.p_forward, self.p_stay = p_forward, p_stay
        self.target: int | None = None

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        pos = int(info["position"])
        if self.target is None or info["t"] == 0:
            self.target = self.width - 1 if pos < self.width / 2 else 0
        if pos == self.target:
            self.target = 0 if self.target == self.width - 1 else self.width - 1
        forward = 2 if self.target > pos else 1
        u = self.rng.random()
        if u < self.p_forward:
            return forward
        if u < self.p_forward + self.p_stay:
            return 0
        return 3 - forward
