"""STORI (stochastic Atari, arXiv 2509.01793): ``stori/<Game>/<type>``, re-implemented with every draw seeded.

Ids
---
- ``stori/{Breakout,Boxing,Gopher,BankHeist}/<type>``: the published experiment profiles as presets, types
  ``1``, ``2.1``, ``2.2``, ``3.1``, ``3.2`` and for Breakout and Boxing also ``3.2A``, ``3.2B``, ``3.2C``
  (their ``3.2`` is the variant their ``2.2`` drifts to). See :data:`PRESETS`.
- ``stori/<AnyGame>/<type>`` with a game-independent type: ``1``, ``2.2`` (sudden drift at 300 steps to type 1
  unless overridden), ``3.1``, ``3.2-crop-left``, ``3.2-crop-right``, ``3.2-crop-top``, ``3.2-crop-bottom``,
  ``3.2-circle``. Any :class:`StoriConfig` field can be overridden: ``envs.make("stori/Pong/1", action_prob=.5)``.

Everything else (frame repeat 4, max-pool of the last 2 frames, 64x64 INTER_AREA, minimal action set, life-loss
signal, 108k-frame cap, no-op starts) is the Atari100k protocol of :mod:`envs.atari_common`.

Types (one *unit* is an emulator frame when ``granularity="per_frame"``, as upstream, or an agent step of 4
frames when ``granularity="per_step"``; each unit makes its own draw)
-----
- ``3.1`` the plain game (the ALE already is a partially observed, different representation of the state).
- ``1`` action-dependent: in each unit, with probability ``action_prob`` the chosen action is replaced by one drawn
  uniformly from the first ``random_action_count`` actions of the action set (default: all). Upstream drew per
  frame: at p=0.3 only 0.7**4 = 24% of agent steps run entirely as chosen.
- ``2.1`` action-independent random events (game-specific RAM edits through ``ale.setRAM``):
  ``block_hit_cancel`` (Breakout): a unit that changes the brick bytes (RAM 0-35) has, with probability
  ``event_prob``, those bytes restored (the brick comes back) and, with ``cancel_reward``, its reward set to 0.
  ``colour_swap`` (Boxing): each unit, with probability ``event_prob``, toggles a swap of the player's and the
  enemy's colours (RAM 1 and 2, also colouring the scores); the game rewrites these bytes during every frame, so
  while swapped they are written before every frame (the screen shows the swap; RAM read after a frame does not).
  ``fill_cancel`` (Gopher): a rewarded unit that clears underground bits (RAM 0-23: the farmer filled a hole,
  +20; digging by the gopher sets bits) has, with probability ``event_prob``, the cleared bits set again (the hole
  stays open) and, with ``cancel_reward``, its reward set to 0.
  ``teleport`` (BankHeist): each unit, with probability ``event_prob``, moves the car to another city (RAM 0 set
  to one of the three other values in 0-3, uniformly).
- ``2.2`` concept drift: the game starts as ``3.1`` and switches to ``drift_to`` (``1``, ``2.1`` or ``3.2`` with
  their settings). ``sudden``: agent steps t >= ``drift_threshold`` (t counted from 0 at the start of the game)
  use the secondary concept (upstream switched one step earlier in sudden mode); ``cyclic``: steps with
  ``(t // drift_threshold)`` odd use it. A new game (not a life-loss continuation) starts again at t = 0 as 3.1.
  Leaving a colour swap restores the original colours.
- ``3.2`` missing state variables, applied with probability ``hide_prob`` per unit to the raw 210x160 frames
  before pooling (per_frame: each of the two pooled frames draws; the other frames are never seen) or to the
  pooled frame (per_step: one draw per step); the reset frame draws once:
  ``crop``: black out the named half (``crop_half`` left/right/top/bottom: columns [0, 80) / [80, 160) or rows
  [0, 105) / [105, 210)). ``circle``: black out every pixel farther than ``circle_radius`` (75) from a centre
  drawn uniformly over the pixel grid. ``blackout``: paint game-specific rectangles (``region``, inclusive pixel
  bounds from upstream) in black or the surrounding colour. ``ram``: render the frame from a copy of the machine
  state with game-specific RAM bytes edited (``region``: Boxing ``enemy``, BankHeist ``city_blocks``, Breakout
  ``ball``) and then restore the state (RNG included), so the game itself is never changed; the RAM read after
  the restore is the restored RAM. At reset the hidden view is rendered one NOOP frame ahead.

Fixes of upstream defects: every draw (replacement actions, events, masks and circle centres; the drift itself
is deterministic) uses the env's generator seeded by ``reset(seed=...)``, so the same seed and actions give the
same trajectory for every type, BankHeist type 1 included (upstream drew from unseeded global generators and an
unseeded action space); the draw granularity is a setting; RAM-based hiding clones and restores the full state
including the RNG, so RAM read after the restore is the real game's RAM and the game never sees the edit.
Presets keep the published per-frame granularity and probabilities; pass ``granularity="per_step"`` to draw once
per agent step (the probabilities then apply per step).

``info["stori"]`` reports per step: ``concept`` (the type in force), ``replaced`` (units whose action was
replaced), ``events`` (2.1 events applied), ``hidden`` (3.2 masks applied) and ``circle`` (last centre, x, y).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.atari_common import AtariConfig, AtariEnv, all_games, build_config

TYPES = ("1", "2.1", "2.2", "3.1", "3.2")
GRANULARITIES = ("per_frame", "per_step")


@dataclass
class StoriConfig(AtariConfig):
    """Atari settings plus the STORI type and its parameters (see the module docstring)."""

    stori_type: str = "3.1"  # one of TYPES
    granularity: str = "per_frame"  # "per_frame" (upstream) or "per_step"
    # type 1
    action_prob: float = 0.3
    random_action_count: int | None = None  # draw replacements from the first N actions (None: all)
    # type 2.1
    event: str | None = None  # block_hit_cancel | colour_swap | fill_cancel | teleport (game-specific)
    event_prob: float = 0.25
    cancel_reward: bool = True
    # type 2.2
    drift_mode: str = "sudden"  # "sudden" or "cyclic"
    drift_threshold: int = 300  # agent steps
    drift_to: str = "1"  # secondary concept: "1", "2.1" or "3.2"
    # type 3.2
    hide: str = "crop"  # crop | circle | blackout | ram
    crop_half: str = "left"  # left | right | top | bottom
    circle_radius: float = 75.0
    region: str | None = None  # blackout region set or RAM-hide target (game-specific)
    hide_prob: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.stori_type not in TYPES:
            raise ValueError(f"stori_type must be one of {TYPES}, got {self.stori_type!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        for name in ("action_prob", "event_prob", "hide_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.drift_mode not in ("sudden", "cyclic"):
            raise ValueError(f"drift_mode must be 'sudden' or 'cyclic', got {self.drift_mode!r}")
        if self.drift_threshold < 1:
            raise ValueError(f"drift_threshold must be >= 1, got {self.drift_threshold}")
        if self.drift_to not in ("1", "2.1", "3.2"):
            raise ValueError(f"drift_to must be '1', '2.1' or '3.2', got {self.drift_to!r}")
        if self.hide not in ("crop", "circle", "blackout", "ram"):
            raise ValueError(f"hide must be one of crop/circle/blackout/ram, got {self.hide!r}")
        if self.crop_half not in ("left", "right", "top", "bottom"):
            raise ValueError(f"crop_half must be left/right/top/bottom, got {self.crop_half!r}")
        if self.circle_radius <= 0:
            raise ValueError(f"circle_radius must be > 0, got {self.circle_radius}")
        uses = {self.stori_type} | ({self.drift_to} if self.stori_type == "2.2" else set())
        if "2.1" in uses and (self.game not in EVENTS or EVENTS[self.game] != self.event):
            raise ValueError(f"type 2.1 needs event={EVENTS.get(self.game)!r} for {self.game} (got {self.event!r}); "
                             f"2.1 is available only for {EVENTS}")
        if "3.2" in uses and self.hide in ("blackout", "ram"):
            table = BLACKOUTS if self.hide == "blackout" else RAM_HIDES
            names = sorted(table.get(self.game, {}))
            if self.region not in names:
                raise ValueError(f"hide={self.hide!r} needs region in {names} for {self.game} (got {self.region!r}); "
                                 f"games with {self.hide} regions: {sorted(table)}")


# ----- game-specific facts ---------------------------------------------------------------------------------------
# 2.1 event per game (RAM layouts: upstream STORI's maps, each checked here against ale.getRAM while playing:
# Breakout brick bytes change exactly on brick rewards; Gopher fills clear underground bits with +20 reward)
EVENTS: dict[str, str] = {
    "Breakout": "block_hit_cancel",
    "Boxing": "colour_swap",
    "Gopher": "fill_cancel",
    "BankHeist": "teleport",
}
BREAKOUT_BRICKS = slice(0, 36)
GOPHER_UNDERGROUND = slice(0, 24)
BOXING_COLOURS = (1, 2)  # player (white), enemy (black)
BANKHEIST_CITY = 0

# blackout regions: list of (y0, y1, x0, x1) inclusive, fill colour (RGB) -- pixel bounds from upstream STORI
BLACKOUTS: dict[str, dict[str, tuple[list[tuple[int, int, int, int]], tuple[int, int, int]]]] = {
    "Breakout": {
        "ball_top_bottom": ([(105, 130, 8, 151), (157, 182, 8, 151)], (0, 0, 0)),  # ball visible only mid-band
        "ball_all": ([(105, 182, 8, 151)], (0, 0, 0)),
        "bricks": ([(57, 92, 8, 151)], (0, 0, 0)),
        "score": ([(3, 16, 2, 158)], (0, 0, 0)),
    },
    "Boxing": {  # painted in the ring's green
        "scores_clock": ([(1, 16, 87, 134), (1, 16, 33, 69), (14, 27, 57, 97)], (110, 156, 66)),
    },
    "Gopher": {  # painted in the undug soil colour, from 3 rows below the surface
        "underground": ([(164, 200, 0, 159)], (187, 159, 71)),
    },
    "BankHeist": {
        "score": ([(178, 186, 12, 147)], (162, 98, 33)),
    },
}

# RAM edits that hide an object for the rendered frame (checked by rendering: the object's pixels vanish)
RAM_HIDES: dict[str, dict[str, dict[int, int]]] = {
    "Boxing": {"enemy": {2: 214}},  # enemy colour := ring green (hides the black boxer and its score)
    "BankHeist": {"city_blocks": {66: 0, 68: 0}},
    "Breakout": {"ball": {99: 0, 101: 0}},
}

_COMMON = {"granularity": "per_frame"}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "Breakout": {
        "1": {"stori_type": "1", "action_prob": 0.3},
        "2.1": {"stori_type": "2.1", "event": "block_hit_cancel", "event_prob": 0.25, "cancel_reward": True},
        "2.2": {"stori_type": "2.2", "drift_mode": "sudden", "drift_threshold": 300, "drift_to": "3.2",
                "hide": "blackout", "region": "ball_top_bottom", "hide_prob": 1.0},
        "3.1": {"stori_type": "3.1"},
        "3.2": {"stori_type": "3.2", "hide": "blackout", "region": "ball_top_bottom", "hide_prob": 1.0},
        "3.2A": {"stori_type": "3.2", "hide": "blackout", "region": "ball_top_bottom", "hide_prob": 1.0},
        "3.2B": {"stori_type": "3.2", "hide": "crop", "crop_half": "left", "hide_prob": 0.75},
        "3.2C": {"stori_type": "3.2", "hide": "circle", "hide_prob": 1.0},
    },
    "Boxing": {
        "1": {"stori_type": "1", "action_prob": 0.3},
        "2.1": {"stori_type": "2.1", "event": "colour_swap", "event_prob": 0.001},
        "2.2": {"stori_type": "2.2", "drift_mode": "sudden", "drift_threshold": 300, "drift_to": "3.2",
                "hide": "ram", "region": "enemy", "hide_prob": 0.7},
        "3.1": {"stori_type": "3.1"},
        "3.2": {"stori_type": "3.2", "hide": "ram", "region": "enemy", "hide_prob": 0.7},
        "3.2A": {"stori_type": "3.2", "hide": "blackout", "region": "scores_clock", "hide_prob": 1.0},
        "3.2B": {"stori_type": "3.2", "hide": "crop", "crop_half": "right", "hide_prob": 0.75},
        "3.2C": {"stori_type": "3.2", "hide": "ram", "region": "enemy", "hide_prob": 0.7},
    },
    "Gopher": {
        "1": {"stori_type": "1", "action_prob": 0.3},
        "2.1": {"stori_type": "2.1", "event": "fill_cancel", "event_prob": 0.3, "cancel_reward": True},
        "2.2": {"stori_type": "2.2", "drift_mode": "cyclic", "drift_threshold": 600, "drift_to": "3.2",
                "hide": "blackout", "region": "underground", "hide_prob": 1.0},
        "3.1": {"stori_type": "3.1"},
        "3.2": {"stori_type": "3.2", "hide": "blackout", "region": "underground", "hide_prob": 1.0},
    },
    "BankHeist": {
        "1": {"stori_type": "1", "action_prob": 0.3, "random_action_count": 10},  # upstream drew actions 0-9
        "2.1": {"stori_type": "2.1", "event": "teleport", "event_prob": 0.001},
        "2.2": {"stori_type": "2.2", "drift_mode": "cyclic", "drift_threshold": 600, "drift_to": "3.2",
                "hide": "ram", "region": "city_blocks", "hide_prob": 0.75},
        "3.1": {"stori_type": "3.1"},
        "3.2": {"stori_type": "3.2", "hide": "ram", "region": "city_blocks", "hide_prob": 0.75},
    },
}
for _game in PRESETS.values():
    for _preset in _game.values():
        for _k, _v in _COMMON.items():
            _preset.setdefault(_k, _v)

GENERIC: dict[str, dict[str, Any]] = {
    "1": {"stori_type": "1", "action_prob": 0.3},
    "2.2": {"stori_type": "2.2", "drift_mode": "sudden", "drift_threshold": 300, "drift_to": "1", "action_prob": 0.3},
    "3.1": {"stori_type": "3.1"},
    "3.2-crop-left": {"stori_type": "3.2", "hide": "crop", "crop_half": "left"},
    "3.2-crop-right": {"stori_type": "3.2", "hide": "crop", "crop_half": "right"},
    "3.2-crop-top": {"stori_type": "3.2", "hide": "crop", "crop_half": "top"},
    "3.2-crop-bottom": {"stori_type": "3.2", "hide": "crop", "crop_half": "bottom"},
    "3.2-circle": {"stori_type": "3.2", "hide": "circle"},
}


def ids() -> list[str]:
    """Preset ids of the four STORI games plus the game-independent types on them (without ``stori/``)."""
    out = []
    for game, presets in PRESETS.items():
        out += [f"{game}/{t}" for t in presets]
        out += [f"{game}/{t}" for t in GENERIC if t not in presets]
    return out


def _split(name: str) -> tuple[str, str]:
    game, sep, kind = name.partition("/")
    if not sep or not game or not kind:
        raise ValueError(f"STORI id {name!r} must look like '<Game>/<type>', e.g. 'Breakout/1'")
    return game, kind


def accepts(name: str) -> bool:
    """Any ALE game with a game-independent type, or a preset id."""
    try:
        game, kind = _split(name)
    except ValueError:
        return False
    if kind in PRESETS.get(game, {}):
        return True
    return kind in GENERIC and game in all_games()


def make(name: str, render_mode: str | None = None, **overrides: Any) -> gym.Env:
    """Build ``stori/<name>``: preset (or generic type) settings, then :class:`StoriConfig` ``overrides``."""
    game, kind = _split(name)
    if game not in all_games():
        raise ValueError(f"unknown Atari game {game!r} in STORI id {name!r}; valid ids: {ids()} "
                         f"or '<AnyALEGame>/<type>' with type in {list(GENERIC)}")
    if kind in PRESETS.get(game, {}):
        settings = dict(PRESETS[game][kind])
    elif kind in GENERIC:
        settings = dict(GENERIC[kind])
    else:
        types = list(PRESETS.get(game, {})) + [t for t in GENERIC if t not in PRESETS.get(game, {})]
        raise ValueError(f"unknown STORI type {kind!r} for {game}; valid types: {types}")
    settings.update(overrides)
    cfg = build_config(StoriConfig, game, settings)
    return StoriEnv(cfg, render_mode=render_mode, stori_id=name)


class StoriEnv(AtariEnv):
    """The Atari env with STORI's action/event/drift/hiding rules applied through the emulation hooks."""

    def __init__(self, config: StoriConfig, render_mode: str | None = None, stori_id: str | None = None):
        super().__init__(config, render_mode=render_mode)
        self.config: StoriConfig = config
        self.stori_id = stori_id
        n = self.action_space.n
        self._n_random = n if config.random_action_count is None else config.random_action_count
        if not 1 <= self._n_random <= n:
            raise ValueError(f"random_action_count must be in [1, {n}], got {config.random_action_count}")
        self._per_frame = config.granularity == "per_frame"
        self._blackout = BLACKOUTS.get(config.game, {}).get(config.region or "")
        self._ram_edits = RAM_HIDES.get(config.game, {}).get(config.region or "")
        h, w = self._pool.shape[1:3]
        self._yy, self._xx = np.ogrid[:h, :w]
        self._hidden = np.zeros(self._pool.shape[1:], np.uint8)
        self._pending: np.ndarray | None = None  # hidden render waiting for the frame it replaces
        self._step_hide = None
        self._on_new_game()

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["stori_id"] = self.stori_id
        return out

    # ----- bookkeeping ---------------------------------------------------------------------------------------
    def _on_new_game(self) -> None:
        self._t = 0  # agent steps since the start of the game (drift clock)
        self._concept_now = self._concept(0)
        self._swapped = False
        self._colours = self.ale.getRAM()[list(BOXING_COLOURS)].copy() if self.config.event == "colour_swap" else None
        self._stats = self._fresh_stats()

    def _fresh_stats(self) -> dict[str, Any]:
        return {"concept": self._concept_now, "replaced": 0, "events": 0, "hidden": 0, "circle": None}

    def _concept(self, t: int) -> str:
        cfg = self.config
        if cfg.stori_type != "2.2":
            return cfg.stori_type
        thr = cfg.drift_threshold
        secondary = t >= thr if cfg.drift_mode == "sudden" else (t // thr) % 2 == 1
        return cfg.drift_to if secondary else "3.1"

    def _info(self, life_loss: bool) -> dict[str, Any]:
        info = super()._info(life_loss)
        info["stori"] = dict(self._stats)
        return info

    # ----- hooks ---------------------------------------------------------------------------------------------
    def _on_step_start(self, action: int):
        concept = self._concept(self._t)
        self._t += 1
        if concept != self._concept_now and self._concept_now == "2.1":
            self._leave_events()
        self._concept_now = concept
        self._stats = self._fresh_stats()
        self._step_hide = None
        if not self._per_frame:
            if concept == "1":
                action = self._maybe_replace(action)
            elif concept == "2.1":
                self._event_begin()
            elif concept == "3.2":
                self._step_hide = self._draw_hide()
        return self._action_set[action]

    def _maybe_replace(self, action: int) -> int:
        if self.np_random.random() < self.config.action_prob:
            self._stats["replaced"] += 1
            return int(self.np_random.integers(self._n_random))
        return action

    def _act_frame(self, ale_action, frame_index: int) -> float:
        concept = self._concept_now
        if concept == "1" and self._per_frame:
            idx = self._maybe_replace(-1)
            if idx >= 0:
                ale_action = self._action_set[idx]
        elif concept == "2.1":
            if self._per_frame:
                self._event_begin()
            if self._swapped:  # keep the swapped colours in place on every frame
                self._write_colours()
        self._pending = None
        if concept == "3.2" and self.config.hide == "ram" and frame_index >= self.config.frame_skip - self.config.pool_frames:
            hide = self._draw_hide() if self._per_frame else self._step_hide
            if hide is not None:
                self._render_hidden(ale_action)
                self._pending = self._hidden
        reward = self.ale.act(ale_action)
        if concept == "2.1" and self._per_frame:
            reward = self._event_end(reward)
        return reward

    def _finish_frame(self, frame: np.ndarray) -> None:
        if self._concept_now != "3.2":
            return
        if self.config.hide == "ram":
            if self._pending is not None:
                frame[...] = self._pending
                self._pending = None
        elif self._per_frame:
            self._apply_mask(frame, self._draw_hide())

    def _finish_step(self, reward: float, frames: tuple[np.ndarray, ...]) -> tuple[float, tuple[np.ndarray, ...]]:
        if not self._per_frame:
            if self._concept_now == "2.1":
                reward = self._event_end(reward)
            elif self._concept_now == "3.2" and self.config.hide != "ram":
                for frame in frames:  # masks paint a fixed colour: masking each frame = masking their max
                    self._apply_mask(frame, self._step_hide)
        return reward, frames

    def _grab_single(self) -> np.ndarray:
        """Reset / continuation frame: the concept in force at the next step's index applies."""
        self._concept_now = self._concept(self._t)
        self._stats = self._fresh_stats()
        frame = self._pool[0]
        self.ale.getScreenRGB(frame)
        if self._concept_now == "3.2":
            hide = self._draw_hide()
            if self.config.hide == "ram":
                if hide is not None:
                    self._render_hidden(self._action_set[0])
                    frame[...] = self._hidden
            else:
                self._apply_mask(frame, hide)
        return frame

    # ----- 3.2: hiding ---------------------------------------------------------------------------------------
    def _draw_hide(self):
        """One draw: None (not hidden this unit) or the mask parameters (circle centre for ``circle``)."""
        if self.np_random.random() >= self.config.hide_prob:
            return None
        self._stats["hidden"] += 1
        if self.config.hide == "circle":
            h, w = self._pool.shape[1:3]
            centre = (int(self.np_random.integers(w)), int(self.np_random.integers(h)))
            self._stats["circle"] = centre
            return centre
        return True

    def _apply_mask(self, frame: np.ndarray, hide) -> None:
        """Edits a raw (210, 160, 3) frame in place."""
        if hide is None:
            return
        cfg = self.config
        h, w = frame.shape[:2]
        if cfg.hide == "crop":
            if cfg.crop_half == "left":
                frame[:, : w // 2] = 0
            elif cfg.crop_half == "right":
                frame[:, w // 2 :] = 0
            elif cfg.crop_half == "top":
                frame[: h // 2] = 0
            else:
                frame[h // 2 :] = 0
        elif cfg.hide == "circle":
            cx, cy = hide
            inside = (self._xx - cx) ** 2 + (self._yy - cy) ** 2 <= cfg.circle_radius**2
            np.multiply(frame, inside[:, :, None], out=frame)  # zero outside the circle
        elif cfg.hide == "blackout":
            boxes, colour = self._blackout
            for y0, y1, x0, x1 in boxes:
                frame[y0 : y1 + 1, x0 : x1 + 1] = colour

    def _render_hidden(self, ale_action) -> None:
        """Renders the next frame with the RAM edits into ``self._hidden``, then restores the exact state."""
        state = self.ale.cloneState(include_rng=True)
        for addr, value in self._ram_edits.items():
            self.ale.setRAM(addr, value)
        self.ale.act(ale_action)
        self.ale.getScreenRGB(self._hidden)
        self.ale.restoreState(state)

    # ----- 2.1: random events --------------------------------------------------------------------------------
    def _event_begin(self) -> None:
        event = self.config.event
        if event in ("block_hit_cancel", "fill_cancel"):
            self._ram_before = self.ale.getRAM().copy()
        elif event == "colour_swap":
            if self.np_random.random() < self.config.event_prob:
                self._swapped = not self._swapped
                self._stats["events"] += 1
                self._write_colours()
        elif event == "teleport":
            if self.np_random.random() < self.config.event_prob:
                current = int(self.ale.getRAM()[BANKHEIST_CITY]) % 4
                others = [c for c in range(4) if c != current]
                self.ale.setRAM(BANKHEIST_CITY, others[int(self.np_random.integers(3))])
                self._stats["events"] += 1

    def _event_end(self, reward: float) -> float:
        event = self.config.event
        if event == "block_hit_cancel":
            ram = self.ale.getRAM()
            changed = np.flatnonzero(ram[BREAKOUT_BRICKS] != self._ram_before[BREAKOUT_BRICKS])
            if changed.size and self.np_random.random() < self.config.event_prob:
                for i in changed:
                    self.ale.setRAM(int(i), int(self._ram_before[i]))
                self._stats["events"] += 1
                if self.config.cancel_reward:
                    reward = 0.0
        elif event == "fill_cancel":
            ram = self.ale.getRAM()
            before = self._ram_before[GOPHER_UNDERGROUND]
            cleared = before & ~ram[GOPHER_UNDERGROUND]
            idx = np.flatnonzero(cleared)
            # a fill is a rewarded unit that clears underground bits (other clears, e.g. a new round, are kept)
            if idx.size and reward > 0 and self.np_random.random() < self.config.event_prob:
                for i in idx:
                    self.ale.setRAM(int(i), int(ram[i] | cleared[i]))
                self._stats["events"] += 1
                if self.config.cancel_reward:
                    reward = 0.0
        return reward

    def _write_colours(self) -> None:
        player, enemy = self._colours
        if self._swapped:
            player, enemy = enemy, player
        self.ale.setRAM(BOXING_COLOURS[0], int(player))
        self.ale.setRAM(BOXING_COLOURS[1], int(enemy))

    def _leave_events(self) -> None:
        if self._swapped:
            self._swapped = False
            self._write_colours()


__all__ = ["StoriConfig", "StoriEnv", "PRESETS", "GENERIC", "EVENTS", "BLACKOUTS", "RAM_HIDES", "ids", "accepts", "make"]
