"""Environment suites behind one factory: ``envs.make("atari100k/Pong", seed=0)``.

Each suite is a module of this package exposing ``make(name: str, **overrides) -> gymnasium.Env`` (``name`` is the
part of the id after ``<suite>/``) and ``ids() -> list[str]`` (the ids it offers, without the suite prefix).
Suites are imported lazily so that a missing optional dependency only matters for the suite that needs it.
``envs.env_spec(env)`` describes an env's observations and actions for learners (:class:`envs.spec.EnvSpec`).
"""
from envs.factory import SUITES, make, make_vector, valid_ids
from envs.spec import EnvSpec, ObservationSpec, env_spec

__all__ = ["SUITES", "EnvSpec", "ObservationSpec", "env_spec", "make", "make_vector", "valid_ids"]
