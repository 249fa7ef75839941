"""Atari100k suite: ``atari100k/<Game>`` for the 26 benchmark games, ``atari/<Game>`` for any ALE game.

The env and its protocol (4-frame repeat with max-pool over the last two frames, 64x64 RGB via INTER_AREA,
minimal action set, sticky actions 0 by default, ``info["life_loss"]`` and optional life-loss termination,
108,000-frame cap, optional no-op starts and grayscale) are documented in :mod:`envs.atari_common`.

Reference scores (random and human, per game) are the standard ones used by every Atari100k paper (IRIS, STORM,
DreamerV3, DIAMOND; see ``docs/references.md#atari-reference-scores``); the human-normalised score is
``HNS = (score - random) / (human - random)``.

    env = envs.make("atari100k/Pong", seed=0)                       # or envs.atari100k.make("Pong")
    env = envs.make("atari100k/Breakout", seed=0, life_loss_terminal=True, grayscale=True)
    human_normalised_score("Pong", 14.6)                             # -> 1.0
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.atari_common import AtariConfig, AtariEnv, all_games, build_config

# game -> (random, human) episode scores (IRIS results/data/RANDOM.json and HUMAN.json;
# docs/references.md#atari-reference-scores)
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}

GAMES: list[str] = list(REFERENCE_SCORES)


def ids() -> list[str]:
    """The 26 Atari100k games (ids without the ``atari100k/`` prefix)."""
    return list(GAMES)


def accepts(name: str) -> bool:
    """Whether ``name`` is one of the 26 games (``atari/<Game>`` accepts any ALE game through ``any_game``)."""
    return name in REFERENCE_SCORES


def make(name: str, any_game: bool = False, render_mode: str | None = None, **overrides: Any) -> gym.Env:
    """Build the env for ``name`` (a CamelCase game) with :class:`AtariConfig` ``overrides``.

    ``any_game=True`` allows every ROM that ale-py ships (``atari/<Game>``), otherwise only the 26 games.
    """
    valid = all_games() if any_game else GAMES
    if name not in valid:
        prefix = "atari" if any_game else "atari100k"
        raise ValueError(f"unknown Atari game {name!r}; valid ids: {[f'{prefix}/{g}' for g in valid]}")
    cfg = build_config(AtariConfig, name, overrides)
    return AtariEnv(cfg, render_mode=render_mode)


def human_normalised_score(game: str, score: float) -> float:
    """``(score - random) / (human - random)`` with the suite's reference scores for ``game``."""
    if game not in REFERENCE_SCORES:
        raise ValueError(f"no reference scores for game {game!r}; games with scores: {GAMES}")
    random, human = REFERENCE_SCORES[game]
    return (float(score) - random) / (human - random)
