"""``ssmrl imagine``: show what a trained world model imagines.

For each sequence the agent plays ``context + horizon`` real steps in a fresh environment; the world model
observes the first ``context`` frames and then imagines ``horizon`` steps, open loop and with the agent's policy
(the videos are made by :mod:`agents.dreamer.videos`, which the training loop's periodic videos use too).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from agents.dreamer.train import load_agent
from agents.dreamer.videos import write_videos
from ssmrl.evaluation import resolve_target
from ssmrl.replay import ReplayBuffer, ReplayConfig
from ssmrl.rollout import RolloutConfig, RolloutEngine
from ssmrl.runs.config import ConfigError
from ssmrl.runs.run import Run
from ssmrl.runs.seeding import Seeds


def collect(run: Run, policy, sequences: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """``sequences`` real windows of ``length`` steps, each from the start of an episode: {key: (S, length, ...)}."""
    cfg = run.config
    replay = ReplayBuffer(ReplayConfig(capacity=sequences * (length + 1), num_streams=sequences, verbose=False))
    engine = RolloutEngine.from_env_id(cfg.env.id, sequences, replay, RolloutConfig(seed=seed),
                                       **{**cfg.env.options, **cfg.env.eval_options})
    try:
        engine.run(policy, length)
    finally:
        engine.close()
    return replay.gather(np.arange(sequences), np.zeros(sequences, np.int64), length)


def imagine_cli(args: argparse.Namespace, schema: type) -> int:
    """``ssmrl imagine``; ``schema``: the run config's dataclass, given by the CLI (``ssmrl.cli.config.Config``)."""
    run_dir, checkpoint = resolve_target(args.target)
    run = Run.load(run_dir, schema)
    agent, step = load_agent(run, checkpoint)
    if agent.spec.image_shape is None:
        raise ConfigError(f"{run_dir}: the world model has no image decoder (vector observations only); nothing to render")
    if args.context < 1 or args.horizon < 1:
        raise ConfigError("--context and --horizon must be >= 1")
    generator = Seeds(args.seed).torch("imagine", agent.device)
    length = args.context + args.horizon
    window = collect(run, agent.policy(greedy=False, generator=generator), args.sequences, length, args.seed)
    out_dir = Path(args.out) if args.out else run_dir / "videos" / f"imagine-{step}"
    summary = write_videos(run, agent, window, args.context, args.horizon, step, out_dir, generator)
    run.close()
    (out_dir / "summary.json").write_text(json.dumps({"step": step, "context": args.context, "horizon": args.horizon,
                                                       "seed": args.seed, "sequences": summary}, indent=1))
    print(f"wrote {2 * args.sequences} videos (MP4 + GIF each) to {out_dir}", file=sys.stderr)
    return 0
