"""The config sections core code reads (``env``, ``train``) and :func:`resolve_device`.

The top-level run config, which composes these with the learners' own sections, is assembled on the CLI side
(``ssmrl.cli.config``, the composition root): core packages never import ``agents``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    id: str = "memory/four-rooms"
    num_envs: int = 1  # parallel environments for collection (stepped in this process)
    options: dict[str, Any] = field(default_factory=dict)  # suite-specific keyword arguments for envs.make
    eval_options: dict[str, Any] = field(default_factory=dict)  # replaces options' keys when evaluating


@dataclass
class TrainConfig:
    # The run's budget: environment steps (online agents), updates (offline and worldmodel agents; there is no
    # separate ``offline.updates``).
    steps: int = 10_000
    log_every: int = 500
    eval_every: int = 5_000  # 0: evaluate only at the end
    eval_episodes: int = 5
    checkpoint_every: int = 5_000
    video_every: int = 0  # 0: no periodic videos
    # Online world-model agents: at each evaluation, the world model's losses on this many windows of the
    # evaluation episodes and of the replay (0: not computed).
    eval_wm_windows: int = 16

    def __post_init__(self) -> None:
        for name in ("steps", "log_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        for name in ("eval_every", "eval_episodes", "video_every", "eval_wm_windows"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available on this machine; use device=cpu")
    return device
