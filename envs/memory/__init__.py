"""Memory suites with known ground truth, for scoring world models (S4WM-style), pure numpy.

Ids (after ``memory/``): ``distracting-<100|200|400>`` (any width >= 2 accepted), ``doors-keys-<3|5|7>``
(1..7 accepted) and ``four-rooms``. Observations are ``{"image": uint8 (64, 64, 3)}``; actions are Discrete;
``info`` carries the ground truth every step and ``info["settings"]`` (every setting) at reset. Rules are in
the docstrings of :mod:`envs.memory.distracting`, :mod:`envs.memory.doors_keys` and
:mod:`envs.memory.four_rooms`. Each env has a scripted data-collection policy: ``scripted_policy(env, rng)``;
``collect_episode(env, policy, seed)`` runs one episode into arrays (images, actions, rewards, ground truth).

``make(name, **overrides)``: ``overrides`` are fields of the env's config dataclass (see
:mod:`envs.memory.config`) plus ``render_mode``.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import gymnasium as gym
import numpy as np

from envs.memory.collect import collect_episode
from envs.memory.config import DistractingConfig, DoorsKeysConfig, FourRoomsConfig
from envs.memory.distracting import DistractingHallway, DistractingPolicy
from envs.memory.doors_keys import DoorsKeys, DoorsKeysPolicy
from envs.memory.four_rooms import FourRooms, FourRoomsPolicy

__all__ = [
    "DistractingConfig", "DoorsKeysConfig", "FourRoomsConfig", "DistractingHallway", "DoorsKeys", "FourRooms",
    "DistractingPolicy", "DoorsKeysPolicy", "FourRoomsPolicy", "ids", "accepts", "make", "scripted_policy",
    "collect_episode",
]

_DISTRACTING = re.compile(r"distracting-(\d+)")
_DOORS = re.compile(r"doors-keys-(\d+)")


def ids() -> list[str]:
    """The preset ids (without the ``memory/`` prefix)."""
    return ["distracting-100", "distracting-200", "distracting-400", "doors-keys-3", "doors-keys-5",
            "doors-keys-7", "four-rooms"]


def accepts(name: str) -> bool:
    """True for any well-formed id: ``distracting-<width >= 2>``, ``doors-keys-<1..7>``, ``four-rooms``."""
    if name == "four-rooms":
        return True
    if m := _DISTRACTING.fullmatch(name):
        return int(m.group(1)) >= 2
    if m := _DOORS.fullmatch(name):
        return 1 <= int(m.group(1)) <= 7
    return False


def _config(cls, preset: dict[str, Any], overrides: dict[str, Any]):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown} for {cls.__name__}; valid: {sorted(fields)}")
    clash = sorted(k for k in overrides if k in preset and overrides[k] != preset[k])
    if clash:
        raise ValueError(f"setting(s) {clash} are fixed by the id; got {[overrides[k] for k in clash]}")
    return cls(**{**preset, **overrides})


def make(name: str, render_mode: str | None = None, **overrides: Any) -> gym.Env:
    """Build ``memory/<name>``; see the module docstring."""
    if not accepts(name):
        raise ValueError(f"unknown memory env {name!r}; valid: {ids()} (or distracting-<width>, doors-keys-<1..7>)")
    if m := _DISTRACTING.fullmatch(name):
        return DistractingHallway(_config(DistractingConfig, {"width": int(m.group(1))}, overrides), render_mode)
    if m := _DOORS.fullmatch(name):
        return DoorsKeys(_config(DoorsKeysConfig, {"n_keys": int(m.group(1))}, overrides), render_mode)
    return FourRooms(_config(FourRoomsConfig, {}, overrides), render_mode)


def scripted_policy(env: gym.Env, rng: np.random.Generator, **kwargs: Any):
    """The scripted data-collection policy for a memory env; returns an object with ``act(obs, info) -> int``."""
    base = env.unwrapped
    if isinstance(base, DistractingHallway):
        return DistractingPolicy(base.config.width, rng, **kwargs)
    if isinstance(base, DoorsKeys):
        return DoorsKeysPolicy(base.config.n_keys, rng, **kwargs)
    if isinstance(base, FourRooms):
        return FourRoomsPolicy(rng, **kwargs)
    raise TypeError(f"env must be a memory-suite env, got {type(base).__name__}")
