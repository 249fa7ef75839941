"""Four rooms: a 2D layout with per-episode doorways, room colours and landmarks, for long imagination.

Rules (``memory/four-rooms``):

- Square grid of side ``G = 2 * room_size + 3``: an outer wall, and inner walls along row ``m`` and column
  ``m`` (``m = room_size + 1``) splitting it into four ``room_size``-square rooms (0 top-left, 1 top-right,
  2 bottom-left, 3 bottom-right). Each of the four inner wall segments has one doorway cell, at a random
  position drawn at reset (``random_doorways``) or in its middle.
- Each room's floor has its own colour (a random permutation of four tints at reset); ``n_objects`` coloured
  landmarks per room lie on random cells (they do not block motion). One goal cell (green with a white rim)
  lies on a random free cell.
- Actions: 0 = noop, 1 = up, 2 = down, 3 = left, 4 = right. Walls block motion. Entering the goal cell gives
  ``goal_reward`` and, with ``respawn_goal`` (default), moves the goal to a uniformly random free cell (not a
  wall, landmark or the agent); without it the goal stays and everything after reset is deterministic.
- Frame (S x S RGB, S = 64): the ``view_cells`` x ``view_cells`` window centred on the agent (white square),
  cells of ``S // view_cells`` px; cells outside the grid are black.
- Never terminates; truncated after ``max_steps`` agent steps.

Ground truth in ``info``: ``t``, ``agent`` (row, col), ``room`` (0-3, or -1 in a doorway), ``goal`` (row, col),
``doorways`` (4, 2), ``objects`` (4 * n_objects, 2), ``object_colors`` (palette indices), ``room_colors``
(4,) tint index per room, ``grid_size`` (G).
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from envs.memory import draw
from envs.memory.base import MemoryEnv
from envs.memory.config import FourRoomsConfig

_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
_TINTS = np.array([[70, 35, 35], [35, 70, 35], [35, 35, 80], [70, 70, 25]], np.uint8)
# tile codes
_OUTSIDE, _WALL, _ROOM0, _DOORWAY, _OBJ0 = 0, 1, 2, 6, 7
_GOAL = _OBJ0 + len(draw.PALETTE)


def layout(room_size: int, doorways: np.ndarray) -> np.ndarray:
    """Wall mask (G, G) bool of the four-rooms grid with the given four doorway cells (4, 2)."""
    g, m = 2 * room_size + 3, room_size + 1
    walls = np.zeros((g, g), bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    walls[m, :] = walls[:, m] = True
    for r, c in doorways:
        walls[r, c] = False
    return walls


def room_of(room_size: int, cell) -> int:
    """Room index 0-3 of a floor cell, -1 for a doorway (a cell on an inner wall line)."""
    m = room_size + 1
    r, c = int(cell[0]), int(cell[1])
    if r == m or c == m:
        return -1
    return 2 * int(r > m) + int(c > m)


class FourRooms(MemoryEnv):
    """See the module docstring for the rules. ``config``: a :class:`FourRoomsConfig`."""

    def __init__(self, config: FourRoomsConfig | None = None, render_mode: str | None = None):
        config = config or FourRoomsConfig()
        if config.room_size < 2:
            raise ValueError(f"room_size must be >= 2, got {config.room_size}")
        if not 0 <= config.n_objects <= config.room_size**2 - 2:
            raise ValueError(f"n_objects must be in 0..room_size**2-2, got {config.n_objects}")
        if config.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {config.max_steps}")
        super().__init__(config, 5, ["noop", "up", "down", "left", "right"], render_mode)
        self.suite_id = "memory/four-rooms"
        self.size = 2 * config.room_size + 3
        px = self.cell_px
        tiles = [draw.solid(px, px, draw.BLACK), draw.solid(px, px, draw.WALL)]
        tiles += [draw.solid(px, px, t) for t in _TINTS]  # placeholders, recoloured per episode
        tiles += [draw.solid(px, px, draw.FLOOR)]
        tiles += [draw.square(px, px, draw.BLACK, col, 1) for col in draw.PALETTE]
        tiles += [draw.outline(px, px, (0, 255, 0), draw.WHITE)]
        self._tiles = np.stack(tiles)
        self.agent = np.zeros(2, np.int64)
        self.goal = np.zeros(2, np.int64)
        self.doorways = np.zeros((4, 2), np.int64)
        self.objects = np.zeros((4 * config.n_objects, 2), np.int64)
        self.object_colors = np.zeros(4 * config.n_objects, np.int64)
        self.room_colors = np.arange(4)
        self.walls = np.zeros((self.size, self.size), bool)
        self._codes = np.zeros((self.size, self.size), np.int64)

    def _room_cells(self, room: int) -> np.ndarray:
        n, m = self.config.room_size, self.config.room_size + 1
        r0, c0 = (1 if room < 2 else m + 1), (1 if room % 2 == 0 else m + 1)
        rr, cc = np.meshgrid(np.arange(r0, r0 + n), np.arange(c0, c0 + n), indexing="ij")
        return np.stack([rr.ravel(), cc.ravel()], 1)

    def _free_cell(self, exclude: np.ndarray) -> np.ndarray:
        """A uniformly random floor cell not listed in ``exclude`` (k, 2)."""
        free = ~self.walls
        free[exclude[:, 0], exclude[:, 1]] = False
        cells = np.argwhere(free)
        return cells[self.np_random.integers(len(cells))].copy()

    def _reset_state(self) -> None:
        cfg = self.config
        n, m = cfg.room_size, cfg.room_size + 1
        if cfg.random_doorways:
            a, b, c, d = (int(x) for x in self.np_random.integers(1, n + 1, size=4))
        else:
            a = b = c = d = (n + 1) // 2
        # top/bottom halves of the vertical wall, left/right halves of the horizontal wall
        self.doorways = np.array([[a, m], [m + b, m], [m, c], [m, m + d]], np.int64)
        self.walls = layout(n, self.doorways)
        self.room_colors = self.np_random.permutation(4)
        objs, colors = [], []
        for room in range(4):
            cells = self._room_cells(room)
            pick = self.np_random.choice(len(cells), size=cfg.n_objects, replace=False)
            objs.append(cells[pick])
            colors.append(self.np_random.integers(len(draw.PALETTE), size=cfg.n_objects))
        self.objects = np.concatenate(objs).astype(np.int64).reshape(-1, 2)
        self.object_colors = np.concatenate(colors).astype(np.int64)
        px = self.cell_px
        for room in range(4):
            self._tiles[_ROOM0 + room] = draw.solid(px, px, _TINTS[self.room_colors[room]])
        codes = np.where(self.walls, _WALL, _DOORWAY)
        for room in range(4):
            cells = self._room_cells(room)
            codes[cells[:, 0], cells[:, 1]] = _ROOM0 + room
        codes[self.objects[:, 0], self.objects[:, 1]] = _OBJ0 + self.object_colors
        self._codes = codes
        self.agent = self._free_cell(np.concatenate([self.objects, self.doorways]))
        self.goal = self._free_cell(np.concatenate([self.objects, self.agent[None]]))

    def _apply(self, action: int) -> float:
        dr, dc = _MOVES[action]
        r, c = int(self.agent[0] + dr), int(self.agent[1] + dc)
        if self.walls[r, c]:
            return 0.0
        self.agent[:] = (r, c)
        if (self.agent == self.goal).all():
            if self.config.respawn_goal:
                self.goal = self._free_cell(np.concatenate([self.objects, self.agent[None]]))
            return float(self.config.goal_reward)
        return 0.0

    def _frame(self) -> np.ndarray:
        cfg, px = self.config, self.cell_px
        half = cfg.view_cells // 2
        grid = self._codes.copy()
        grid[self.goal[0], self.goal[1]] = _GOAL
        codes = draw.window(grid, int(self.agent[0]) - half, int(self.agent[1]) - half, cfg.view_cells,
                            cfg.view_cells, _OUTSIDE)
        canvas = np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8)
        draw.paste(canvas, draw.compose(codes, self._tiles))
        draw.fill_rect(canvas, half * px + 2, half * px + 2, px - 4, px - 4, draw.WHITE)
        return canvas

    def _truth(self) -> dict[str, Any]:
        return {
            "agent": self.agent.copy(),
            "room": room_of(self.config.room_size, self.agent),
            "goal": self.goal.copy(),
            "doorways": self.doorways.copy(),
            "objects": self.objects.copy(),
            "object_colors": self.object_colors.copy(),
            "room_colors": self.room_colors.copy(),
            "grid_size": self.size,
        }


def distances_to(walls: np.ndarray, target) -> np.ndarray:
    """Breadth-first shortest-path distances (G, G) from every free cell to ``target``; -1 where unreachable."""
    dist = np.full(walls.shape, -1, np.int64)
    tr, tc = int(target[0]), int(target[1])
    dist[tr, tc] = 0
    queue = deque([(tr, tc)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _MOVES[1:]:
            nr, nc = r + dr, c + dc
            if not walls[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


class FourRoomsPolicy:
    """Scripted data collection: walk shortest paths to waypoints, each the goal with probability ``p_goal``
    and otherwise a uniformly random free cell; ties between equally short moves are broken at random and a
    random action replaces the chosen one with probability ``epsilon``. ``act(obs, info) -> int``.
    """

    def __init__(self, rng: np.random.Generator, epsilon: float = 0.1, p_goal: float = 0.3):
        self.rng, self.epsilon, self.p_goal = rng, epsilon, p_goal
        self.target: np.ndarray | None = None
        self.dist: np.ndarray | None = None
        self.walls: np.ndarray | None = None

    def _pick_target(self, info: dict[str, Any]) -> None:
        if self.rng.random() < self.p_goal:
            self.target = np.array(info["goal"])
        else:
            cells = np.argwhere(~self.walls)
            self.target = cells[self.rng.integers(len(cells))]
        self.dist = distances_to(self.walls, self.target)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        if info["t"] == 0 or self.walls is None:
            room_size = (int(info["grid_size"]) - 3) // 2
            self.walls = layout(room_size, info["doorways"])
            self.target = None
        agent = info["agent"]
        if self.target is None or (agent == self.target).all():
            self._pick_target(info)
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(5))
        here = self.dist[agent[0], agent[1]]
        best = [a for a, (dr, dc) in enumerate(_MOVES) if a and self.dist[agent[0] + dr, agent[1] + dc] == here - 1]
        return int(self.rng.choice(best)) if best else 0
