"""The top-level config of a run: what ``configs/*.yaml`` presets and ``key.sub=value`` overrides fill in.

This module is the composition root: each section's dataclass lives with the code it configures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
from agents.offline.config import OfflineConfig
from agents.worldmodel.config import WorldModelTrainConfig
from ssmrl.replay.config import ReplayConfig


@dataclass
class EnvConfig:
    id: str = "memory/four-rooms"
    num_envs: int = 1  # parallel environments for collection
    asynchronous: bool = False  # subprocess workers (spawn) instead of stepping in-process
    options: dict[str, Any] = field(default_factory=dict)  # suite-specific keyword arguments for envs.make
    eval_options: dict[str, Any] = field(default_factory=dict)  # replaces options' keys when evaluating


@dataclass
class TrainConfig:
    steps: int = 10_000  # environment steps (online) or updates (offline)
    log_every: int = 500
    eval_every: int = 5_000  # 0: evaluate only at the end
    eval_episodes: int = 5
    checkpoint_every: int = 5_000
    video_every: int = 0  # 0: no periodic videos

    def __post_init__(self) -> None:
        for name in ("steps", "log_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        for name in ("eval_every", "eval_episodes", "video_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")


@dataclass
class Config:
    agent: str = "random"
    size: str = "default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # online world-model agents (agent=drama|s4wm|s5wm|rssm|transformer)
    wm: WorldModelSection = field(default_factory=WorldModelSection)
    ac: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    dreamer: DreamerConfig = field(default_factory=DreamerConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)  # num_streams, seed, directory set by the learner
    worldmodel: WorldModelTrainConfig = field(default_factory=WorldModelTrainConfig)  # agent=worldmodel
    # offline agents (ssmrl offline agent=dm|dt|bc dataset=...); seed, device and train.* override the same fields
    dataset: str | None = None
    offline: OfflineConfig = field(default_factory=OfflineConfig)


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available on this machine; use device=cpu")
    return device
