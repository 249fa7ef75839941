"""Multi doors-keys corridor: doors open with the matching key and stay open out of view.

Rules (``memory/doors-keys-<n>``, n = ``n_keys`` in 1..7):

- Grid of 5 rows x ``door_spacing * n + 3`` columns: row 0 and the outer columns are wall, rows 1-3 are
  the corridor floor, row 4 is the bottom wall holding ``n`` doors at columns
  ``door_cols[i] = 1 + door_spacing // 2 + door_spacing * i``.
- ``n`` keys of distinct colours (palette index = key index) lie on distinct random corridor cells; door
  ``i`` has the colour ``door_colors[i]``, a random permutation of the key indices drawn at reset. The agent
  starts on a random corridor cell without a key.
- Actions: 0 = noop, 1 = up, 2 = down, 3 = left, 4 = right. Moving into a wall or a door leaves the agent in
  place. Stepping onto a key picks it up (it joins the inventory; reward ``key_reward``). Moving down into a
  closed door while holding the key of its colour opens the door for the rest of the episode and uses the key
  up (reward ``door_reward``). Nothing else changes the doors.
- Frame (S x S RGB, S = 64, cell ``c = S // view_cells`` px): all 5 rows, ``view_cells`` columns centred on the
  agent (white square). Wall grey, floor dark grey, outside black; a key is a small square of its colour; a
  closed door is a full cell of its colour, an open door a one-pixel outline of its colour. Below the world, an
  inventory strip shows each held key ``k`` as a square of its colour at ``x = k * c``. With at most two doors
  in view at a time, a door's state when it comes back into view must be remembered.
- Never terminates; truncated after ``max_steps`` agent steps.

Ground truth in ``info``: ``t``, ``agent`` (row, col), ``inventory`` (n,) bool, ``keys_on_floor`` (n,) bool,
``key_cells`` (n, 2), ``doors_open`` (n,) bool by door, ``door_cols`` (n,), ``door_colors`` (n,), ``n_open``,
``n_cols`` (grid width).
``DoorsKeys.read_doors(frame, agent_col)`` reads the states of the doors in view off a frame (a generated one
too), to score a world model's memory of the doors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import draw
from envs.memory.base import MemoryEnv
from envs.memory.config import DoorsKeysConfig

ROWS = 5
_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
_OUTSIDE, _WALL, _FLOOR = 0, 1, 2


class DoorsKeys(MemoryEnv):
    """See the module docstring for the rules. ``config``: a :class:`DoorsKeysConfig`."""

    def __init__(self, config: DoorsKeysConfig | None = None, render_mode: str | None = None):
        config = config or DoorsKeysConfig()
        if not 1 <= config.n_keys <= 7:
            raise ValueError(f"n_keys must be in 1..7, got {config.n_keys}")
        if config.door_spacing < 2:
            raise ValueError(f"door_spacing must be >= 2, got {config.door_spacing}")
        if config.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {config.max_steps}")
        super().__init__(config, 5, ["noop", "up", "down", "left", "right"], render_mode)
        px = self.cell_px
        if (ROWS + 1) * px > config.image_size or config.n_keys * px > config.image_size:
            raise ValueError(f"image_size {config.image_size} too small for view_cells {config.view_cells} "
                             f"and n_keys {config.n_keys} (world rows and the inventory strip must fit)")
        n, sp = config.n_keys, config.door_spacing
        self.suite_id = f"memory/doors-keys-{n}"
        self.n = n
        self.cols = sp * n + 3
        self.door_cols = 1 + sp // 2 + sp * np.arange(n)
        base = np.full((ROWS, self.cols), _WALL, np.int64)
        base[1:4, 1:-1] = _FLOOR
        self._base = base
        tiles = [draw.solid(px, px, draw.BLACK), draw.solid(px, px, draw.WALL), draw.solid(px, px, draw.FLOOR)]
        tiles += [draw.square(px, px, draw.FLOOR, draw.PALETTE[k], max(1, px // 4)) for k in range(n)]
        tiles += [draw.solid(px, px, draw.PALETTE[k]) for k in range(n)]
        tiles += [draw.outline(px, px, draw.FLOOR, draw.PALETTE[k]) for k in range(n)]
        self._tiles = np.stack(tiles)
        self.agent = np.zeros(2, np.int64)
        self.key_cells = np.zeros((n, 2), np.int64)
        self.keys_on_floor = np.zeros(n, bool)
        self.inventory = np.zeros(n, bool)
        self.doors_open = np.zeros(n, bool)
        self.door_colors = np.arange(n)

    def _reset_state(self) -> None:
        n = self.n
        interior = np.argwhere(self._base == _FLOOR)
        pick = self.np_random.choice(len(interior), size=n + 1, replace=False)
        self.agent = interior[pick[0]].copy()
        self.key_cells = interior[pick[1:]].copy()
        self.keys_on_floor[:] = True
        self.inventory[:] = False
        self.doors_open[:] = False
        self.door_colors = self.np_random.permutation(n)

    def _apply(self, action: int) -> float:
        dr, dc = _MOVES[action]
        r, c = int(self.agent[0] + dr), int(self.agent[1] + dc)
        reward = 0.0
        if r == ROWS - 1 and c in self.door_cols:
            door = int(np.flatnonzero(self.door_cols == c)[0])
            key = int(self.door_colors[door])
            if not self.doors_open[door] and self.inventory[key]:
                self.doors_open[door] = True
                self.inventory[key] = False
                reward += self.config.door_reward
        elif self._base[r, c] == _FLOOR:
            self.agent[:] = (r, c)
            here = np.flatnonzero(self.keys_on_floor & (self.key_cells == self.agent).all(axis=1))
            for k in here:
                self.keys_on_floor[k] = False
                self.inventory[k] = True
                reward += self.config.key_reward
        return reward

    def grid_codes(self) -> np.ndarray:
        """The full (5, cols) tile-code grid of the current state (what the frame shows a window of)."""
        n = self.n
        grid = self._base.copy()
        for k in np.flatnonzero(self.keys_on_floor):
            grid[self.key_cells[k, 0], self.key_cells[k, 1]] = 3 + k
        colors = self.door_colors
        grid[ROWS - 1, self.door_cols] = np.where(self.doors_open, 3 + 2 * n + colors, 3 + n + colors)
        return grid

    def _frame(self) -> np.ndarray:
        cfg, px = self.config, self.cell_px
        half = cfg.view_cells // 2
        codes = draw.window(self.grid_codes(), 0, int(self.agent[1]) - half, ROWS, cfg.view_cells, _OUTSIDE)
        canvas = np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8)
        draw.paste(canvas, draw.compose(codes, self._tiles))
        draw.fill_rect(canvas, int(self.agent[0]) * px + 1, half * px + 1, px - 2, px - 2, draw.WHITE)
        hud = ROWS * px + 1
        for k in np.flatnonzero(self.inventory):
            draw.fill_rect(canvas, hud, int(k) * px + 1, px - 2, px - 2, draw.PALETTE[k])
        return canvas

    def door_boxes(self, agent_col: int) -> dict[int, tuple[int, int, int, int]]:
        """Pixel boxes (y0, y1, x0, x1) of the doors in view when the agent stands in column ``agent_col``."""
        px, half = self.cell_px, self.config.view_cells // 2
        boxes = {}
        for door, col in enumerate(self.door_cols):
            wc = int(col) - int(agent_col) + half
            if 0 <= wc < self.config.view_cells:
                boxes[door] = ((ROWS - 1) * px, ROWS * px, wc * px, (wc + 1) * px)
        return boxes

    def read_doors(self, frame: np.ndarray, agent_col: int) -> dict[int, bool]:
        """Door states as a frame shows them: {door: open} for the doors in view.

        Works on generated frames too (float or uint8, (H, W, 3) in 0..255): a door reads open when its
        cell's centre is closer to the floor colour than to the door's colour. Used to score imagination.
        """
        out = {}
        for door, (y0, y1, x0, x1) in self.door_boxes(agent_col).items():
            c = frame[(y0 + y1) // 2, (x0 + x1) // 2].astype(np.float64)
            to_floor = np.sum((c - draw.FLOOR) ** 2)
            to_door = np.sum((c - draw.PALETTE[self.door_colors[door]]) ** 2)
            out[door] = bool(to_floor < to_door)
        return out

    def _truth(self) -> dict[str, Any]:
        return {
            "agent": self.agent.copy(),
            "inventory": self.inventory.copy(),
            "keys_on_floor": self.keys_on_floor.copy(),
            "key_cells": self.key_cells.copy(),
            "doors_open": self.doors_open.copy(),
            "door_cols": self.door_cols.copy(),
            "door_colors": self.door_colors.copy(),
            "n_open": int(self.doors_open.sum()),
            "n_cols": self.cols,
        }


class DoorsKeysPolicy:
    """Scripted data collection: fetch the keys in random order, open each door either right after its key
    or later (probability 1/2 each), then wander to random corridor cells so open doors come back into view.
    A random action replaces the chosen one with probability ``epsilon``. ``act(obs, info) -> int``.
    """

    def __init__(self, n_keys: int, rng: np.random.Generator, epsilon: float = 0.1):
        self.n, self.rng, self.epsilon = n_keys, rng, epsilon
        self.plan: list[tuple[str, Any]] = []

    def _new_plan(self) -> None:
        plan, later = [], []
        for k in self.rng.permutation(self.n):
            plan.append(("key", int(k)))
            (plan if self.rng.random() < 0.5 else later).append(("door", int(k)))
        self.rng.shuffle(later)
        self.plan = plan + later

    def _done(self, item: tuple[str, Any], info: dict[str, Any]) -> bool:
        kind, arg = item
        if kind == "key":
            return not info["keys_on_floor"][arg]
        if kind == "door":
            door = int(np.flatnonzero(info["door_colors"] == arg)[0])
            return bool(info["doors_open"][door]) or not info["inventory"][arg]
        return bool((info["agent"] == arg).all())

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        if info["t"] == 0:
            self._new_plan()
        while self.plan and self._done(self.plan[0], info):
            self.plan.pop(0)
        if not self.plan:
            # any corridor cell: rows 1-3, columns 1 .. n_cols-2
            cell = np.array([self.rng.integers(1, 4), self.rng.integers(1, int(info["n_cols"]) - 1)])
            self.plan.append(("cell", cell))
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(5))
        kind, arg = self.plan[0]
        if kind == "key":
            target = info["key_cells"][arg]
        elif kind == "door":
            door = int(np.flatnonzero(info["door_colors"] == arg)[0])
            target = np.array([3, info["door_cols"][door]])
        else:
            target = arg
        r, c = int(info["agent"][0]), int(info["agent"][1])
        tr, tc = int(target[0]), int(target[1])
        if (r, c) == (tr, tc):
            return 2 if kind == "door" else 0
        if c != tc and (r == tr or self.rng.random() < 0.5):
            return 4 if tc > c else 3
        return 2 if tr > r else 1
