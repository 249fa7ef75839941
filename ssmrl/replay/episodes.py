"""Episodes of a flat step stream: where they begin and end, and the rewards still to come in each."""
from __future__ import annotations

import numpy as np


def episode_bounds(is_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open ``[start, end)`` index ranges of the episodes of a stream.

    is_first: (T,) bool, True where a step begins an episode (index 0 always does, flagged or not).
    Returns ``(starts, ends)``: two (E,) int64 arrays, ``ends[i] == starts[i + 1]`` and ``ends[-1] == T``
    (both empty when T == 0)."""
    first = np.asarray(is_first, bool).reshape(-1)
    if first.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(first)
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    starts = starts.astype(np.int64)
    return starts, np.append(starts[1:], len(first)).astype(np.int64)


def returns_to_go(rewards: np.ndarray, is_first: np.ndarray, discount: float = 1.0) -> np.ndarray:
    """``R_t = sum_{k >= t, same episode} discount^(k - t) * rewards_k``, restarted at every ``is_first``.

    rewards: (T,), ``rewards_t`` the reward for the action taken at step t (for step records, where
    ``reward_t`` led *into* o_t, pass the next record's reward and 0 on each episode's last record);
    is_first: (T,) bool. Returns (T,) float64, summed from each episode's end backwards."""
    r = np.asarray(rewards, np.float64).reshape(-1)
    out = np.zeros(len(r), np.float64)
    for s, e in zip(*episode_bounds(is_first)):
        if discount == 1.0:  # suffix sums, same additions in the same order as the loop below
            out[s:e] = np.cumsum(r[s:e][::-1])[::-1]
            continue
        acc = 0.0
        for t in range(e - 1, s - 1, -1):
            acc = r[t] + discount * acc
            out[t] = acc
    return out
