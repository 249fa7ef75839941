"""The uniformly random policy as a "learner": the baseline every agent's curve is compared against.

It runs the same loop as the learners (env steps, episode scores, checkpoints, resume) without learning, so its
``scores.jsonl`` is directly comparable with theirs.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

import envs
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run
from ssmrl.runs.seeding import GeneratorCheckpoint, Seeds, seed_everything


def random_action(space: gym.Space, rng: np.random.Generator):
    """A uniform action from ``space`` drawn with ``rng`` (the space's own RNG is not checkpointed)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    if isinstance(space, gym.spaces.Box):
        return rng.uniform(space.low, space.high).astype(space.dtype)
    raise TypeError(f"random_action supports Discrete and Box spaces, got {space}")


def train(run: Run) -> None:
    cfg = run.config
    seeds = Seeds(cfg.seed)
    seed_everything(cfg.seed)
    env = envs.make(cfg.env.id, **cfg.env.options)
    rng = seeds.numpy("random-agent")
    counters = {"step": 0, "episode": 0, "checkpointed": 0}
    run.checkpointer.register(counters=counters, rng=GeneratorCheckpoint(rng))
    if run.resumed and run.checkpointer.latest() is not None:
        run.resume_from(run.checkpointer.load())
    # Each episode is seeded from the run seed and its index, so a resume replays exactly the same stream.
    _, info = env.reset(seed=seeds.int(f"episode-{counters['episode']}"))
    run.update_info(env_settings=info.get("settings", {}))
    episode_return, length = 0.0, 0
    bar = progress(total=cfg.train.steps, initial=counters["step"], desc="random policy")
    while counters["step"] < cfg.train.steps:
        _, reward, terminated, truncated, info = env.step(random_action(env.action_space, rng))
        episode_return += float(reward)
        length += 1
        counters["step"] += 1
        bar.update(1)
        if terminated or truncated:
            run.log_score(counters["step"], episode=counters["episode"], episode_return=episode_return, episode_length=length)
            run.log_metrics(counters["step"], {"episode/return": episode_return, "episode/length": length})
            counters["episode"] += 1
            _, info = env.reset(seed=seeds.int(f"episode-{counters['episode']}"))
            episode_return, length = 0.0, 0
            # Checkpoints fall on episode boundaries: a resume starts the next, identically seeded episode.
            if counters["step"] - counters["checkpointed"] >= cfg.train.checkpoint_every:
                counters["checkpointed"] = counters["step"]
                run.checkpointer.save(counters["step"])
    bar.close()
    env.close()
