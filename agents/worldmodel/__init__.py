"""World-model-only training from a dataset of episodes and the S4WM-style memory benchmark metrics.

``train(run)`` is the ``ssmrl train agent=worldmodel`` entry point; ``metrics`` holds the pure metric functions,
``evaluate`` the protocol (observe a context, imagine the query phase open loop), ``data`` the datasets.
"""
from agents.worldmodel.config import WorldModelTrainConfig

__all__ = ["WorldModelTrainConfig"]
