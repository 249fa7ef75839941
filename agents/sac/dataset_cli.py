"""``ssmrl dataset collect key=value ...`` (D4RL-style datasets from SAC behaviour policies) and
``ssmrl dataset info PATH`` (what a D4RL-format file or Minari folder holds).

``collect`` words are fields of :class:`agents.sac.config.CollectConfig` (``env=Hopper train_steps=200000
size=100000 levels=[medium,medium-replay] sac.batch_size=256``); ``--out`` sets ``out_dir``.
"""
from __future__ import annotations

import argparse
import json
from functools import reduce

import numpy as np

from agents.sac.config import CollectConfig
from ssmrl.runs.config import ConfigError, deep_merge, from_dict, parse_override, to_dict


def collect_cli(words: list[str], out: str | None) -> int:
    from agents.sac.collect import collect_datasets

    bad = [w for w in words if "=" not in w]
    if bad:
        raise ConfigError(f"dataset collect takes key=value words (fields of CollectConfig), got {bad}")
    data = reduce(deep_merge, [parse_override(w) for w in words], {})
    if out:
        data["out_dir"] = out
    cfg = from_dict(CollectConfig, data)
    from envs.mujoco import gym_id

    try:
        gym_id(cfg.env)  # a typo'd env fails here, before any training or file
    except ValueError as err:
        raise ConfigError(f"env: {err}") from err
    result = collect_datasets(cfg)
    print(json.dumps({"config": to_dict(cfg), "paths": result["paths"], "timing": result.get("timing"),
                      "references": result.get("references")}, indent=1, default=str))
    return 0


def info_cli(path: str) -> int:
    from agents.offline.io import load_dataset

    from ssmrl.replay.offline import d4rl_episodes

    arrays, meta = load_dataset(path)
    # episodes split exactly as the loaders split them (flags, unflagged observation jumps, the file's end)
    ends, _ = d4rl_episodes(arrays, path)
    rewards = np.asarray(arrays["rewards"], np.float64).reshape(-1)
    returns = [float(rewards[s:e].sum()) for s, e in zip(np.concatenate([[0], ends[:-1]]), ends)]
    summary = {"path": path, "transitions": int(len(arrays["rewards"])), "episodes": len(returns),
               "terminals": int(np.sum(arrays["terminals"])), "timeouts": int(np.sum(arrays["timeouts"])),
               "observation_dim": int(np.asarray(arrays["observations"]).reshape(len(arrays["rewards"]), -1).shape[1]),
               "action_dim": int(np.asarray(arrays["actions"]).reshape(len(arrays["rewards"]), -1).shape[1]),
               "return_mean": float(np.mean(returns)), "return_min": float(np.min(returns)),
               "return_max": float(np.max(returns)), "metadata": meta}
    print(json.dumps(summary, indent=1, default=str))
    return 0


def dataset_cli(args: argparse.Namespace) -> int:
    if args.action == "info":
        if len(args.words) != 1:
            raise ConfigError("usage: ssmrl dataset info PATH")
        return info_cli(args.words[0])
    return collect_cli(args.words, args.out)
