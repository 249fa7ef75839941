"""Typed settings of the memory suites; every field is recorded in ``info["settings"]`` at reset."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DistractingConfig:
    """Distracting-memory hallway (``memory/distracting-<width>``).

    width: hallway length in cells (100/200/400 in the presets).
    segment: cells per reward segment; 0 means ``width // 10`` (ten segments whatever the width).
    view_cells: cells visible across the frame (odd), centred on the agent.
    n_distractors: moving squares drawn over the hallway, independent of the agent.
    start: "left" (agent starts at cell 0, beside the visible left wall) or "random".
    max_steps: agent steps before truncation; 0 means ``max(500, 5 * width)``.
    cue: draw a bit at reset, shown only by the colour of the left wall, that swaps which segments pay (the
        reward then needs a fact seen once at the start as well as the position).
    """

    width: int = 100
    segment: int = 0
    view_cells: int = 7
    n_distractors: int = 6
    start: str = "left"
    max_steps: int = 0
    image_size: int = 64
    cue: bool = False


@dataclass
class DoorsKeysConfig:
    """Multi doors-keys corridor (``memory/doors-keys-<n>``).

    n_keys: keys (and doors) of distinct colours, 1..7.
    door_spacing: columns between neighbouring doors in the bottom wall.
    view_cells: columns visible across the frame (odd), centred on the agent.
    key_reward / door_reward: reward for picking up a key / opening a door.
    max_steps: agent steps before truncation.
    """

    n_keys: int = 3
    door_spacing: int = 4
    view_cells: int = 7
    key_reward: float = 0.0
    door_reward: float = 1.0
    max_steps: int = 1000
    image_size: int = 64


@dataclass
class FourRoomsConfig:
    """Four rooms with random doorways, room colours, objects and a moving goal (``memory/four-rooms``).

    room_size: interior cells per room side; the grid is ``2 * room_size + 3`` cells square.
    n_objects: static coloured objects per room (landmarks to remember).
    random_doorways: draw the gap in each inner wall at reset; else the gaps sit in the middle.
    view_cells: side of the square egocentric window (odd), centred on the agent.
    goal_reward: reward on entering the goal cell.
    respawn_goal: after the goal is reached, move it to a random free cell (else it stays, and pays again
        each time it is entered); False keeps episodes deterministic given the actions after reset.
    max_steps: agent steps before truncation.
    """

    room_size: int = 7
    n_objects: int = 2
    random_doorways: bool = True
    view_cells: int = 7
    goal_reward: float = 1.0
    respawn_goal: bool = True
    max_steps: int = 1000
    image_size: int = 64
