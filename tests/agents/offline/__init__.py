"""Tests of ``agents/offline``; :func:`write_tiny_d4rl` is the small D4RL-format file they (and the suite's d4rl
tests) train on."""
from pathlib import Path

import numpy as np

from agents.offline.io import write_d4rl

# Hopper-shaped metadata with its own normalisation references: normalised = 100 * (return + 20) / 320.
TINY_META = {"env_id": "Hopper-v5", "ref_min_score": -20.0, "ref_max_score": 300.0}


def write_tiny_d4rl(path: str | Path, n: int = 300) -> str:
    """A seeded ``n``-step Hopper-shaped dataset (11-d observations, 3-d actions, episodes of 50 steps ending in
    timeouts) at ``path``; returns the path."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[49::50] = True
    arrays = {"observations": obs, "actions": np.tanh(obs[:, :3]), "rewards": rng.normal(size=n).astype(np.float32),
              "terminals": np.zeros(n, bool), "timeouts": timeouts, "next_observations": np.roll(obs, -1, axis=0)}
    return str(write_d4rl(str(path), arrays, TINY_META))
