"""World-model-only training from a dataset of episodes (``ssmrl train agent=worldmodel env=memory/...``).

The dataset is collected once with the env's scripted policy (seeded from the run seed; re-collected identically
on resume) or read from an HDF5 file (``worldmodel.dataset``); held-out episodes score the model with S4WM's
memory metrics every ``train.eval_every`` updates and at the end. Everything the loop owns (model, optimiser,
schedule, sampler states, generators, counters) is checkpointed, so re-running the command on the same run
directory continues exactly where the last checkpoint left off. ``train.steps`` counts updates.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

import envs
from ssmrl.optim import build_optimizer, optimizer_step
from agents.worldmodel import data as D
from agents.worldmodel import metrics as M
from agents.worldmodel.config import WorldModelTrainConfig
from agents.worldmodel.evaluate import evaluate
from ssmrl.replay import ReplayBuffer, to_torch
from ssmrl.runs.interrupt import StopRequest
from ssmrl.runs.metrics import RunningMeans
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run
from ssmrl.runs.schema import resolve_device
from ssmrl.runs.seeding import GeneratorCheckpoint, Seeds, seed_everything
from ssmrl.world_models import WorldModel, make_config


@dataclasses.dataclass
class Dataset:
    """Training records, held-out windows and what the metrics need."""

    train: dict[str, np.ndarray]  # records {key: (N, ...)}
    eval_windows: dict[str, np.ndarray]  # {key: (E, context + query, ...)}
    context: int
    query: int
    classes: np.ndarray  # reward values the env gives (from the training data)
    settings: dict[str, Any]
    spaces: dict[str, Any]


def section(cfg: Any) -> WorldModelTrainConfig:
    wcfg = getattr(cfg, "worldmodel", None)
    if not isinstance(wcfg, WorldModelTrainConfig):
        raise TypeError("the run config has no 'worldmodel' section (ssmrl.runs.schema.Config needs a "
                        "`worldmodel: WorldModelTrainConfig` field)")
    return wcfg


def build_dataset(cfg: Any) -> Dataset:
    """Collect (or load) the training records and the held-out evaluation windows for run config ``cfg``."""
    wcfg = section(cfg)
    seeds = Seeds(cfg.seed)
    if wcfg.dataset:
        records = D.load_hdf5(wcfg.dataset)
        train, held = D.split_episodes(records, wcfg.eval_episodes)
        lengths = [b - a for a, b in D.episode_bounds(held["is_first"])]
        episode_length = wcfg.episode_length or min(lengths) - 1
        settings: dict[str, Any] = {"dataset": wcfg.dataset}
    else:
        options = dict(cfg.env.options)
        episode_length = wcfg.episode_length or M.default_episode_length(cfg.env.id)
        # distinct seed ranges for training and held-out episodes (episode i resets with seed + i)
        train, settings = D.collect_records(cfg.env.id, options, wcfg.episodes, episode_length,
                                            seeds.int("dataset") % 2**31)
        held, _ = D.collect_records(cfg.env.id, options, wcfg.eval_episodes, episode_length,
                                    seeds.int("heldout") % 2**31)
    context, query = M.default_split(cfg.env.id, episode_length, wcfg.context, wcfg.query)
    windows = D.episode_windows(held, context + query)
    image = train.get("image")
    action_dim, discrete = _action_space(cfg, train["action"])
    spaces = {
        "image_shape": None if image is None else tuple(int(s) for s in image.shape[1:]),
        "vector_dim": int(np.prod(train["vector"].shape[1:])) if "vector" in train else None,
        "action_dim": action_dim,
        "discrete": discrete,
    }
    classes = M.reward_classes(train["reward"][~train["is_first"].astype(bool)])
    return Dataset(train, windows, context, query, classes, settings, spaces)


def _action_space(cfg: Any, action: np.ndarray) -> tuple[int, bool]:
    """(action_dim, discrete) from the env's action space; from the data when the env cannot be built."""
    try:
        env = envs.make(cfg.env.id, **cfg.env.options)
    except (ValueError, TypeError, ModuleNotFoundError):
        env = None
    if env is not None:
        space = env.action_space
        env.close()
        if hasattr(space, "n"):
            return int(space.n), True
        return int(np.prod(space.shape)), False
    if action.ndim == 1:  # discrete indices
        return int(np.max(action)) + 1, True
    return int(action.shape[-1]), False


def build_model(cfg: Any, spaces: dict[str, Any]) -> WorldModel:
    wm_cfg = make_config(cfg.wm.preset, cfg.wm.size, action_dim=spaces["action_dim"], image_shape=spaces["image_shape"],
                         vector_dim=spaces["vector_dim"], discrete_actions=spaces["discrete"], **cfg.wm.overrides)
    return WorldModel(wm_cfg, seed=Seeds(cfg.seed).int("networks") % 2**31)


class WindowSampler:
    """(B, L) training windows: from episode starts (``episode_start``) or anywhere (``uniform``, the replay
    buffer's own sampler). Its generator state is checkpointed with the buffer's."""

    def __init__(self, replay: ReplayBuffer, mode: str, seed: int):
        self.replay, self.mode = replay, mode
        self.rng = np.random.default_rng(seed)
        self._starts: dict[int, np.ndarray] = {}

    def starts(self, length: int) -> np.ndarray:
        if length not in self._starts:
            bounds = D.episode_bounds(self.replay.stream_arrays(0)["is_first"])
            self._starts[length] = np.array([a for a, b in bounds if b - a >= length], np.int64)
            if not self._starts[length].size:
                raise ValueError(f"no training episode has {length} records (worldmodel.seq_len)")
        return self._starts[length]

    def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        if self.mode == "uniform":
            return self.replay.sample(batch_size, length)
        starts = self.rng.choice(self.starts(length), size=batch_size, replace=True)
        return self.replay.gather(np.zeros(batch_size, np.int64), starts, length)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "replay": self.replay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.replay.load_state_dict(state["replay"])


def _batch(arrays: dict[str, np.ndarray], discrete: bool, device) -> dict[str, torch.Tensor]:
    batch = to_torch({k: v for k, v in arrays.items() if k in ("image", "vector", *D.RECORD_KEYS)}, device)
    if discrete and batch["action"].is_floating_point():
        batch["action"] = batch["action"].round().long()
    return batch


def train_step(wm: WorldModel, opt, sched, batch: dict[str, torch.Tensor], grad_clip: float,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One optimiser step of the world model on ``batch``; returns its metrics as 0-d tensors (and the global
    gradient norm before clipping). The training loop and ``memory_benchmark.py --time-updates`` both call it."""
    wm.train()
    loss, metrics = wm.loss(batch, generator=generator)
    metrics["grad_norm"] = optimizer_step(loss, wm.parameters(), opt, sched, grad_clip)
    return metrics


def run_eval(run: Run, wm: WorldModel, data: Dataset, step: int) -> dict[str, Any]:
    """Score the model on the held-out windows; logs metrics (``eval/*``) and a score line (kind "memory")."""
    wcfg = section(run.config)
    gen = Seeds(run.config.seed).torch(f"eval-{step}", wm.device)
    result = evaluate(wm, data.eval_windows, data.context, data.query, data.classes, batch_size=wcfg.eval_batch,
                      sample=wcfg.eval_sample, generator=gen)
    run.log_score(step, kind="memory", env=run.config.env.id, preset=run.config.wm.preset, **result)
    run.log_metrics(step, {f"eval/{k}": v for k, v in result.items() if isinstance(v, (int, float))})
    return result


def train(run: Run) -> dict[str, Any]:
    """Train the world model of ``run.config`` for ``train.steps`` updates; returns the last evaluation."""
    cfg = run.config
    wcfg = section(cfg)
    seeds = Seeds(cfg.seed)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    clock = time.time()
    data = build_dataset(cfg)
    print(f"dataset: {len(data.train['reward'])} records, {len(data.eval_windows['reward'])} held-out windows, "
          f"context {data.context} + query {data.query}, reward classes {data.classes.tolist()} "
          f"({time.time() - clock:.1f}s)", flush=True)
    wm = build_model(cfg, data.spaces).to(device)
    run.update_info(env_settings=data.settings, parameters={"world_model": wm.num_parameters()},
                    memory_protocol={"context": data.context, "query": data.query, "classes": data.classes.tolist()})
    print(f"world model {cfg.wm.preset}/{cfg.wm.size}: {wm.num_parameters():,} parameters", flush=True)
    opt, sched = build_optimizer(wm.param_groups(wcfg.optimizer.weight_decay), wcfg.optimizer)
    replay_cfg = dataclasses.replace(cfg.replay, seed=seeds.int("replay") % 2**31, directory=None, verbose=False)
    replay = ReplayBuffer.from_arrays(data.train, replay_cfg)
    sampler = WindowSampler(replay, wcfg.windows, seeds.int("windows") % 2**31)
    seq_len = wcfg.seq_len or data.context + data.query
    learn_gen = seeds.torch("learner", device)
    counters = {"updates": 0, "last_eval": 0, "last_checkpoint": 0, "last_log": 0}
    run.checkpointer.register(counters=counters, wm=wm, opt=opt, sched=sched, sampler=sampler,
                              learn_gen=GeneratorCheckpoint(learn_gen))
    if run.resumed and run.checkpointer.latest() is not None:
        step = run.checkpointer.load()
        run.resume_from(step)
        print(f"resumed from checkpoint at update {step}", flush=True)

    means = RunningMeans()
    last: dict[str, Any] = {}
    bar = progress(total=cfg.train.steps, initial=counters["updates"], desc=f"worldmodel {cfg.wm.preset} {cfg.env.id}")
    tick, tick_updates = time.time(), counters["updates"]
    with StopRequest() as stop:
        try:
            while counters["updates"] < cfg.train.steps:
                batch = _batch(sampler.sample(wcfg.batch_size, seq_len), data.spaces["discrete"], device)
                metrics = train_step(wm, opt, sched, batch, wcfg.optimizer.grad_clip, learn_gen)
                counters["updates"] += 1
                bar.update(1)
                means.add(metrics)  # tensors, read back once per log line
                step = counters["updates"]
                if step - counters["last_log"] >= cfg.train.log_every:
                    counters["last_log"] = step
                    now = time.time()
                    row = {f"wm/{k}": v for k, v in means.pop().items()}
                    row["perf/updates_per_s"] = (step - tick_updates) / max(now - tick, 1e-9)
                    tick, tick_updates = now, step
                    run.log_metrics(step, row)
                    bar.set_postfix({"loss": f"{row['wm/loss']:.3g}"})
                if cfg.train.eval_every and step - counters["last_eval"] >= cfg.train.eval_every:
                    counters["last_eval"] = step
                    last = run_eval(run, wm, data, step)
                if step - counters["last_checkpoint"] >= cfg.train.checkpoint_every or stop.requested:
                    counters["last_checkpoint"] = step
                    run.checkpointer.save(step)
                if stop.requested:  # SIGINT/SIGTERM: checkpointed at this update, now stop
                    stop.finish(step)
            step = counters["updates"]
            if counters["last_eval"] != step:
                counters["last_eval"] = step
                last = run_eval(run, wm, data, step)
            if counters["last_checkpoint"] != step:
                counters["last_checkpoint"] = step
                run.checkpointer.save(step)
        finally:
            bar.close()
    print("memory metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float)), flush=True)
    return last
