"""One factory for every suite, plus a vector version with distinct, derived seeds."""
from __future__ import annotations

import importlib
from typing import Any, Callable

import gymnasium as gym

from ssmrl.runs.seeding import derived_seeds

# suite prefix -> (module, pip extra that provides its optional dependencies)
SUITES: dict[str, tuple[str, str | None]] = {
    "atari100k": ("envs.atari100k", "atari"),
    "atari": ("envs.atari100k", "atari"),
    "stori": ("envs.stori", "atari"),
    "dmc": ("envs.dmc", "dmc"),
    "memory": ("envs.memory", None),
    "mujoco": ("envs.mujoco", "mujoco"),
}


def _suite_module(suite: str):
    if suite not in SUITES:
        raise ValueError(f"unknown environment suite {suite!r}; valid suites: {sorted(SUITES)}")
    module, extra = SUITES[suite]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        hint = f' (pip install "ssmrl[{extra}]")' if extra else ""
        raise ModuleNotFoundError(
            f"environment suite {suite!r} needs the missing package {err.name!r}{hint}"
        ) from err


def valid_ids(suite: str) -> list[str]:
    """All ids a suite offers, with the suite prefix."""
    return [f"{suite}/{name}" for name in _suite_module(suite).ids()]


def make(env_id: str, seed: int | None = None, **overrides: Any) -> gym.Env:
    """Build one environment from ``<suite>/<name>``; ``seed`` seeds its first ``reset``."""
    suite, _, name = env_id.partition("/")
    if not name:
        raise ValueError(f"environment id {env_id!r} must look like '<suite>/<name>'; suites: {sorted(SUITES)}")
    module = _suite_module(suite)
    if suite == "atari":  # any ALE game, not only the 26 of Atari100k
        overrides.setdefault("any_game", True)
    elif name not in module.ids() and not getattr(module, "accepts", lambda n: False)(name):
        raise ValueError(f"unknown environment id {env_id!r}; valid ids: {valid_ids(suite)}")
    env = module.make(name, **overrides)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector(env_id: str, num_envs: int, seed: int = 0, asynchronous: bool = False, num_workers: int | None = None,
                **overrides: Any) -> gym.vector.VectorEnv:
    """``num_envs`` copies with distinct derived seeds, reset at the end of an episode within the same step.

    ``asynchronous=True`` steps them in ``num_workers`` ``spawn`` processes (default: one per core), each owning a
    slice of the envs (:class:`envs.vector.BatchedAsyncVectorEnv`); otherwise all run in this process.
    """
    seeds = derived_seeds(seed, num_envs)
    fns: list[Callable[[], gym.Env]] = [
        (lambda s=s: make(env_id, seed=s, **overrides)) for s in seeds
    ]
    if asynchronous:
        from envs.vector import BatchedAsyncVectorEnv

        return BatchedAsyncVectorEnv(fns, num_workers=num_workers)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
