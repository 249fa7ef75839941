"""scripts/dfs_coverage.py: coverage counts windows exactly, and DFS's balance depends on tau / (starts per step)."""
from __future__ import annotations

import importlib.util

import numpy as np

from tests import ROOT

_spec = importlib.util.spec_from_file_location("dfs_coverage", ROOT / "scripts" / "dfs_coverage.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


def test_coverage_counts_every_sampled_window_over_its_steps():
    """Total coverage = updates x batch x window length, and no step is covered before it was stored."""
    steps, warmup, seq_len, batch, ratio = 400, 50, 8, 4, 0.5
    cov = script.coverage(batch, ratio, 10.0, steps, warmup, seq_len)
    updates = int((steps - warmup + 1) * ratio)
    assert cov.shape == (steps,) and np.isclose(cov.sum(), updates * batch * seq_len)
    assert cov.min() >= 0 and cov[seq_len:warmup].min() > 0


def test_dfs_balance_is_set_by_tau_over_the_starts_per_env_step():
    """Eight times fewer starts per env step with an eight times smaller tau spread training like the original
    schedule (the premise of size=cpu's tau 1.25 against Drama's 10 at 16 starts per step); the same tau does not."""
    kw = dict(steps=3000, warmup=300, seq_len=16)
    def balance(batch, ratio, tau):
        return script.summary(script.coverage(batch, ratio, tau, **kw), kw["warmup"], kw["seq_len"])["warmup_over_middle"]
    reference = balance(16, 1.0, 10.0)
    assert abs(balance(8, 0.25, 1.25) / reference - 1) < 0.15
    assert balance(8, 0.25, 10.0) / reference > 1.4
