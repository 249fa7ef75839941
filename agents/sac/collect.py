"""Make D4RL-style offline datasets with SAC behaviour policies.

Levels (as D4RL made them, Fu et al. 2020): ``random`` (uniform actions), ``medium`` (a SAC snapshot early-stopped
at about a third of the expert's return), ``expert`` (the best SAC snapshot), ``medium-replay`` (SAC's replay
buffer up to the medium snapshot) and ``medium-expert`` (medium followed by expert). Each level is written as a
D4RL-format HDF5 file whose ``metadata/`` records the policy, the dataset's return statistics, the dataset-own
reference returns (``ref_min_score`` = random policy, ``ref_max_score`` = expert policy) for normalised scores,
the env id/version and the seed.

Entry point: :func:`collect_datasets(cfg)` -> ``{"paths": {level: hdf5 path}, "minari_paths": {...}, ...}``.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from agents.sac.config import CollectConfig
from agents.sac.sac import SAC, Actor, ReplayBuffer, actor_policy, evaluate_policy, train_sac
from envs.mujoco import gym_id, make_task, task_key
from ssmrl.replay.offline import write_d4rl, write_minari



def rollout_dataset(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], size: int, seed: int) -> tuple[dict[str, np.ndarray], list[float]]:
    """Roll ``policy`` for exactly ``size`` transitions in D4RL layout.

    ``terminals`` marks true terminations, ``timeouts`` time-limit truncations; the last, cut episode gets
    ``timeouts[-1] = True`` so that every episode in the file ends with one of the two flags.
    Returns the arrays and the returns of the episodes that finished naturally (not the cut one).
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    buf = ReplayBuffer(obs_dim, act_dim, size)
    obs, _ = env.reset(seed=seed)
    ret, returns = 0.0, []
    for i in range(size):
        a = np.asarray(policy(obs), np.float32)
        nobs, r, term, trunc, _ = env.step(a)
        buf.add(obs, a, r, nobs, bool(term), bool(trunc) or (i == size - 1 and not term))
        ret += float(r)
        obs = nobs
        if term or trunc:
            returns.append(ret)
            ret = 0.0
            obs, _ = env.reset()
    return buf.prefix(size), returns


def episode_returns(data: dict[str, np.ndarray]) -> list[float]:
    """Returns of the episodes in a D4RL array dict (episodes end at terminals | timeouts)."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    csum = np.concatenate([[0.0], np.cumsum(data["rewards"], dtype=np.float64)])
    return [float(csum[e + 1] - csum[s]) for s, e in zip(starts, ends)]


def return_stats(returns: list[float]) -> dict[str, float]:
    if not returns:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "episodes": 0}
    r = np.asarray(returns, np.float64)
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()), "episodes": int(len(r))}


def dataset_path(cfg: CollectConfig, level: str) -> str:
    return os.path.join(cfg.out_dir, f"{task_key(cfg.env)}-{level}-v5-seed{cfg.seed}.hdf5")


def pick_snapshots(snapshots: list[dict[str, Any]], medium_fraction: float) -> tuple[dict, dict]:
    """Expert = best evaluated snapshot; medium = the snapshot (at or before the expert) whose evaluation return
    is closest to ``medium_fraction`` x the expert's."""
    if not snapshots:
        raise ValueError("no policy snapshots were taken; lower snapshot_every or raise train_steps")
    expert = max(snapshots, key=lambda s: s["eval_return"])
    target = medium_fraction * expert["eval_return"]
    candidates = [s for s in snapshots if s["step"] <= expert["step"]]
    medium = min(candidates, key=lambda s: abs(s["eval_return"] - target))
    return medium, expert


def collect_datasets(cfg: CollectConfig, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train SAC on ``cfg.env``, pick medium/expert snapshots, write the requested levels.

    Returns ``{"paths": {level: path}, "snapshots": [...], "timing": {...}, "references": {...}}``; the chosen
    actors are also saved to ``<out_dir>/<task>-policies-v5-seed<seed>.pt`` (state_dicts).
    """
    log = log or (lambda s: None)
    t0 = time.perf_counter()
    env = make_task(cfg.env, seed=cfg.seed, max_episode_steps=cfg.max_episode_steps)
    eval_env = make_task(cfg.env, seed=cfg.seed + 10_000, max_episode_steps=cfg.max_episode_steps)
    space = env.action_space
    snapshots: list[dict[str, Any]] = []

    def snapshot(step: int, agent: SAC, buf: ReplayBuffer) -> None:
        pol = actor_policy(agent.actor, space, deterministic=True)
        st = evaluate_policy(eval_env, pol, cfg.eval_episodes, seed=cfg.seed + 20_000 + step)
        snapshots.append({"step": step, "eval_return": float(np.mean(st.returns)),
                          "actor": copy.deepcopy(agent.actor.state_dict())})
        log(f"[collect] {cfg.env} step {step}: eval return {snapshots[-1]['eval_return']:.1f} "
            f"({time.perf_counter() - t0:.0f}s)")

    need_sac = any(lv != "random" for lv in cfg.levels)
    paths: dict[str, str] = {}
    minari_paths: dict[str, str] = {}
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(space.shape))
    base_meta: dict[str, Any] = {
        "env_id": gym_id(cfg.env), "env_version": gym_id(cfg.env).split("-v")[1], "task": task_key(cfg.env),
        "gymnasium_version": gym.__version__, "seed": cfg.seed, "generator": "ssmrl agents.sac.collect",
        "stochastic_policy": cfg.stochastic,
    }
    t_train = 0.0
    medium = expert = None
    buf = None
    if need_sac:
        sac_cfg = copy.deepcopy(cfg.sac)
        sac_cfg.buffer_size = max(sac_cfg.buffer_size, cfg.train_steps)  # keep the whole history for medium-replay
        ts = time.perf_counter()
        _, buf, _ = train_sac(env, cfg.train_steps, sac_cfg, seed=cfg.seed, callback=snapshot,
                              callback_every=cfg.snapshot_every)
        t_train = time.perf_counter() - ts
        medium, expert = pick_snapshots(snapshots, cfg.medium_fraction)
        log(f"[collect] medium = step {medium['step']} ({medium['eval_return']:.1f}), "
            f"expert = step {expert['step']} ({expert['eval_return']:.1f})")

    def actor_from(snap) -> Actor:
        a = Actor(obs_dim, act_dim, cfg.sac.hidden, cfg.sac.layers)
        a.load_state_dict(snap["actor"])
        return a

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 2)
    space.seed(cfg.seed + 3)
    random_policy = lambda o: rng.uniform(space.low, space.high).astype(np.float32)  # noqa: E731
    policies: dict[str, Callable] = {"random": random_policy}
    if need_sac:
        policies["medium"] = actor_policy(actor_from(medium), space, deterministic=not cfg.stochastic, generator=gen)
        policies["expert"] = actor_policy(actor_from(expert), space, deterministic=not cfg.stochastic, generator=gen)

    # dataset-own normalisation references: random policy and expert policy returns (as D4RL's REF_MIN/MAX)
    ref_env = make_task(cfg.env, seed=cfg.seed + 30_000, max_episode_steps=cfg.max_episode_steps)
    refs = {"ref_min_score": float(np.mean(evaluate_policy(ref_env, random_policy, cfg.reference_episodes, cfg.seed + 30_000).returns))}
    if need_sac:
        refs["ref_max_score"] = float(np.mean(evaluate_policy(ref_env, policies["expert"], cfg.reference_episodes, cfg.seed + 31_000).returns))
    log(f"[collect] references {refs}")

    if need_sac:
        os.makedirs(cfg.out_dir, exist_ok=True)
        pol_path = os.path.join(cfg.out_dir, f"{task_key(cfg.env)}-policies-v5-seed{cfg.seed}.pt")
        torch.save({"medium": medium, "expert": expert, "obs_dim": obs_dim, "act_dim": act_dim,
                    "hidden": cfg.sac.hidden, "layers": cfg.sac.layers,
                    "snapshot_returns": [(s["step"], s["eval_return"]) for s in snapshots]}, pol_path)

    made: dict[str, dict[str, np.ndarray]] = {}
    natural: dict[str, list[float]] = {}  # returns of the episodes that ended by themselves (not cut by the size)
    t_roll = time.perf_counter()
    for i, level in enumerate(("random", "medium", "expert")):
        if level in cfg.levels or (level in ("medium", "expert") and "medium-expert" in cfg.levels):
            made[level], natural[level] = rollout_dataset(env, policies[level], cfg.size, seed=cfg.seed + 40_000 + i)
    policy_desc = {
        "random": "uniform random actions",
        "medium": f"SAC actor at env step {medium['step']} (eval return {medium['eval_return']:.1f})" if medium else "",
        "expert": f"SAC actor at env step {expert['step']} (eval return {expert['eval_return']:.1f})" if expert else "",
    }
    if "medium-replay" in cfg.levels:
        mr = buf.prefix(medium["step"])
        cut = not (mr["terminals"][-1] or mr["timeouts"][-1])
        if cut:
            mr["timeouts"][-1] = True  # the buffer stops mid-episode at the snapshot: mark the cut
        made["medium-replay"] = mr
        natural["medium-replay"] = episode_returns(mr)[:-1] if cut else episode_returns(mr)
        policy_desc["medium-replay"] = f"SAC replay buffer, env steps 1..{medium['step']} (up to the medium snapshot)"
    if "medium-expert" in cfg.levels:
        made["medium-expert"] = {k: np.concatenate([made["medium"][k], made["expert"][k]]) for k in made["medium"]}
        natural["medium-expert"] = natural["medium"] + natural["expert"]
        policy_desc["medium-expert"] = policy_desc["medium"] + " + " + policy_desc["expert"]
    t_roll = time.perf_counter() - t_roll

    for level in cfg.levels:
        data = made[level]
        meta = dict(base_meta, level=level, policy=policy_desc[level], size=int(len(data["rewards"])),
                    returns=return_stats(natural[level]),
                    cut_episodes=len(episode_returns(data)) - len(natural[level]), **refs)
        if need_sac:
            meta["sac"] = {"train_steps": cfg.train_steps, "medium_step": medium["step"], "expert_step": expert["step"],
                           "medium_eval_return": medium["eval_return"], "expert_eval_return": expert["eval_return"]}
        paths[level] = str(write_d4rl(dataset_path(cfg, level), data, meta))
        if cfg.minari:
            minari_paths[level] = str(write_minari(os.path.join(cfg.out_dir, "minari"),
                                                   f"ssmrl/{task_key(cfg.env)}/{level}-seed{cfg.seed}-v0", data, meta))
        log(f"[collect] wrote {paths[level]}: {meta['size']} transitions, returns {meta['returns']}")
    return {"paths": paths, "minari_paths": minari_paths, "references": refs,
            "snapshots": [(s["step"], s["eval_return"]) for s in snapshots],
            "timing": {"sac_train_s": t_train, "rollouts_s": t_roll, "total_s": time.perf_counter() - t0}}
