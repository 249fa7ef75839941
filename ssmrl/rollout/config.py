"""Configuration of the rollout engine."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RolloutConfig:
    """Rollout settings.

    seed: run seed; env i is reset first with the i-th seed derived from it (``np.random.SeedSequence.spawn``).
    life_loss_key: ``info`` key whose truthy value marks a lost life; recorded in replay as the bool key
        "life_loss" on the record of the observation that followed it and counted per episode. None: not recorded.
    record: write steps to the replay buffer when one is given.
    """

    seed: int = 0
    life_loss_key: str | None = "life_loss"
    record: bool = True
