"""Datasets of episodes for world-model-only training: scripted-policy collection, HDF5 loading, episode views.

Records follow the replay convention (``ssmrl/replay/buffer.py``): an episode of T agent steps is T + 1 records;
record t holds the observation o_t, the action a_t taken from it (zeros on the last record), the reward r_t
received on arriving at o_t (0 on the first record), and ``is_first`` / ``is_last`` / ``is_terminal``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import envs
from envs.memory import collect_episode, scripted_policy
from ssmrl.replay import episode_bounds

RECORD_KEYS = ("action", "reward", "is_first", "is_last", "is_terminal")


def episode_records(episode: dict[str, Any], truth: bool = False) -> dict[str, np.ndarray]:
    """One episode from :func:`envs.memory.collect_episode` (images (T+1, ...), actions/rewards (T,)) -> records
    ``{key: (T + 1, ...)}`` with keys ``image`` and :data:`RECORD_KEYS`; ``truth`` adds the env's ground truth
    ``truth/<key>`` (T + 1, ...) (record t: the state at o_t, e.g. ``truth/position``)."""
    images = np.asarray(episode["image"])
    actions = np.asarray(episode["action"], dtype=np.int64)
    rewards = np.asarray(episode["reward"], dtype=np.float32)
    t = len(actions)
    if len(images) != t + 1 or len(rewards) != t:
        raise ValueError(f"episode must hold T+1 images and T actions/rewards, got {len(images)}, {t}, {len(rewards)}")
    action = np.zeros(t + 1, np.int64)
    action[:t] = actions
    reward = np.zeros(t + 1, np.float32)
    reward[1:] = rewards
    flags = {k: np.zeros(t + 1, bool) for k in ("is_first", "is_last", "is_terminal")}
    flags["is_first"][0] = True
    flags["is_last"][t] = True
    if t and bool(np.asarray(episode.get("terminated", np.zeros(t, bool)))[-1]):
        flags["is_terminal"][t] = True
    out = {"image": images, "action": action, "reward": reward, **flags}
    if truth:
        out.update({k: np.asarray(v) for k, v in episode.items() if k.startswith("truth/")})
    return out


def collection_env(env_id: str, options: dict[str, Any], episode_length: int):
    """The memory env that scripted-policy episodes of ``episode_length`` steps are collected from."""
    if not env_id.startswith("memory/"):
        raise ValueError(f"collection with a scripted policy needs a memory env (memory/...), got {env_id!r}; "
                         "give worldmodel.dataset=<file.hdf5> worldmodel.stream=0 for other envs")
    env = envs.make(env_id, **options)
    max_steps = getattr(env.unwrapped, "max_steps", None)
    if max_steps is not None and max_steps < episode_length:
        raise ValueError(f"episode_length {episode_length} exceeds the env's max_steps {max_steps}; "
                         f"raise env.options.max_steps")
    return env


def _one_episode(env, policy, seed: int, episode_length: int, truth: bool, label: str) -> tuple[dict, dict]:
    episode = collect_episode(env, policy, seed=seed, max_steps=episode_length)
    if len(episode["action"]) != episode_length:
        raise ValueError(f"{label} ended after {len(episode['action'])} steps, expected {episode_length}")
    return episode_records(episode, truth), episode["settings"]


def collect_records(env_id: str, options: dict[str, Any], episodes: int, episode_length: int,
                    seed: int, truth: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Collect ``episodes`` episodes of ``episode_length`` steps with the env's scripted policy (a fixed set).

    Episode i resets with seed ``seed + i``; the policy draws from ``np.random.default_rng(seed)``.
    Returns (records ``{key: (episodes * (episode_length + 1), ...)}`` in episode order, the env settings).
    """
    env = collection_env(env_id, options, episode_length)
    policy = scripted_policy(env, np.random.default_rng(seed))
    parts, settings = [], {}
    for i in range(episodes):
        records, settings = _one_episode(env, policy, seed + i, episode_length, truth, f"episode {i}")
        parts.append(records)
    env.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, settings


def stream_seeds(seed: int, index: int) -> tuple[int, int]:
    """(env reset seed, policy generator seed) of episode ``index`` of the stream with base ``seed``."""
    env_seed, policy_seed = np.random.SeedSequence([seed % 2**63, index]).generate_state(2)
    return int(env_seed), int(policy_seed)


def stream_episodes(env, seed: int, indices, episode_length: int,
                    truth: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Episodes ``indices`` of the scripted-policy stream with base ``seed`` from ``env`` (a
    :func:`collection_env`): ``({key: (len(indices), episode_length + 1, ...)}, env settings)``.

    Episode k depends on (seed, k) only (:func:`stream_seeds`: its own reset seed and policy generator), not on
    which episodes were generated before, so any part of the stream can be regenerated (e.g. on resume).
    """
    parts, settings = [], {}
    for k in indices:
        env_seed, policy_seed = stream_seeds(seed, int(k))
        policy = scripted_policy(env, np.random.default_rng(policy_seed))
        records, settings = _one_episode(env, policy, env_seed, episode_length, truth, f"stream episode {k}")
        parts.append(records)
    if not parts:
        raise ValueError("stream_episodes needs at least one index")
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}, settings


def load_hdf5(path: str | Path) -> dict[str, np.ndarray]:
    """Records ``{key: (N, ...)}`` of a D4RL-style HDF5 file (see ``ssmrl.replay.offline``): observation keys
    plus :data:`RECORD_KEYS` (discrete actions stay integer indices)."""
    from ssmrl.replay.offline import load_d4rl

    buffer = load_d4rl(path, verbose=False)
    arrays = buffer.stream_arrays(0)
    keys = [k for k in ("image", "vector") if k in arrays]
    if not keys:
        raise ValueError(f"{path}: the dataset has no 'image' or 'vector' observations (keys {sorted(arrays)})")
    return {k: arrays[k] for k in (*keys, *RECORD_KEYS)}


def write_hdf5(path: str | Path, records: dict[str, np.ndarray], metadata: dict[str, Any] | None = None) -> Path:
    """Write step records (with ``image``) as a D4RL-style HDF5 file readable by :func:`load_hdf5`."""
    from ssmrl.replay.offline import write_d4rl

    first = np.asarray(records["is_first"], bool)
    n = len(first)
    # transitions are record pairs (t, t+1) inside an episode: t is not the last record of its episode
    last = np.zeros(n, bool)
    last[-1] = True
    last[:-1] |= first[1:]
    src = np.flatnonzero(~last)
    ends = last[src + 1]
    data = {
        "observations": records["image"][src],
        "next_observations": records["image"][src + 1],
        "actions": np.asarray(records["action"])[src],
        "rewards": np.asarray(records["reward"], np.float32)[src + 1],
        "terminals": np.asarray(records["is_terminal"], bool)[src + 1] & ends,
        "timeouts": ends & ~np.asarray(records["is_terminal"], bool)[src + 1],
    }
    return write_d4rl(path, data, metadata)


def split_episodes(records: dict[str, np.ndarray], held_out: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split a record stream into (training records, the last ``held_out`` episodes)."""
    starts, _ = episode_bounds(records["is_first"])
    if len(starts) <= held_out:
        raise ValueError(f"the dataset has {len(starts)} episodes; holding out {held_out} for evaluation leaves none "
                         "to train on (lower worldmodel.eval_episodes)")
    cut = starts[-held_out]
    return {k: v[:cut] for k, v in records.items()}, {k: v[cut:] for k, v in records.items()}


def episode_windows(records: dict[str, np.ndarray], length: int, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first ``length`` records of every episode that has at least that many (of the first ``limit`` such
    episodes when given): ``{key: (E, length, ...)}``."""
    starts, ends = episode_bounds(records["is_first"])
    starts = starts[ends - starts >= length][:limit]
    if not starts.size:
        raise ValueError(f"no episode has the {length} records the metrics need (context + query)")
    idx = starts[:, None] + np.arange(length)
    return {k: np.asarray(v)[idx] for k, v in records.items()}
