"""Seconds per update of the offline learners (Decision Mamba, Decision Transformer, BC) at the same width,
context and batch, through ``OfflineTrainer.update`` (the method ``ssmrl offline`` calls).

The data is a synthetic D4RL-format stream (Hopper's sizes by default: 11-d observations, 3-d actions, episodes
of 1,000 steps); the update's cost does not depend on the values. Decision Mamba is timed in PSER stage 0 and in a
later stage, where each update also runs the frozen previous policy for the refined action target.

    OMP_NUM_THREADS=1 python scripts/bench_offline.py --threads 1 --updates 10

Prints one JSON object (``ratio_to_dt``: each learner's median update time over DT's, measured in this run).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import numpy as np
import torch

from agents.offline.config import ModelConfig, OfflineConfig
from agents.offline.data import OfflineData
from agents.offline.trainer import OfflineTrainer
from ssmrl.bench.output import emit


def synthetic(n: int, obs_dim: int, act_dim: int, episode: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(n, bool)
    timeouts[episode - 1::episode] = True
    return {"observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, bool), "timeouts": timeouts}


def time_updates(trainer: OfflineTrainer, updates: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        trainer.update()
    times = []
    for _ in range(updates):
        t = time.perf_counter()
        trainer.update()
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="dm,dt,bc")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--warmup-updates", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=ModelConfig.d_model)
    parser.add_argument("--layers", type=int, default=ModelConfig.n_layers)
    parser.add_argument("--context", type=int, default=OfflineConfig.context)
    parser.add_argument("--batch-size", type=int, default=OfflineConfig.batch_size)
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = OfflineData(synthetic(20_000, args.obs_dim, args.act_dim, 1000, args.seed), args.context)
    results = {}
    for agent in [a for a in args.agents.split(",") if a]:
        model = dataclasses.replace(ModelConfig(), d_model=args.d_model, n_layers=args.layers)
        cfg = OfflineConfig(agent=agent, context=args.context, batch_size=args.batch_size, model=model,
                            seed=args.seed, updates=1_000_000)
        trainer = OfflineTrainer(cfg, data)
        cases = {agent: 0}
        if trainer.use_pser:
            cases[f"{agent} (PSER stage >= 1)"] = cfg.updates  # later stages also run the frozen policy
        for name, step in cases.items():
            trainer.step = step
            times = time_updates(trainer, args.updates, args.warmup_updates)
            results[name] = {"update_s": statistics.median(times), "update_s_all": times,
                             "parameters": sum(p.numel() for p in trainer.model.parameters())}
            print(f"{name}: {results[name]['update_s']:.3f} s per update", file=sys.stderr, flush=True)
    if "dt" in results:
        for r in results.values():
            r["ratio_to_dt"] = r["update_s"] / results["dt"]["update_s"]
    emit({"benchmark": "bench_offline", "d_model": args.d_model, "layers": args.layers, "context": args.context,
          "batch_size": args.batch_size, "obs_dim": args.obs_dim, "act_dim": args.act_dim,
          "torch_threads": torch.get_num_threads(), "results": results}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
