"""Dreamer-style online agent: world model + imagination actor-critic (DreamerV3 recipe, Drama's constants)."""
from agents.dreamer.actor_critic import ActorCritic, ActorCriticLearner, lambda_returns
from agents.dreamer.config import ActorCriticConfig, OptimizerConfig
from ssmrl.optim import LaProp

__all__ = ["ActorCritic", "ActorCriticConfig", "ActorCriticLearner", "LaProp", "OptimizerConfig", "lambda_returns"]
