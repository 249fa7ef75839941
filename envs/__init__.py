"""Environment suites behind one factory: ``envs.make("atari100k/Pong", seed=0)``.

Each suite is a module of this package exposing ``make(name: str, **overrides) -> gymnasium.Env`` (``name`` is the
part of the id after ``<suite>/``) and ``ids() -> list[str]`` (the ids it offers, without the suite prefix).
Suites are imported lazily so that a missing optional dependency only matters for the suite that needs it.
"""
from envs.factory import SUITES, make, make_vector, valid_ids

__all__ = ["SUITES", "make", "make_vector", "valid_ids"]
