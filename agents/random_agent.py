"""The uniformly random policy as a "learner": the baseline every agent's curve is compared against.

It runs the same machinery as the learners (rollout engine, episode scores, checkpoints, resume, eval) without
learning, so its ``scores.jsonl`` is directly comparable with theirs.
"""
from __future__ import annotations

from pathlib import Path

import envs
from ssmrl.rollout import RandomPolicy, RolloutConfig, RolloutEngine
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run
from ssmrl.runs.seeding import Seeds, seed_everything


def _engine(run: Run, step: int) -> RolloutEngine:
    cfg = run.config
    # Env seeds depend on the step we (re)start from: a resume begins fresh, reproducible episodes.
    rollout = RolloutConfig(seed=Seeds(cfg.seed).int(f"envs-{step}"), record=False)
    return RolloutEngine.from_env_id(cfg.env.id, cfg.env.num_envs, config=rollout, **cfg.env.options)


def train(run: Run) -> None:
    cfg = run.config
    seed_everything(cfg.seed)
    counters = {"step": 0, "episode": 0}
    probe = envs.make(cfg.env.id, **cfg.env.options)
    _, info = probe.reset(seed=cfg.seed)
    run.update_info(env_settings=info.get("settings", {}))
    policy = RandomPolicy(probe.action_space, cfg.env.num_envs, seed=Seeds(cfg.seed).int("random-policy"))
    probe.close()
    run.checkpointer.register(counters=counters, policy=policy)
    if run.resumed and run.checkpointer.latest() is not None:
        run.resume_from(run.checkpointer.load())
    engine = _engine(run, counters["step"])
    engine.reset()
    last_checkpoint = counters["step"]
    bar = progress(total=cfg.train.steps, initial=counters["step"], desc="random policy")
    while counters["step"] < cfg.train.steps:
        for episode in engine.step(policy):
            counters["episode"] += 1
            run.log_score(counters["step"] + engine.num_envs, kind="train", episode=counters["episode"], env=episode.env,
                          episode_return=episode.episode_return, episode_length=episode.length)
        counters["step"] += engine.num_envs
        bar.update(engine.num_envs)
        if counters["step"] - last_checkpoint >= cfg.train.checkpoint_every or counters["step"] >= cfg.train.steps:
            last_checkpoint = counters["step"]
            run.checkpointer.save(counters["step"])
    bar.close()
    engine.close()


def load_policy(run: Run, checkpoint: Path | None, greedy: bool, num_envs: int):
    """The random policy needs no weights; its step is the checkpoint's (0 without one)."""
    probe = envs.make(run.config.env.id, **run.config.env.options)
    policy = RandomPolicy(probe.action_space, num_envs, seed=Seeds(run.config.seed).int("eval-policy"))
    probe.close()
    step = 0
    if checkpoint is not None or run.checkpointer.latest() is not None:
        step = int(run.checkpointer.read(checkpoint)["step"])
    return policy, step
