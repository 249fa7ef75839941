"""One place that builds the MuJoCo tasks the datasets come from (switchable to the ``mujoco/`` env suite)."""
from __future__ import annotations

import importlib.util

import gymnasium as gym

# D4RL task names (lower case) -> Gymnasium MuJoCo v5 ids
MUJOCO_V5 = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}


def gym_id(env: str) -> str:
    """``Hopper`` / ``hopper`` / ``mujoco/Hopper`` / ``Hopper-v5`` -> ``Hopper-v5``; other ``X-vN`` ids pass through."""
    name = env.split("/", 1)[1] if env.startswith("mujoco/") else env
    if "-v" in name:
        return name
    key = name.lower()
    if key not in MUJOCO_V5:
        raise ValueError(f"unknown MuJoCo task {env!r}; expected one of {sorted(MUJOCO_V5)} or a Gymnasium id 'Name-vN'")
    return MUJOCO_V5[key]


def task_key(env: str) -> str:
    """The D4RL task key (``hopper``) of an env name, used for reference scores and file names."""
    return gym_id(env).split("-v")[0].lower()


def _preload_triton() -> None:
    """Import triton (through torch._dynamo) before ``envs.mujoco`` probes EGL: on the dev box, loading triton's
    LLVM after Mesa's EGL has been initialised segfaults (first optimizer built after an env was made)."""
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("torch._dynamo")


def make_env(env: str, seed: int | None = None, max_episode_steps: int | None = None) -> gym.Env:
    """Build the task; uses ``envs.make("mujoco/<Name>")`` when that suite exists, else Gymnasium directly."""
    gid = gym_id(env)
    _preload_triton()
    if importlib.util.find_spec("envs.mujoco") is not None and gid.endswith("-v5") and gid.split("-v")[0].lower() in MUJOCO_V5:
        import envs as suites

        kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        e = suites.make(f"mujoco/{gid.split('-v')[0]}", seed=seed, flat_obs=True, **kw)  # flat float32 (D4RL form)
    else:
        e = gym.make(gid, max_episode_steps=max_episode_steps) if max_episode_steps else gym.make(gid)
        if seed is not None:
            e.reset(seed=seed)
            e.action_space.seed(seed)
    return e
