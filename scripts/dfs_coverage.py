"""How evenly Drama's DFS sampler spreads world-model training over the replay, for a given sampling schedule.

A DFS slot's count n_i grows with the number of world-model window starts drawn per env step, r = batch_size *
train_ratio, so the temperature tau = 10 that Drama pairs with its r = 16 (batch 16, one update per env step) is a
near-uniform sampler at a lower r. This script replays a training schedule through the real ``ReplayBuffer`` and
``DFSSampler`` (one step stored per env step, random warm-up, then ``train_ratio`` updates of ``batch_size``
windows) and reports each replay step's *coverage*: how many sampled training windows contained it, averaged over
the warm-up steps, the middle of the run and its last steps. Equal shapes at (r, tau) and (k r, k tau) is what the
``size=cpu`` preset's tau relies on (docs/results.md).

    python scripts/dfs_coverage.py --batch-size 8 --train-ratio 0.25 --taus 10,1.25     # size=cpu
    python scripts/dfs_coverage.py --batch-size 16 --train-ratio 1 --taus 10            # Drama's schedule

Prints one JSON object: per tau, the mean coverage of the warm-up steps (after the first seq_len), of the middle 5% of the run, of the last
2,500 and the last 1,000 steps, and the ratios of the warm-up's coverage to the others.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ssmrl.bench.output import emit
from ssmrl.replay import ReplayBuffer, ReplayConfig


def coverage(batch_size: int, train_ratio: float, tau: float, steps: int, warmup: int, seq_len: int,
             seed: int = 0) -> np.ndarray:
    """Windows that contained each of the ``steps`` replay steps: (steps,) float64."""
    buffer = ReplayBuffer(ReplayConfig(capacity=steps, sampler="dfs", dfs_tau=tau, seed=seed, verbose=False))
    record = {"vector": np.zeros(1, np.float32), "action": np.int32(0), "reward": np.float32(0.0), "is_first": False,
              "is_last": False, "is_terminal": False}
    covered = np.zeros(steps + 1)
    credit = 0.0
    for t in range(steps):
        buffer.add({**record, "is_first": t == 0})
        if t + 1 < warmup:
            continue
        credit += train_ratio
        while credit >= 1.0:
            credit -= 1.0
            starts = buffer.sample(batch_size, seq_len, purpose="train", with_index=True)["step_id"][:, 0]
            np.add.at(covered, starts, 1.0)  # difference array: +1 at a window's first step ...
            np.add.at(covered, starts + seq_len, -1.0)  # ... -1 after its last
    return np.cumsum(covered)[:steps]


def summary(cov: np.ndarray, warmup: int, seq_len: int) -> dict[str, float]:
    n = len(cov)
    # the first seq_len steps fit in fewer windows (none starts before step 0): left out of the warm-up's mean
    parts = {"warmup": cov[seq_len:warmup] if warmup > seq_len else cov[:warmup],
             "middle": cov[int(0.475 * n):int(0.525 * n)], "last_2500": cov[-2500:], "last_1000": cov[-1000:]}
    means = {k: float(v.mean()) for k, v in parts.items()}
    return {**means, **{f"warmup_over_{k}": means["warmup"] / max(means[k], 1e-12) for k in ("middle", "last_2500", "last_1000")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=8, help="world-model windows per update")
    p.add_argument("--train-ratio", type=float, default=0.25, help="updates per env step")
    p.add_argument("--taus", default="10,1.25", help="comma-separated DFS temperatures")
    p.add_argument("--steps", type=int, default=20_000, help="env steps of the run")
    p.add_argument("--warmup", type=int, default=1_032, help="random steps before the first update")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.batch_size < 1 or a.train_ratio <= 0 or a.seq_len < 1 or a.warmup < a.seq_len or a.steps < a.warmup + 2_500:
        p.error("need --batch-size >= 1, --train-ratio > 0, --seq-len >= 1, --warmup >= --seq-len (a window must fit "
                "before the first update) and --steps >= --warmup + 2500 (the last-2,500 summary)")
    try:
        taus = [float(t) for t in a.taus.split(",")]
    except ValueError:
        p.error(f"--taus must be comma-separated numbers, got {a.taus!r}")
    if min(taus) <= 0:
        p.error(f"--taus must be > 0, got {a.taus!r}")
    result = {"batch_size": a.batch_size, "train_ratio": a.train_ratio, "starts_per_env_step": a.batch_size * a.train_ratio,
              "steps": a.steps, "warmup": a.warmup, "seq_len": a.seq_len, "seed": a.seed,
              "taus": {str(t): summary(coverage(a.batch_size, a.train_ratio, t, a.steps, a.warmup, a.seq_len, a.seed), a.warmup, a.seq_len)
                       for t in taus}}
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
