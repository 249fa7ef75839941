"""Aggregate statistics against hand-computed values and a bootstrap coverage check (ssmrl.metrics)."""
import numpy as np
import pytest
from scipy import stats

from ssmrl.metrics.aggregate import (iqm, mean, mean_and_stderr, median, optimality_gap, performance_profile,
                                     stratified_bootstrap)


def test_hand_computed_aggregates():
    scores = np.array([[0.0, 1.0, 4.0], [2.0, 3.0, 8.0]])  # 2 runs x 3 tasks; task means 1, 2, 6
    assert mean(scores) == pytest.approx(3.0)
    assert median(scores) == pytest.approx(2.0)
    # 6 scores sorted 0 1 2 3 4 8: drop one at each end -> mean(1, 2, 3, 4)
    assert iqm(scores) == pytest.approx(2.5)
    # shortfall below 1: only 0 (by 1) -> 1 / 6
    assert optimality_gap(scores) == pytest.approx(1 / 6)
    assert np.allclose(performance_profile(scores, [0.5, 2.0, 10.0]), [5 / 6, 3 / 6, 0.0])
    m, se = mean_and_stderr([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


@pytest.mark.parametrize("n", [8, 13, 130])
def test_iqm_matches_scipy_trim_mean(n):
    x = np.random.default_rng(n).standard_cauchy((n, 1))
    assert iqm(x) == pytest.approx(stats.trim_mean(x.ravel(), 0.25))


def test_bad_scores_rejected():
    with pytest.raises(ValueError, match="shape"):
        mean(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        iqm(np.array([[1.0, np.nan]]))


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for _ in range(trials):
        scores = rng.normal(1.0, 1.0, size=(10, 5))  # true mean over tasks = 1
        _, low, high = stratified_bootstrap(scores, mean, reps=400, seed=int(rng.integers(1 << 30)))
        covered += low <= 1.0 <= high
    # Percentile bootstrap under-covers slightly for n=10 per stratum; it must still be near 95%.
    assert 0.86 <= covered / trials <= 0.99


def test_bootstrap_is_seeded_and_brackets_the_point_estimate():
    scores = np.random.default_rng(1).normal(size=(5, 26))
    a = stratified_bootstrap(scores, iqm, reps=300, seed=3)
    assert a == stratified_bootstrap(scores, iqm, reps=300, seed=3)
    assert a[1] <= a[0] <= a[2]
