"""Dreamer-style online agent: world model + imagination actor-critic (DreamerV3 recipe, Drama's constants).

The names below are imported on first use, so that reading the config classes (``agents.dreamer.config``, e.g. for
``ssmrl config``) does not load the networks.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ActorCritic": "agents.dreamer.actor_critic",
    "ActorCriticLearner": "agents.dreamer.actor_critic",
    "lambda_returns": "agents.dreamer.actor_critic",
    "ActorCriticConfig": "agents.dreamer.config",
    "OptimizerConfig": "agents.dreamer.config",
    "LaProp": "ssmrl.optim",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
