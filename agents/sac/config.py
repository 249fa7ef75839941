"""Typed configs for the SAC learner and the D4RL-style dataset collection."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SACConfig:
    """Soft actor-critic hyperparameters (defaults follow Haarnoja et al. 2018 / CleanRL's continuous SAC)."""

    hidden: int = 256
    layers: int = 2
    gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 1e-3
    alpha_lr: float = 1e-3
    init_alpha: float = 1.0
    autotune: bool = True  # learn the temperature towards target_entropy
    target_entropy: float | None = None  # None -> -action_dim
    policy_frequency: int = 2  # actor/alpha updates every n critic updates (TD3-style delay, done n times)
    learning_starts: int = 5_000  # uniform random actions before this many env steps
    buffer_size: int = 1_000_000
    device: str = "cpu"


LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")


@dataclass
class CollectConfig:
    """What ``collect_datasets`` trains and writes.

    ``env`` is a MuJoCo task name (``HalfCheetah``, ``Hopper``, ``Walker2d``) or any Gymnasium id with ``-v``.
    ``train_steps`` env steps of SAC produce the expert; ``medium`` is the snapshot whose evaluation return is
    closest to ``medium_fraction`` x the expert's (D4RL early-stopped SAC at about a third of expert return).
    """

    env: str = "Hopper"
    seed: int = 0
    train_steps: int = 1_000_000
    snapshot_every: int = 10_000  # env steps between policy snapshots (each evaluated)
    eval_episodes: int = 5  # episodes per snapshot evaluation
    medium_fraction: float = 1.0 / 3.0
    size: int = 1_000_000  # transitions per dataset (medium-expert gets 2x)
    levels: tuple[str, ...] = ("random", "medium", "expert", "medium-replay", "medium-expert")
    stochastic: bool = True  # sample from the policy while collecting (D4RL's data are not greedy rollouts)
    reference_episodes: int = 10  # episodes for the dataset-own random / expert reference returns
    max_episode_steps: int | None = None  # None -> the env's own time limit
    out_dir: str = "datasets"
    minari: bool = False  # also write each level as a Minari folder (needs ssmrl.replay.offline)
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad:
            raise ValueError(f"unknown dataset levels {bad}; valid levels: {list(LEVELS)}")
