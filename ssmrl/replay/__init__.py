"""Replay: per-environment step streams, (B, L) window sampling (uniform, recency, Drama's DFS), append-only
chunk persistence with a committed index, and offline datasets (D4RL, Minari) in the same structure."""
from ssmrl.replay.buffer import FLAGS, ReplayBuffer, infer_spec, to_torch
from ssmrl.replay.config import ReplayConfig
from ssmrl.replay.episodes import episode_bounds, returns_to_go
from ssmrl.replay.offline import (
    DatasetError,
    load_d4rl,
    load_minari,
    read_d4rl,
    read_minari,
    write_d4rl,
    write_minari,
)
from ssmrl.replay.samplers import Candidates, DFSSampler, RecencySampler, Sampler, UniformSampler, make_sampler
from ssmrl.replay.storage import ReplayStorageError

__all__ = [
    "FLAGS",
    "Candidates",
    "DatasetError",
    "DFSSampler",
    "episode_bounds",
    "RecencySampler",
    "ReplayBuffer",
    "ReplayConfig",
    "ReplayStorageError",
    "Sampler",
    "UniformSampler",
    "infer_spec",
    "load_d4rl",
    "load_minari",
    "read_d4rl",
    "read_minari",
    "returns_to_go",
    "write_d4rl",
    "write_minari",
    "make_sampler",
    "to_torch",
]
