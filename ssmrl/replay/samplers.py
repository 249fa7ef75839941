"""Window-start samplers: uniform, recency-weighted and Drama's DFS.

A sampler picks window starts among the ``Candidates`` the buffer offers (every valid start of a
``(B, L)`` window). Each sampler owns its own seeded ``np.random.Generator`` and exposes its whole state
(generator state, counts) through ``state_dict``/``load_state_dict`` so that a resumed run draws the same
samples. Storage slots are ``stream * stream_capacity + position``; the buffer calls ``on_overwrite(slots)``
when FIFO eviction reuses a slot so that per-slot statistics restart at zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssmrl.replay.config import ReplayConfig

PURPOSES = ("train", "imagination")


@dataclass
class Candidates:
    """All valid window starts, flat over streams (K candidates).

    stream: (K,) stream index; start: (K,) absolute step index (per stream) of the window's first step;
    slot: (K,) storage slot ``stream * stream_capacity + start % stream_capacity``;
    age: (K,) steps from the window's end to the newest stored step of its stream (0 for the newest window).
    """

    stream: np.ndarray
    start: np.ndarray
    slot: np.ndarray
    age: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _check(purpose: str, k: int, cands: Candidates) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if k < 1:
        raise ValueError(f"batch size must be >= 1, got {k}")
    if len(cands) == 0:
        raise ValueError("no valid window start in the buffer (too few steps stored for this window length)")


class Sampler:
    """Base class: uniform with replacement."""

    kind = "uniform"

    def __init__(self, config: ReplayConfig, num_slots: int):
        self.config = config
        self.num_slots = num_slots
        self.rng = np.random.default_rng(config.seed)

    def probabilities(self, cands: Candidates, purpose: str = "train") -> np.ndarray:
        """P(candidate) for the next draw: (K,) float64 summing to 1."""
        return np.full(len(cands), 1.0 / len(cands))

    def choose(self, cands: Candidates, k: int, purpose: str = "train") -> np.ndarray:
        """Indices into ``cands`` of ``k`` window starts: (k,) int64."""
        _check(purpose, k, cands)
        return self.rng.integers(0, len(cands), size=k)

    def on_overwrite(self, slots: np.ndarray) -> None:
        """Storage slots reused by new steps (FIFO eviction)."""

    def state_dict(self) -> dict:
        return {"kind": self.kind, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"sampler state is for {state.get('kind')!r}, this sampler is {self.kind!r}")
        self.rng.bit_generator.state = state["rng"]


class UniformSampler(Sampler):
    kind = "uniform"


class RecencySampler(Sampler):
    """P(i) proportional to 0.5 ** (age_i / half_life), with replacement."""

    kind = "recency"

    def probabilities(self, cands: Candidates, purpose: str = "train") -> np.ndarray:
        # log-weights through a softmax keep very old windows from underflowing to an all-zero vector
        return _softmax(-np.log(2.0) * cands.age.astype(np.float64) / self.config.recency_half_life)

    def choose(self, cands: Candidates, k: int, purpose: str = "train") -> np.ndarray:
        _check(purpose, k, cands)
        return self.rng.choice(len(cands), size=k, replace=True, p=self.probabilities(cands, purpose))


class DFSSampler(Sampler):
    """Drama's DFS sampler (docs/references.md#drama-dfs-sampling).

    Every slot i keeps n_i (times it started a world-model window) and m_i (times it started imagination).
    purpose="train": P(i) = softmax(-n_i / tau)_i, tau = 10, drawn without replacement; n_i += 1 per pick.
    purpose="imagination": m~ = m / divisor (imag_batch / batch_size), score = n - alpha m~ - beta max(0, n - m~)
    (= min(0, n - m~) for alpha = beta = 1), P = softmax(score / 10), drawn without replacement as Drama does
    (with replacement only when more starts are asked for than exist); m_i += 1 per pick.
    """

    kind = "dfs"

    def __init__(self, config: ReplayConfig, num_slots: int):
        super().__init__(config, num_slots)
        # int32 counts: 8 bytes per stored step
        self.n = np.zeros(num_slots, dtype=np.int32)
        self.m = np.zeros(num_slots, dtype=np.int32)

    def probabilities(self, cands: Candidates, purpose: str = "train") -> np.ndarray:
        c = self.config
        n = self.n[cands.slot].astype(np.float64)
        if purpose == "train":
            return _softmax(-n / c.dfs_tau)
        if c.dfs_imagination_divisor is None:
            raise ValueError("replay.dfs_imagination_divisor is unset (the Dreamer learner sets it to "
                             "imag_batch / batch_size); set it to sample imagination starts directly")
        m_tilde = self.m[cands.slot].astype(np.float64) / c.dfs_imagination_divisor
        score = n - c.dfs_alpha * m_tilde - c.dfs_beta * np.maximum(0.0, n - m_tilde)
        return _softmax(score / c.dfs_imagination_tau)

    def choose(self, cands: Candidates, k: int, purpose: str = "train") -> np.ndarray:
        _check(purpose, k, cands)
        p = self.probabilities(cands, purpose)
        if purpose == "train":
            if k > len(cands):
                raise ValueError(
                    f"DFS world-model batches are drawn without replacement: batch size {k} exceeds the "
                    f"{len(cands)} valid window starts"
                )
            idx = self.rng.choice(len(cands), size=k, replace=False, p=p)
            self.n[cands.slot[idx]] += 1  # distinct slots: plain fancy increment is exact
        else:
            idx = self.rng.choice(len(cands), size=k, replace=k > len(cands), p=p)
            np.add.at(self.m, cands.slot[idx], 1)  # repeated picks (only when k > candidates) each count
        return idx

    def on_overwrite(self, slots: np.ndarray) -> None:
        self.n[slots] = 0
        self.m[slots] = 0

    def state_dict(self) -> dict:
        return {**super().state_dict(), "n": self.n.copy(), "m": self.m.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for key in ("n", "m"):
            arr = np.asarray(state[key])
            if arr.shape != (self.num_slots,):
                raise ValueError(f"DFS sampler state {key!r} has shape {arr.shape}, expected ({self.num_slots},)")
            getattr(self, key)[:] = arr


def make_sampler(config: ReplayConfig, num_slots: int) -> Sampler:
    kinds = {"uniform": UniformSampler, "recency": RecencySampler, "dfs": DFSSampler}
    return kinds[config.sampler](config, num_slots)
