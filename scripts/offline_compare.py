"""Decision Mamba vs Decision Transformer vs BC on D4RL-format datasets; prints JSON.

Each (dataset, agent, seed) trains ``--updates`` updates and evaluates ``--eval-episodes`` episodes at the end
(normalised with the dataset's own reference when its metadata has one, else D4RL's; the result says which).
Example (2-core CPU, small models):
    python scripts/offline_compare.py --datasets datasets/hopper-medium-v5-seed0.hdf5 --agents dm,dt,bc \\
        --seeds 0 --updates 1000 --batch-size 32 --d-model 64 --layers 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from agents.offline.config import ModelConfig, OfflineConfig, PSERConfig
from agents.offline.io import load_dataset
from agents.offline.trainer import evaluate_checkpoint, train_offline
from ssmrl.bench.output import emit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", required=True, help="comma-separated D4RL .hdf5 paths / Minari folders")
    p.add_argument("--agents", default="dm,dt,bc")
    p.add_argument("--seeds", default="0")
    p.add_argument("--updates", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--context", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--bc-hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--d-state", type=int, default=16)
    p.add_argument("--expand", type=int, default=2)
    p.add_argument("--pser-schedule", choices=("iterations", "stages"), default="iterations",
                   help="iterations: Decision Mamba's public code (2,500-update stages, alpha capped at 0.5)")
    p.add_argument("--pser-stages", type=int, default=4, help="number of equal stages with --pser-schedule stages")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--act-reset-every", type=int, default=0,
                   help="0: DM acts on a sliding window of the last K steps (default); n > 0: DM carries its "
                        "recurrent state, restarting it every n env steps")
    p.add_argument("--also-eval-reset-every", type=int, default=0,
                   help="n > 0: also evaluate each trained model with the context restarted every n steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs, summary = [], {}
    for path in a.datasets.split(","):
        arrays, meta = load_dataset(path)
        for agent in a.agents.split(","):
            scores, per_update = [], []
            for seed in map(int, a.seeds.split(",")):
                model = ModelConfig(d_model=a.bc_hidden if agent == "bc" else a.d_model, n_layers=a.layers,
                                    d_state=a.d_state, expand=a.expand)
                cfg = OfflineConfig(agent=agent, seed=seed, context=a.context, batch_size=a.batch_size, lr=a.lr,
                                    warmup_steps=a.warmup, updates=a.updates, eval_every=0,
                                    eval_episodes=a.eval_episodes, log_every=0, model=model,
                                    pser=PSERConfig(schedule=a.pser_schedule, stages=a.pser_stages),
                                    acting="recurrent" if a.act_reset_every else "window",
                                    act_reset_every=a.act_reset_every or None)
                t0 = time.perf_counter()
                out = train_offline(cfg, arrays, meta)
                final = out["final"]
                run = {"dataset": path, "agent": agent, "seed": seed, "updates": a.updates,
                       "train_time_s": out["train_time_s"], "s_per_update": out["train_time_s"] / a.updates,
                       "eval_time_s": final["eval_time_s"], "return_mean": final["return_mean"],
                       "return_std": final["return_std"], "normalised": final["normalised"],
                       "target_return": out["target_return"], "target_source": out["target_source"],
                       "last_losses": out["last_losses"], "wall_s": time.perf_counter() - t0,
                       "params": sum(p.numel() for p in out["trainer"].model.parameters())}
                if a.also_eval_reset_every:
                    cfg2 = dataclasses.replace(cfg, acting="recurrent", act_reset_every=a.also_eval_reset_every)
                    extra = evaluate_checkpoint(cfg2, out["trainer"].state_dict(), episodes=a.eval_episodes,
                                                seed=cfg.seed + 1000, metadata=meta)
                    run["eval_reset_every"] = {"every": a.also_eval_reset_every, "return_mean": extra["return_mean"],
                                               "return_std": extra["return_std"], "normalised": extra["normalised"]}
                runs.append(run)
                print(json.dumps(run), flush=True)
                scores.append(final["normalised"]["score"])
                per_update.append(run["s_per_update"])
            summary[f"{path}:{agent}"] = {"score_mean": float(np.mean(scores)), "score_std": float(np.std(scores)),
                                          "seeds": len(scores), "reference": runs[-1]["normalised"]["reference"],
                                          "train_s_per_100k_updates": float(np.mean(per_update)) * 1e5}
    result = {"args": vars(a), "summary": summary, "runs": runs}
    emit(result, a.out, indent=1)


if __name__ == "__main__":
    main()
