"""Memory-benchmark metrics (S4WM's protocol) as pure numpy functions, and the per-env context/query split.

Protocol (see ``agents.worldmodel.evaluate``): observe ``context`` real records of an episode, then imagine the
next ``query`` records open loop with the recorded actions. Scored:

- reconstruction MSE: decoded posterior features vs. the observed frames (all context + query records);
- generation MSE: decoded imagined features vs. the true frames of the query phase, per step and averaged;
- reward-prediction accuracy in inference (heads on posterior features over the query records) and in
  imagination (heads on imagined features over the query phase): the prediction rounded to the nearest reward
  value the env can give equals the true reward's class.

MSEs are per pixel on images scaled to [0, 1] (S4WM does not state its scale; its numbers are not comparable
one to one).
"""
from __future__ import annotations

import numpy as np


def _to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float64 [0, 1]; float input is taken as already in [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    return images.astype(np.float64)


def frame_mse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame mean squared error over pixels and channels on the [0, 1] scale.

    pred, target: (..., H, W, C) uint8 or float in [0, 1] -> (...,) float64.
    """
    pred, target = _to_unit(pred), _to_unit(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.ndim < 3:
        raise ValueError(f"images must have shape (..., H, W, C), got {pred.shape}")
    return ((pred - target) ** 2).mean(axis=(-3, -2, -1))


def mse_per_step(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Generation MSE per imagined step: pred, target (B, L, H, W, C) -> (L,), the mean over the batch."""
    if np.asarray(pred).ndim != 5:
        raise ValueError(f"pred must have shape (B, L, H, W, C), got {np.asarray(pred).shape}")
    return frame_mse(pred, target).mean(axis=0)


def reward_classes(rewards: np.ndarray) -> np.ndarray:
    """The distinct reward values (sorted float64) a dataset shows: the classes of the accuracy metric."""
    values = np.unique(np.asarray(rewards, dtype=np.float64))
    if values.size == 0:
        raise ValueError("reward_classes needs at least one reward")
    return values


def nearest_class(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Index (int64, same shape as ``values``) of the nearest class value; ties go to the lower class."""
    classes = np.asarray(classes, dtype=np.float64)
    if classes.ndim != 1 or classes.size == 0 or np.any(np.diff(classes) <= 0):
        raise ValueError(f"classes must be a non-empty, strictly increasing 1-D array, got {classes}")
    values = np.asarray(values, dtype=np.float64)
    dist = np.abs(values[..., None] - classes)
    return dist.argmin(axis=-1)


def reward_accuracy(pred: np.ndarray, target: np.ndarray, classes: np.ndarray) -> float:
    """Fraction of steps whose predicted reward class equals the true one. pred, target: same shape."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.size == 0:
        raise ValueError("reward_accuracy needs at least one step")
    return float((nearest_class(pred, classes) == nearest_class(target, classes)).mean())


def majority_accuracy(target: np.ndarray, classes: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent true class: the chance level to compare against."""
    idx = nearest_class(np.asarray(target).reshape(-1), classes)
    if idx.size == 0:
        raise ValueError("majority_accuracy needs at least one step")
    return float(np.bincount(idx).max() / idx.size)


def default_episode_length(env_id: str, settings: dict | None = None) -> int:
    """Agent steps per collected episode when ``worldmodel.episode_length`` is 0.

    distracting-<w>: ``1.6 * w`` steps. The scripted walk averages 0.7 cells per step, so most episodes reach the
    far wall shortly before they end: over 100 scripted episodes the far wall is in view in 15% / 8% / 4% of the
    query records at widths 100 / 200 / 400 (docs/results.md, "Memory benchmark", has the command; it reveals the
    position to inference, not to imagination) and the rest of the query is hallway, where only memory gives the
    position;
    doors-keys: 150 (the scripted policy opens every door within about 60 steps, then wanders);
    four-rooms and anything else: 200.
    """
    name = env_id.split("/", 1)[-1]
    if name.startswith("distracting-"):
        width = int((settings or {}).get("width", name.rsplit("-", 1)[-1]))
        return max(8, int(1.6 * width))
    if name.startswith("doors-keys-"):
        return 150
    return 200


def default_split(env_id: str, episode_length: int, context: int = 0, query: int = 0) -> tuple[int, int]:
    """(context, query) record counts for an episode of ``episode_length`` agent steps (``+1`` records).

    Defaults follow each env's design:
    - distracting-<w>: context = 5/8 of the steps: the agent starts beside the left wall and walks into the
      hallway, where the frames no longer reveal the position; the query continues the walk, so predicting
      each reward needs the position carried over the context plus the recorded moves;
    - doors-keys-<n>: context = the first half (keys fetched, doors opened), query = the second half (wandering;
      doors come back into view and their state must be remembered);
    - other envs: half and half.
    ``context``/``query`` > 0 replace the defaults; they must fit: ``context + query <= episode_length + 1``.
    """
    if episode_length < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    records = episode_length + 1
    name = env_id.split("/", 1)[-1]
    if context == 0:
        context = episode_length * 5 // 8 if name.startswith("distracting-") else episode_length // 2
        context = max(1, context)
    if query == 0:
        query = records - context
    if context < 1 or query < 1 or context + query > records:
        raise ValueError(
            f"context ({context}) and query ({query}) must be >= 1 and fit into an episode of {records} records "
            f"(episode_length {episode_length} + 1)"
        )
    return context, query
