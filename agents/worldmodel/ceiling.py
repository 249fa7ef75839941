"""The ceiling of the reward-accuracy metric: how well the reward can be predicted from the env's true state.

A world model scores reward accuracy by carrying the hidden state (e.g. the hallway position) in its latent state.
The ceiling replaces the latent by the ground truth the memory envs put into ``info`` (``truth/<key>`` records,
:func:`agents.worldmodel.data.episode_records` with ``truth=True``): a softmax regression on one-hot codes of the
chosen truth keys (a lookup table per key: every distinct value, scalar or array row, is one category; a value
not seen in training leaves only the bias; ``a+b`` is one key whose categories are the pairs, for rules that
combine keys, like the cued hallway's exclusive or) is fitted on training records and scored with the same class rule
(:func:`agents.worldmodel.metrics.reward_accuracy`'s nearest class) on the query records of the held-out windows.
On ``memory/distracting-<w>`` the reward is a function of ``position`` alone (of ``position+cue`` with the cue
option), so the ceiling should be ~1.0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from agents.worldmodel import metrics as M

# truth keys the ceiling uses by default, per env family (``memory/<family>-...``); the hallway with its cue option
# needs the pair, see default_keys
DEFAULT_KEYS = {"distracting": ("position",)}


def default_keys(env_id: str, options: dict | None = None) -> tuple[str, ...]:
    """The default truth keys for ``env_id`` built with ``options`` (the run's ``env.options``); envs without a
    default need the keys given explicitly."""
    name = env_id.split("/", 1)[-1]
    if name.startswith("distracting-") and (options or {}).get("cue"):
        return ("position+cue",)
    for family, keys in DEFAULT_KEYS.items():
        if name.startswith(family + "-"):
            return keys
    raise ValueError(f"no default truth keys for {env_id!r}; name them (e.g. --ceiling-keys agent,doors_open)")


def _rows(values: np.ndarray) -> list[tuple]:
    values = np.asarray(values)
    return [tuple(r) for r in values.reshape(len(values), -1).tolist()]


class TruthFeatures:
    """One-hot codes of truth keys: ``fit`` learns each key's categories, ``transform`` -> (N, D) float64."""

    def __init__(self, keys: tuple[str, ...] | list[str]):
        if not keys:
            raise ValueError("TruthFeatures needs at least one truth key")
        self.keys = tuple(keys)
        self.vocab: dict[str, dict[tuple, int]] = {}

    def _column(self, truth: dict[str, np.ndarray], key: str) -> np.ndarray:
        """(N, ...) values of ``key``; for ``a+b``, (N, Da + Db) rows of the parts side by side."""
        parts = []
        for part in key.split("+"):
            name = part if part.startswith("truth/") else f"truth/{part}"
            if name not in truth:
                raise KeyError(f"truth key {part!r} not in the records "
                               f"(have {sorted(k for k in truth if k.startswith('truth/'))})")
            parts.append(np.asarray(truth[name]))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)

    def fit(self, truth: dict[str, np.ndarray]) -> "TruthFeatures":
        for key in self.keys:
            self.vocab[key] = {v: i for i, v in enumerate(sorted(set(_rows(self._column(truth, key)))))}
        return self

    def transform(self, truth: dict[str, np.ndarray]) -> np.ndarray:
        blocks = []
        for key in self.keys:
            vocab = self.vocab[key]
            rows = _rows(self._column(truth, key))
            block = np.zeros((len(rows), len(vocab)))
            idx = np.array([vocab.get(r, -1) for r in rows], np.int64)
            seen = idx >= 0
            block[np.flatnonzero(seen), idx[seen]] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1)


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 300, lr: float = 1.0,
                l2: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression of class indices ``y`` (N,) on features ``x`` (N, D): full-batch gradient descent, each
    weight's gradient scaled by 1 / (its feature's total), which suits one-hot codes. Returns (W (D, K), b (K,))."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.int64)
    target = np.eye(n_classes)[y]
    scale = 1.0 / np.maximum(x.sum(0), 1.0)[:, None]
    w, b = np.zeros((x.shape[1], n_classes)), np.log(target.mean(0) + 1e-6)
    for _ in range(steps):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        err = p - target
        w -= lr * (scale * (x.T @ err) + l2 * w)
        b -= lr * err.mean(0)
    return w, b


def predict(w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Class indices (N,) of the fitted softmax regression."""
    return np.argmax(np.asarray(x, np.float64) @ w + b, axis=1)


def query_records(windows: dict[str, np.ndarray], context: int, query: int) -> dict[str, np.ndarray]:
    """The records the memory metrics score (C .. C+Q-1 of every window), flattened: ``{key: (E * Q, ...)}``."""
    return {k: np.asarray(v)[:, context:context + query].reshape(-1, *np.shape(v)[2:]) for k, v in windows.items()}


class TruthReward:
    """The reward class as a function of truth keys: ``fit(train)`` on training records (``{key: (N, ...)}`` with
    ``reward``, ``is_first`` and the truth keys; first records, whose reward is 0 by convention, are left out),
    ``predict(records)`` -> class indices (N,) into ``classes``."""

    def __init__(self, keys: tuple[str, ...] | list[str], classes: np.ndarray):
        self.features = TruthFeatures(keys)
        self.classes = np.asarray(classes, np.float64)
        self.fit_records = 0

    def fit(self, train: dict[str, np.ndarray]) -> "TruthReward":
        keep = ~np.asarray(train["is_first"], bool)
        fit_set = {k: np.asarray(v)[keep] for k, v in train.items()}
        self.features.fit(fit_set)
        self.w, self.b = fit_softmax(self.features.transform(fit_set), M.nearest_class(fit_set["reward"], self.classes),
                                     len(self.classes))
        self.fit_records = int(keep.sum())
        return self

    def predict(self, records: dict[str, np.ndarray]) -> np.ndarray:
        return predict(self.w, self.b, self.features.transform(records))


def ceiling(train: dict[str, np.ndarray], sets: dict[str, dict[str, np.ndarray]], classes: np.ndarray,
            keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Fit on the training records ``train`` (``{key: (N, ...)}`` with ``reward``, ``is_first`` and the truth keys;
    first records, whose reward is 0 by convention, are left out) and score each named set of records
    (``{name: records}``, e.g. :func:`query_records` of the held-out windows).

    Returns ``keys``, ``fit_records`` (records fitted on) and per set ``<name>_acc`` (the ceiling),
    ``<name>_majority`` (always the most frequent class) and ``<name>_records``.
    """
    model = TruthReward(keys, classes).fit(train)
    out: dict[str, Any] = {"keys": list(model.features.keys), "fit_records": model.fit_records}
    for name, records in sets.items():
        pred = model.predict(records)
        true = M.nearest_class(records["reward"], model.classes)
        out[f"{name}_acc"] = float((pred == true).mean())
        out[f"{name}_majority"] = M.majority_accuracy(records["reward"], classes)
        out[f"{name}_records"] = int(len(true))
    return out
