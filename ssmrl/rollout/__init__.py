"""Rollout engine: steps N environments with a recurrent policy (state carried, reset on ``first``), writes
every step to replay and reports finished episodes."""
from ssmrl.rollout.config import RolloutConfig
from ssmrl.rollout.engine import EpisodeStats, RandomPolicy, RolloutEngine, derived_seeds, obs_to_dict, reset_where

__all__ = ["EpisodeStats", "RandomPolicy", "RolloutConfig", "RolloutEngine", "derived_seeds", "obs_to_dict", "reset_where"]
