"""Shared Atari machinery: one gymnasium env that drives ``ale_py.ALEInterface`` directly.

Protocol (``docs/references.md#atari100k-protocol``), all of it recorded in ``info["settings"]`` at reset:

- The ALE runs at ``frameskip=1`` and this env repeats the chosen action ``frame_skip`` (4) emulator frames.
  Rewards of those frames are summed. The observation is the pixel-wise maximum of the last ``pool_frames`` (2)
  frames of the repeat (it removes Atari sprite flicker). If the game ends before the last frame of the repeat,
  the observation is the final frame alone (there is no later frame to pool with).
- The (210, 160, 3) RGB screen is resized to ``size`` (64, 64) with ``cv2.INTER_AREA`` (max-pool and resize run as
  one pass in :mod:`envs.frame_ops`, same bytes); ``grayscale=True``
  converts the pooled RGB frame to luminance first and returns ``(H, W, 1)``. Observations are uint8.
- Minimal action set (``full_action_space=False``), sticky actions ``repeat_action_probability`` (default 0.0,
  applied by the ALE per emulator frame), optional ALE ``mode`` / ``difficulty``.
- Every step reports ``info["life_loss"]`` (True when the step lost a life without ending the game) and
  ``info["lives"]``. With ``life_loss_terminal=True`` a life loss also ends the *learner's* episode
  (``terminated=True``) while the game goes on: the next ``reset()`` without a seed then continues the same
  game from the current frame (no ROM reset, no no-op starts; ``info["continued"] = True``). A ``reset`` with
  a seed, ``options={"full_reset": True}``, a reset after a game over or truncation, or a reset in the middle of
  an episode starts a new game.
- ``max_frames`` (108,000) emulator frames per game (no-op starts included, counted by the ALE's episode frame
  number): reaching it ends the episode with ``truncated=True``.
- ``noop_max > 0``: a new game begins with ``n ~ U{1..noop_max}`` NOOP frames, drawn from the env's generator.

Randomness: everything (the ALE's own seed for sticky actions, the no-op count, and any subclass draws through
``self.np_random``) derives from ``reset(seed=...)``; the same seed and actions give the same trajectory.
Driving ``ALEInterface`` directly (instead of ``gymnasium.make("ALE/...")``) avoids copying a screen on every
emulator frame: only the frames that are pooled are read.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from ale_py import ALEInterface, LoggerMode, roms

from envs.frame_ops import PoolResize

SCREEN_SHAPE = (210, 160, 3)


@dataclass
class AtariConfig:
    """Settings of one Atari env (every field lands in ``info["settings"]`` at reset)."""

    game: str = "Pong"  # CamelCase game name as in gymnasium's "ALE/<Game>-v5"
    frame_skip: int = 4  # emulator frames per agent step (action repeat)
    pool_frames: int = 2  # max-pool over the last N frames of the repeat (1: last frame only)
    size: tuple[int, int] = (64, 64)  # (height, width) of the observation
    grayscale: bool = False  # (H, W, 1) luminance instead of (H, W, 3) RGB
    repeat_action_probability: float = 0.0  # ALE sticky actions, per emulator frame
    full_action_space: bool = False  # 18 actions instead of the game's minimal set
    life_loss_terminal: bool = False  # a life loss terminates the learner's episode (the game continues)
    max_frames: int = 108_000  # emulator frames per game before truncation
    noop_max: int = 0  # up to this many NOOP frames at the start of a game (0: none)
    mode: int | None = None  # ALE game mode (None: the game's default)
    difficulty: int | None = None  # ALE difficulty (None: the game's default)

    def validate(self) -> None:
        if self.frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {self.frame_skip}")
        if not 1 <= self.pool_frames <= self.frame_skip:
            raise ValueError(f"pool_frames must be in [1, frame_skip={self.frame_skip}], got {self.pool_frames}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (height, width) with positive entries, got {self.size}")
        if not 0.0 <= self.repeat_action_probability <= 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1], got {self.repeat_action_probability}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {self.noop_max}")


def rom_id(game: str) -> str:
    """'MsPacman' -> 'ms_pacman' (the ROM ids ale-py ships; exact inverse of :func:`game_name`)."""
    for rom in roms.get_all_rom_ids():
        if game_name(rom) == game:
            return rom
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def game_name(rom: str) -> str:
    """'ms_pacman' -> 'MsPacman'."""
    return "".join(part.capitalize() for part in rom.split("_"))


def all_games() -> list[str]:
    """Every game whose ROM ale-py ships, as CamelCase names."""
    return sorted(game_name(r) for r in roms.get_all_rom_ids())


def build_config(cls: type, game: str, overrides: dict[str, Any]):
    """A config dataclass of type ``cls`` for ``game`` with keyword overrides; unknown keys raise, naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown} for {cls.__name__}; valid settings: {sorted(names - {'game'})}")
    values = dict(overrides)
    if "size" in values:
        values["size"] = tuple(int(v) for v in values["size"])
    cfg = cls(game=game, **values)
    cfg.validate()
    return cfg


class AtariEnv(gym.Env):
    """One ALE game with the protocol of the module docstring.

    Observation: uint8 Box ``(H, W, 3)`` (or ``(H, W, 1)`` grayscale). Action: Discrete(n) over the minimal set.
    Subclasses change the emulation through ``_act_frame`` (one emulator frame) and ``_on_step_start`` /
    ``_finish_frame`` / ``_finish_step`` hooks; all their draws must come from ``self.np_random``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, config: AtariConfig, render_mode: str | None = None):
        config.validate()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        rom = rom_id(config.game)
        if rom not in roms.get_all_rom_ids():
            raise ValueError(f"unknown Atari game {config.game!r}; valid games: {all_games()}")
        self._rom_path = roms.get_rom_path(rom)
        ALEInterface.setLoggerMode(LoggerMode.Error)  # the ALE prints a banner per ROM load otherwise
        self.ale = ALEInterface()
        self.ale.setInt("frame_skip", 1)
        self.ale.setFloat("repeat_action_probability", float(config.repeat_action_probability))
        self.ale.setInt("random_seed", 0)
        self.ale.loadROM(self._rom_path)
        self._apply_mode()
        actions = self.ale.getLegalActionSet() if config.full_action_space else self.ale.getMinimalActionSet()
        self._action_set = list(actions)
        self.action_names = [a.name for a in self._action_set]
        channels = 1 if config.grayscale else 3
        self.observation_space = gym.spaces.Box(0, 255, (*config.size, channels), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self._action_set))
        self._pool = np.zeros((config.pool_frames, *SCREEN_SHAPE), np.uint8)
        self._pool_resize = PoolResize(SCREEN_SHAPE, config.size)
        self._lives = 0
        self._game_over = True  # no game started yet
        self._continue_pending = False  # the last step ended the learner's episode on a life loss only
        self._loaded_seed: int | None = None

    # ----- setup -----------------------------------------------------------------------------------------
    def _apply_mode(self) -> None:
        cfg = self.config
        if cfg.mode is not None:
            modes = list(self.ale.getAvailableModes())
            if cfg.mode not in modes:
                raise ValueError(f"mode must be one of {modes} for {cfg.game}, got {cfg.mode}")
            self.ale.setMode(cfg.mode)
        if cfg.difficulty is not None:
            diffs = list(self.ale.getAvailableDifficulties())
            if cfg.difficulty not in diffs:
                raise ValueError(f"difficulty must be one of {diffs} for {cfg.game}, got {cfg.difficulty}")
            self.ale.setDifficulty(cfg.difficulty)

    def settings(self) -> dict[str, Any]:
        """Every setting of this env (JSON-friendly)."""
        out = dataclasses.asdict(self.config)
        out["size"] = list(self.config.size)
        out["actions"] = list(self.action_names)
        out["backend"] = "ale_py.ALEInterface"
        return out

    # ----- gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = options or {}
        unknown = set(options) - {"full_reset"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; valid: ['full_reset']")
        first_ever = self._loaded_seed is None
        super().reset(seed=seed)
        continue_game = self._continue_pending and seed is None and not options.get("full_reset")
        self._continue_pending = False
        if not continue_game:
            return self._new_game(reseed=seed is not None or first_ever)
        # continue the same game after a life-loss termination
        obs = self._observe(self._grab_single())
        info = self._info(life_loss=False)
        info["continued"] = True
        return obs, info

    def _new_game(self, reseed: bool):
        if reseed:
            # the ALE's own seed (sticky actions) is drawn from the env's generator, so reset(seed) fixes it
            ale_seed = int(self.np_random.integers(0, 2**31 - 1))
            self.ale.setInt("random_seed", ale_seed)
            self.ale.loadROM(self._rom_path)
            self._apply_mode()
            self._loaded_seed = ale_seed
        self.ale.reset_game()
        self._on_new_game()
        noops = int(self.np_random.integers(1, self.config.noop_max + 1)) if self.config.noop_max > 0 else 0
        for _ in range(noops):
            self.ale.act(self._action_set[0])
            if self.ale.game_over():
                self.ale.reset_game()
        self._lives = self.ale.lives()
        self._game_over = False
        obs = self._observe(self._grab_single())
        info = self._info(life_loss=False)
        info["continued"] = False
        info["noops"] = noops
        info["settings"] = self.settings()
        return obs, info

    def step(self, action):
        if self._game_over or self._continue_pending:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        action = int(action)
        if not 0 <= action < len(self._action_set):
            raise ValueError(f"action must be in [0, {len(self._action_set)}), got {action}")
        cfg = self.config
        ale_action = self._on_step_start(action)
        reward = 0.0
        k, pool = cfg.frame_skip, cfg.pool_frames
        first_pooled = k - pool
        frame = None
        for i in range(k):
            reward += self._act_frame(ale_action, i)
            over = self.ale.game_over()
            if i >= first_pooled:
                frame = self._pool[i - first_pooled]
                self.ale.getScreenRGB(frame)
                self._finish_frame(frame)
            elif over:  # ended before the pooled frames: the final frame alone
                frame = self._pool[0]
                self.ale.getScreenRGB(frame)
                self._finish_frame(frame)
            if over:
                break
        if i < k - 1 or pool == 1:  # the repeat ended early: stale slots in the pool, use the final frame
            frames = (frame,)
        elif pool == 2:  # pooled together with the resize in _observe (one pass)
            frames = (self._pool[0], self._pool[1])
        else:
            frames = (self._pool.max(axis=0),)
        reward, frames = self._finish_step(reward, frames)
        lives = self.ale.lives()
        life_loss = lives < self._lives and not over
        self._lives = lives
        terminated = over or (cfg.life_loss_terminal and life_loss)
        truncated = (not terminated) and self.ale.getEpisodeFrameNumber() >= cfg.max_frames
        if over or truncated:
            self._game_over = True
        self._continue_pending = terminated and not over and not truncated
        return self._observe(*frames), float(reward), bool(terminated), bool(truncated), self._info(life_loss)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.ale.getScreenRGB()
        return None

    def close(self):
        self.ale = None  # type: ignore[assignment]

    # ----- helpers and hooks -------------------------------------------------------------------------------
    def _info(self, life_loss: bool) -> dict[str, Any]:
        return {"lives": self._lives, "life_loss": bool(life_loss), "frame": self.ale.getEpisodeFrameNumber()}

    def _grab_single(self) -> np.ndarray:
        frame = self._pool[0]
        self.ale.getScreenRGB(frame)
        self._finish_frame(frame)
        return frame

    def _observe(self, frame: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
        """(210, 160, 3) uint8 frame(s) -> (H, W, C) uint8: the INTER_AREA resize of ``max(frame, other)``."""
        if self.config.grayscale:
            h, w = self.config.size
            raw = frame if other is None else np.maximum(frame, other)
            gray = cv2.cvtColor(raw, cv2.COLOR_RGB2GRAY)
            return cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)[:, :, None]
        return self._pool_resize(frame, other)

    def _on_new_game(self) -> None:
        """Called after every ROM reset (before no-op starts)."""

    def _on_step_start(self, action: int):
        """Maps the agent's action index to the ALE action used for this step."""
        return self._action_set[action]

    def _act_frame(self, ale_action, frame_index: int) -> float:
        """Emulates one frame; returns its reward."""
        return self.ale.act(ale_action)

    def _finish_frame(self, frame: np.ndarray) -> None:
        """Edits a raw (210, 160, 3) frame in place right after it is read (before pooling)."""

    def _finish_step(self, reward: float, frames: tuple[np.ndarray, ...]) -> tuple[float, tuple[np.ndarray, ...]]:
        """Last chance to change the step's reward or raw frames (1 or 2; the observation is their pixel-wise max,
        so an edit that paints a fixed colour may be applied to each)."""
        return reward, frames
