"""Evaluation: play N full episodes with a trained policy and report returns (and normalised scores).

Every environment starts with a fresh recurrent state (the rollout engine hands ``first`` to the policy, which
zeroes its state there), episodes are spread evenly over the environments so that short episodes are not
over-represented, and the result file records the config, checkpoint, seed and package versions behind it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ssmrl.metrics.aggregate import mean_and_stderr
from ssmrl.rollout import RolloutConfig, RolloutEngine
from ssmrl.runs.config import ConfigError
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run, package_versions

# How ``ssmrl eval`` opens a run and finds its agent's evaluation, handed in by the CLI (the composition root; the
# core names no agent): run directory -> (run, policy loader or None, evaluator or None), where
#   policy loader: (run, checkpoint: Path | None, greedy: bool, num_envs: int) -> (policy, step), played here;
#   evaluator:     (args, run, checkpoint) -> result dict, for agents with their own acting loop (offline agents).
OpenRun = Callable[[Path], "tuple[Run, Callable | None, Callable | None]"]


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
    """Episodes per environment, as even as possible: 10 over 4 envs -> [3, 3, 2, 2]."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"need episodes >= 1 and num_envs >= 1, got {episodes} and {num_envs}")
    return [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]


def play_episodes(env_id: str, policy: Any, episodes: int, num_envs: int = 1, seed: int = 0,
                  options: dict | None = None, replay: Any = None) -> list[dict]:
    """Run ``policy`` until every env finished its quota; returns one dict per episode (env, return, length).

    replay: a ``ReplayBuffer`` with ``min(num_envs, episodes)`` streams that records every step played
    (env i into stream i; envs that finished their quota early keep playing until the others finish), or None.
    """
    num_envs = min(num_envs, episodes)
    quotas = episode_quotas(episodes, num_envs)
    engine = RolloutEngine.from_env_id(env_id, num_envs, replay=replay,
                                       config=RolloutConfig(seed=seed, record=replay is not None), **(options or {}))
    results: list[dict] = []
    done = [0] * num_envs
    bar = progress(total=episodes, desc="eval", unit="episode")
    try:
        while sum(done) < episodes:
            for ep in engine.step(policy):
                if done[ep.env] < quotas[ep.env]:
                    done[ep.env] += 1
                    results.append({"env": ep.env, "return": ep.episode_return, "length": ep.length,
                                    "terminated": ep.terminated, "truncated": ep.truncated})
                    bar.update(1)
    finally:
        bar.close()
        engine.close()
    return results


def normalised_score(env_id: str, score: float) -> tuple[float, str] | None:
    """(normalised score, reference used) where the suite defines one, else None."""
    suite, _, name = env_id.partition("/")
    if suite in ("atari100k", "atari", "stori"):
        from envs.atari100k import REFERENCE_SCORES, human_normalised_score

        game = name.split("/")[0]
        if game in REFERENCE_SCORES:
            return human_normalised_score(game, score), "human-normalised (Atari100k random/human reference scores)"
    return None


def summarize(env_id: str, episodes: list[dict]) -> dict[str, Any]:
    returns = np.array([e["return"] for e in episodes], dtype=np.float64)
    mean, stderr = mean_and_stderr(returns)
    summary = {"episodes": len(returns), "mean": mean, "stderr": stderr, "std": float(returns.std()),
               "min": float(returns.min()), "max": float(returns.max()), "mean_length": float(np.mean([e["length"] for e in episodes]))}
    normalised = normalised_score(env_id, mean)
    if normalised is not None:
        summary["normalised_score"], summary["normalised_reference"] = normalised
    return summary


def resolve_target(target: str | Path) -> tuple[Path, Path | None]:
    """(run directory, checkpoint file or None for the latest) from a run directory or a checkpoint path."""
    target = Path(target)
    if target.is_file():
        if target.parent.name != "checkpoints":
            raise FileNotFoundError(f"{target} is not inside a run's checkpoints/ folder")
        return target.parent.parent, target
    if target.is_dir():
        return target, None
    raise FileNotFoundError(f"{target} is neither a run directory nor a checkpoint file")


def evaluate_cli(args: argparse.Namespace, open_run: OpenRun) -> int:
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.num_envs < 1:
        raise ConfigError(f"--num-envs must be >= 1, got {args.num_envs}")
    run_dir, checkpoint = resolve_target(args.target)
    out_dir = Path(args.out).resolve().parent if args.out else run_dir
    if not os.access(out_dir, os.W_OK):  # checked before playing every episode, not after
        raise ConfigError(f"cannot write the result into {out_dir} (read-only?); pass --out FILE elsewhere")
    run, policy_loader, evaluator = open_run(run_dir)
    cfg = run.config
    if evaluator is not None:
        result = evaluator(args, run, checkpoint)
        return _write(result, Path(args.out) if args.out else run_dir / f"eval-{result['step']}.json")
    num_envs = min(args.num_envs, args.episodes)
    policy, step = policy_loader(run, checkpoint, args.greedy, num_envs)
    seed = cfg.seed + 10_000 if args.seed is None else args.seed  # never the training episodes' seeds
    options = {**cfg.env.options, **cfg.env.eval_options}
    start = time.time()
    episodes = play_episodes(cfg.env.id, policy, args.episodes, num_envs, seed, options)
    summary = summarize(cfg.env.id, episodes)
    result = {"run": str(run_dir), "checkpoint": str(checkpoint) if checkpoint else "latest", "step": step,
              "agent": cfg.agent, "env": cfg.env.id, "env_options": options, "greedy": args.greedy, "seed": seed,
              "num_envs": num_envs, "seconds": time.time() - start, **summary, "per_episode": episodes,
              "packages": package_versions()}
    _print_table(result)
    return _write(result, Path(args.out) if args.out else run_dir / f"eval-{step}.json")


def _write(result: dict, out: Path) -> int:
    out.write_text(json.dumps(result, indent=1, default=str))
    if "per_episode" not in result:  # offline evaluators report their own summary
        n = len(result.get("returns") or []) or 1
        line = (f"{result.get('agent')} step {result['step']}: mean return {result['return_mean']:.2f} "
                f"± {result['return_std'] / math.sqrt(n):.2f} (s.e., {n} episodes; std {result['return_std']:.2f})")
        norm = result.get("normalised")
        if norm:
            line += f", normalised {norm['score']:.1f} [reference: {norm['reference']}, task {norm['task']}]"
        print(line)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _print_table(result: dict) -> None:
    print(f"{'episode':>8} {'env':>4} {'return':>12} {'length':>8}")
    for i, ep in enumerate(result["per_episode"]):
        print(f"{i:>8} {ep['env']:>4} {ep['return']:>12.2f} {ep['length']:>8}")
    line = (f"{result['env']} step {result['step']}: mean {result['mean']:.2f} ± {result['stderr']:.2f} "
            f"(s.e., {result['episodes']} episodes; std {result['std']:.2f})")
    if "normalised_score" in result and math.isfinite(result["normalised_score"]):
        line += f", normalised {result['normalised_score']:.3f} [{result['normalised_reference']}]"
    print(line)
