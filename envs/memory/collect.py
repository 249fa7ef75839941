"""Episodes from the scripted policies, as arrays (for datasets and for world-model scoring)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def collect_episode(env: gym.Env, policy: Any, seed: int | None = None, max_steps: int | None = None) -> dict:
    """Run one episode of ``policy`` (``act(obs, info) -> int``) from ``env.reset(seed=seed)``.

    Returns, with T the number of steps taken (the episode's length, or ``max_steps`` if smaller):
    ``image`` (T+1, H, W, 3) uint8 (observations before and after each step), ``action`` (T,) int64,
    ``reward`` (T,) float32, ``terminated`` / ``truncated`` (T,) bool, ``truth/<key>`` (T+1, ...) for every
    numeric ground-truth entry of ``info``, and ``settings`` (the dict from reset).
    """
    obs, info = env.reset(seed=seed)
    settings = info.pop("settings")
    images, actions, rewards, terms, truncs, truths = [obs["image"]], [], [], [], [], [info]
    done = False
    while not done and (max_steps is None or len(actions) < max_steps):
        action = int(policy.act(obs, info))
        obs, reward, terminated, truncated, info = env.step(action)
        images.append(obs["image"])
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        truths.append(info)
        done = terminated or truncated
    out: dict[str, Any] = {
        "image": np.stack(images),
        "action": np.asarray(actions, np.int64),
        "reward": np.asarray(rewards, np.float32),
        "terminated": np.asarray(terms, bool),
        "truncated": np.asarray(truncs, bool),
        "settings": settings,
    }
    for key in truths[0]:
        values = [t[key] for t in truths]
        if isinstance(values[0], (bool, int, float, np.ndarray, np.integer, np.bool_)):
            out[f"truth/{key}"] = np.stack([np.asarray(v) for v in values])
    return out
