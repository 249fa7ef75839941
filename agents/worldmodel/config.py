"""Typed settings of world-model-only training from a dataset of episodes (the S4WM-style memory benchmark).

The world model itself is chosen by the run's ``wm`` section (``wm.preset=s4wm|s5wm|drama|rssm|transformer``,
``wm.size``, ``wm.overrides``); the number of updates, logging, evaluation and checkpoint intervals come from the
run's ``train`` section (``train.steps`` counts updates here). Everything else lives in this section.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ssmrl.optim import OptimizerConfig

WINDOWS = ("episode_start", "uniform")


def _optimizer() -> OptimizerConfig:
    # Adam at 3e-4 with a plain eps: S4WM trains its world models with Adam (its exact constants are unpublished).
    return OptimizerConfig(name="adam", lr=3e-4, eps=1e-8, warmup_updates=0, grad_clip=100.0)


@dataclass
class WorldModelTrainConfig:
    """World-model-only training and the memory metrics.

    Data:
        episodes: training episodes collected with the env's scripted policy (seeded from the run seed); with
            ``stream`` > 0, the size of the pool of episodes held in memory.
        stream: 0 trains on the fixed set of ``episodes`` episodes. K > 0 trains on a stream of fresh episodes
            from the scripted policy: before every update the K oldest episodes of the pool are replaced by the
            next K of the stream, so an episode is sampled ``batch_size / K`` times on average (K =
            ``batch_size``: about once). Stream episode k is a pure function of (run seed, k) (its own env reset
            seed and policy generator, :func:`agents.worldmodel.data.stream_episodes`), so a resumed run
            regenerates its pool from the episode counter and continues exactly. Needs a memory env.
        eval_episodes: held-out episodes (their own seed stream, the same for every ``stream`` setting) on which
            the metrics are computed; the training-set metrics (``train_*``) use as many training episodes (fixed
            set: its first ones; stream: the oldest ones in the pool, i.e. trained on).
        episode_length: agent steps per collected episode (an episode is ``episode_length + 1`` records);
            0 picks the env's default (:func:`agents.worldmodel.metrics.default_episode_length`).
        dataset: path of a D4RL-style HDF5 file to train from instead of collecting (the last
            ``eval_episodes`` episodes of the file are held out for the metrics); "" collects.
    Training:
        batch_size, seq_len: (B, L) windows per update; ``seq_len`` 0 means ``context + query``.
        windows: "episode_start" (every window starts at an episode's first record, like S4WM's training on
            whole episodes: the memory tasks need the start of the episode in view) or "uniform" (any window,
            resets inside it come from ``is_first``).
        optimizer: optimiser, learning rate, warm-up and gradient clipping.
    Metrics (S4WM's protocol):
        context: records observed before imagining; 0 picks the env's default split (see
            :func:`agents.worldmodel.metrics.default_split`).
        query: records imagined open loop with the recorded actions after the context; 0 = the rest of the
            episode.
        eval_batch: episodes per evaluation forward pass.
        eval_sample: sample the latents in evaluation (True) or take their mode (False, deterministic).
    """

    episodes: int = 128
    stream: int = 0
    eval_episodes: int = 32
    episode_length: int = 0
    dataset: str = ""
    batch_size: int = 16
    seq_len: int = 0
    windows: str = "episode_start"
    optimizer: OptimizerConfig = field(default_factory=_optimizer)
    context: int = 0
    query: int = 0
    eval_batch: int = 16
    eval_sample: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, dict):
            self.optimizer = OptimizerConfig(**self.optimizer)
        for name in ("episodes", "eval_episodes", "batch_size", "eval_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"worldmodel.{name}: expected >= 1, got {getattr(self, name)}")
        for name in ("episode_length", "seq_len", "context", "query", "stream"):
            if getattr(self, name) < 0:
                raise ValueError(f"worldmodel.{name}: expected >= 0 (0 picks the default), got {getattr(self, name)}")
        if self.stream > self.episodes:
            raise ValueError(f"worldmodel.stream ({self.stream} fresh episodes per update) must not exceed the pool "
                             f"(worldmodel.episodes = {self.episodes})")
        if self.stream and self.dataset:
            raise ValueError("worldmodel.stream needs the env's scripted policy; it cannot stream from "
                             f"worldmodel.dataset={self.dataset!r} (set worldmodel.stream=0)")
        if self.windows not in WINDOWS:
            raise ValueError(f"worldmodel.windows: expected one of {WINDOWS}, got {self.windows!r}")
