"""Aggregate scores the way the field reports them (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice"): mean, median, interquartile mean and optimality gap over a (runs, tasks) score matrix, with
stratified-bootstrap confidence intervals, and performance profiles.

``scores`` is always shaped ``(R, T)``: R runs (seeds) of each of T tasks (games), already normalised.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _check(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be a non-empty (runs, tasks) matrix, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return scores


def mean(scores) -> float:
    """Mean over tasks of the per-task mean over runs."""
    return float(_check(scores).mean(axis=0).mean())


def median(scores) -> float:
    """Median over tasks of the per-task mean over runs."""
    return float(np.median(_check(scores).mean(axis=0)))


def iqm(scores) -> float:
    """Interquartile mean of all R*T scores: drop the lowest and highest floor(n/4), average the rest.

    The floor matches scipy.stats.trim_mean(x, 0.25), which rliable (and so every published IQM) uses.
    """
    flat = np.sort(_check(scores).ravel())
    cut = flat.size // 4
    return float(flat[cut: flat.size - cut].mean())


def optimality_gap(scores, threshold: float = 1.0) -> float:
    """Mean shortfall below ``threshold`` (1 = human for HNS) over all runs and tasks."""
    return float(np.maximum(threshold - _check(scores), 0).mean())


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "mean": mean, "median": median, "iqm": iqm, "optimality_gap": optimality_gap,
}


def stratified_bootstrap(scores, statistic: Callable[[np.ndarray], float], reps: int = 2000,
                         confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high): percentile CI from resampling runs with replacement within each task."""
    scores = _check(scores)
    rng = np.random.default_rng(seed)
    runs, tasks = scores.shape
    estimates = np.empty(reps)
    columns = np.arange(tasks)
    for i in range(reps):
        rows = rng.integers(0, runs, size=(runs, tasks))  # each task resampled independently (strata)
        estimates[i] = statistic(scores[rows, columns])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(estimates, [alpha, 1 - alpha])
    return statistic(scores), float(low), float(high)


def aggregate_with_ci(scores, reps: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Every aggregate with its 95% stratified-bootstrap interval: {"iqm": {"value", "low", "high"}, ...}."""
    out = {}
    for name, fn in AGGREGATES.items():
        value, low, high = stratified_bootstrap(scores, fn, reps=reps, seed=seed)
        out[name] = {"value": value, "low": low, "high": high}
    return out


def performance_profile(scores, thresholds) -> np.ndarray:
    """Fraction of all runs (over every task) whose score exceeds each threshold tau: (len(thresholds),)."""
    flat = _check(scores).ravel()
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return (flat[None, :] > thresholds[:, None]).mean(axis=1)


def mean_and_stderr(values) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("mean_and_stderr of no values")
    if values.size == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
