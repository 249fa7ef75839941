"""Offline dataset files for the offline learners and dataset collection, through ``ssmrl.replay.offline``.

D4RL HDF5 layout: ``observations (N, O)``, ``actions (N, A)``, ``next_observations (N, O)``, ``rewards (N,)``,
``terminals (N,)`` (true terminations), ``timeouts (N,)`` (time limit / cut) and ``metadata/*``. Minari folders
are read into the same flat form (plus ``episode_ends``). The replay package owns the format code; this module
only picks the reader from the path and flattens dict observations.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from agents.offline.scores import D4RL_REF_SCORES
from ssmrl.replay.offline import read_d4rl, read_minari, validate_d4rl, write_d4rl, write_minari
from ssmrl.runs.config import ConfigError

__all__ = ["read_d4rl", "write_d4rl", "write_minari", "load_dataset", "flat_observations", "validate_d4rl"]


def flat_observations(obs: Any) -> np.ndarray:
    """``(N, O)`` float32 from an array or a dict of arrays (a single key is taken as is, several are concatenated
    in sorted key order)."""
    if isinstance(obs, dict):
        if not obs:
            raise ValueError("observations dict is empty")
        parts = [np.asarray(obs[k]).reshape(len(obs[k]), -1) for k in sorted(obs)]
        return np.concatenate(parts, axis=1).astype(np.float32)
    arr = np.asarray(obs)
    return arr.reshape(len(arr), -1).astype(np.float32)


_MUJOCO_TASKS = tuple(D4RL_REF_SCORES)  # the locomotion tasks D4RL (and this suite's collection) name


def task_from_path(path: str) -> str | None:
    """The MuJoCo task a D4RL or Minari dataset name refers to: ``hopper-medium-v2.hdf5`` -> ``hopper``,
    ``.../mujoco/hopper/medium-v0`` -> ``hopper``; None when the name says nothing."""
    parts = [p.lower() for p in os.path.normpath(path).split(os.sep) if p]
    for i, part in enumerate(parts[:-1]):
        if part == "mujoco" and parts[i + 1] in _MUJOCO_TASKS:  # Minari ids: mujoco/<task>/<level>-v0
            return parts[i + 1]
    stem = os.path.splitext(parts[-1])[0] if parts else ""
    for task in _MUJOCO_TASKS:
        if stem == task or stem.startswith((f"{task}-", f"{task}_")):
            return task
    return None


def load_dataset(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A D4RL ``.hdf5`` file or a Minari dataset folder as flat arrays + metadata (observations flattened).
    Any problem with the file (missing, empty, not HDF5, failing validation) raises ``ConfigError`` naming it."""
    try:
        if os.path.isdir(path):
            data, meta = read_minari(path)
        elif os.path.isfile(path):
            if os.path.getsize(path) == 0:
                raise ValueError("the file is empty")
            data, meta = read_d4rl(path)
        else:
            raise ValueError("neither a D4RL .hdf5 file nor a Minari dataset folder exists there")
    except FileNotFoundError as err:  # e.g. a Minari folder without its metadata
        raise ConfigError(f"offline dataset {path}: {err}") from err
    except OSError as err:  # h5py: "file signature not found" and friends, without the path
        raise ConfigError(f"offline dataset {path}: not a readable HDF5 file ({err})") from err
    except (ValueError, KeyError) as err:
        raise ConfigError(f"offline dataset {path}: {err}") from err
    if not (meta.get("env_id") or meta.get("task")):
        task = task_from_path(path)
        if task is not None:
            meta = {**meta, "task": task, "task_source": f"inferred from the dataset's name ({path})"}
    data = dict(data)
    for k in ("observations", "next_observations"):
        if k in data:
            data[k] = flat_observations(data[k])
    return data, meta
