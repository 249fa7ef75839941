"""Train SAC and write D4RL-style datasets; prints a JSON summary (timings, returns, paths).

Example (2-core CPU):
    python scripts/collect_datasets.py --env Hopper --train-steps 60000 --size 50000 --out datasets/small
"""
from __future__ import annotations

import argparse

import torch

from agents.sac.collect import collect_datasets
from agents.sac.config import CollectConfig, SACConfig
from ssmrl.bench.output import emit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--env", default="Hopper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=1_000_000)
    p.add_argument("--snapshot-every", type=int, default=10_000)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--levels", default="random,medium,expert,medium-replay,medium-expert")
    p.add_argument("--learning-starts", type=int, default=5_000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", default="datasets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--minari", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = CollectConfig(env=a.env, seed=a.seed, train_steps=a.train_steps, snapshot_every=a.snapshot_every,
                        size=a.size, levels=tuple(a.levels.split(",")), out_dir=a.out, minari=a.minari,
                        sac=SACConfig(learning_starts=a.learning_starts, hidden=a.hidden, batch_size=a.batch_size))
    out = collect_datasets(cfg, log=lambda s: print(s, flush=True))
    out["config"] = {k: v for k, v in vars(a).items()}
    emit(out, indent=1)


if __name__ == "__main__":
    main()
