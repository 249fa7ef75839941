"""World-model-only training from a dataset of episodes (``ssmrl train agent=worldmodel env=memory/...``).

The training data is a fixed set collected once with the env's scripted policy (seeded from the run seed;
re-collected identically on resume), a stream of fresh scripted-policy episodes (``worldmodel.stream`` > 0; a pool
regenerated from the episode counter on resume) or an HDF5 file (``worldmodel.dataset``); a fixed set of held-out
episodes (its own seed stream) and as many training episodes score the model with S4WM's memory metrics every
``train.eval_every`` updates and at the end (held-out under the plain names, training set as ``train_*``).
Everything the loop owns (model, optimiser, schedule, sampler states, generators, counters) is checkpointed, so
re-running the command on the same run directory continues exactly where the last checkpoint left off.
``train.steps`` counts updates.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

import envs
from envs.spec import EnvSpec, ObservationSpec
from ssmrl.optim import build_optimizer, optimizer_step
from agents.worldmodel import data as D
from agents.worldmodel import metrics as M
from agents.worldmodel.config import WorldModelTrainConfig
from agents.worldmodel.evaluate import evaluate
from ssmrl.replay import ReplayBuffer, episode_bounds, to_torch
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

    train: dict[str, np.ndarray]  # records {key: (N, ...)}: the fixed set, or the stream's first pool
    eval_windows: dict[str, np.ndarray]  # {key: (E, context + query, ...)}
    context: int
    query: int
    classes: np.ndarray  # reward values the env gives (from the training data)
    settings: dict[str, Any]
    spec: EnvSpec  # the env's observations and actions (what the world model is built for)
    episode_length: int


def section(cfg: Any) -> WorldModelTrainConfig:
    wcfg = getattr(cfg, "worldmodel", None)
    if not isinstance(wcfg, WorldModelTrainConfig):
        raise TypeError("the run config has no 'worldmodel' section (ssmrl.cli.config.Config needs a "
                        "`worldmodel: WorldModelTrainConfig` field)")
    return wcfg


def build_dataset(cfg: Any, truth: bool = False) -> Dataset:
    """Collect (or load) the training records and the held-out evaluation windows for run config ``cfg``.

    With ``worldmodel.stream`` > 0 the training records are the stream's first ``worldmodel.episodes`` episodes
    (the sampler's initial pool). ``truth`` keeps the env's ground truth (``truth/<key>``) in the collected records
    and windows (for :mod:`agents.worldmodel.ceiling`).
    """
    wcfg = section(cfg)
    seeds = Seeds(cfg.seed)
    if wcfg.dataset:
        records = D.load_hdf5(wcfg.dataset)
        train, held = D.split_episodes(records, wcfg.eval_episodes)
        starts, ends = episode_bounds(held["is_first"])
        lengths = (ends - starts).tolist()
        episode_length = wcfg.episode_length or min(lengths) - 1
        settings: dict[str, Any] = {"dataset": wcfg.dataset}
    else:
        options = dict(cfg.env.options)
        episode_length = wcfg.episode_length or M.default_episode_length(cfg.env.id)
        if wcfg.stream:
            env = D.collection_env(cfg.env.id, options, episode_length)
            pool, settings = D.stream_episodes(env, seeds.int("stream"), range(wcfg.episodes), episode_length, truth)
            env.close()
            train = {k: v.reshape(-1, *v.shape[2:]) for k, v in pool.items()}
        else:
            # distinct seed ranges for training and held-out episodes (episode i resets with seed + i)
            train, settings = D.collect_records(cfg.env.id, options, wcfg.episodes, episode_length,
                                                seeds.int("dataset") % 2**31, truth)
        # the held-out set is the same whatever the training data (fixed set or stream)
        held, _ = D.collect_records(cfg.env.id, options, wcfg.eval_episodes, episode_length,
                                    seeds.int("heldout") % 2**31, truth)
    context, query = M.default_split(cfg.env.id, episode_length, wcfg.context, wcfg.query)
    windows = D.episode_windows(held, context + query)
    classes = M.reward_classes(train["reward"][~train["is_first"].astype(bool)])
    return Dataset(train, windows, context, query, classes, settings, dataset_spec(cfg, train), episode_length)


def _records_spec(records: dict[str, np.ndarray]) -> EnvSpec:
    """An EnvSpec read from records alone: their "image" / "vector" keys; actions are indices when 1-D (as many as
    the largest seen + 1), else vectors of unknown bounds."""
    obs = tuple(ObservationSpec(k, tuple(int(s) for s in records[k].shape[1:]), records[k].dtype.name)
                for k in ("image", "vector") if k in records)
    action = np.asarray(records["action"])
    if action.ndim == 1:
        return EnvSpec(obs, action_dim=int(np.max(action)) + 1, discrete=True)
    dim = int(action.shape[-1])
    return EnvSpec(obs, action_dim=dim, discrete=False, action_low=(-np.inf,) * dim, action_high=(np.inf,) * dim)


def dataset_spec(cfg: Any, records: dict[str, np.ndarray]) -> EnvSpec:
    """``envs.env_spec`` of the run's env; read from the records when the env cannot be built here (a dataset of
    a suite not installed). The records' "image" / "vector" shapes must be the env's (ValueError otherwise)."""
    try:
        env = envs.make(cfg.env.id, **cfg.env.options)
    except (ValueError, TypeError, ModuleNotFoundError):
        return _records_spec(records)
    try:
        spec = envs.env_spec(env)
    finally:
        env.close()
    data = _records_spec(records)
    for key in ("image", "vector"):
        have, want = data.observation(key), spec.observation(key)
        if (have and have.shape) != (want and want.shape):
            raise ValueError(f"the dataset's {key!r} observations have shape {have and have.shape}, the env "
                             f"{cfg.env.id} with options {dict(cfg.env.options)} gives {want and want.shape}")
    return spec


def build_model(cfg: Any, spec: EnvSpec) -> WorldModel:
    wm_cfg = make_config(cfg.wm.preset, cfg.wm.size, env=spec, **cfg.wm.overrides)
    return WorldModel(wm_cfg, seed=Seeds(cfg.seed).int("networks") % 2**31)


class WindowSampler:
    """(B, L) training windows of a fixed set: from episode starts (``episode_start``) or anywhere (``uniform``,
    the replay buffer's own sampler). Its generator state is checkpointed with the buffer's."""

    def __init__(self, replay: ReplayBuffer, mode: str, seed: int):
        self.replay, self.mode = replay, mode
        self.rng = np.random.default_rng(seed)
        self._starts: dict[int, np.ndarray] = {}
        self._train_windows: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def train_windows(self, n: int, length: int) -> dict[str, np.ndarray]:
        """The first ``length`` records of the first ``n`` training episodes (for the training-set metrics)."""
        if (n, length) not in self._train_windows:
            self._train_windows[n, length] = D.episode_windows(self.replay.stream_arrays(0), length, limit=n)
        return self._train_windows[n, length]

    def starts(self, length: int) -> np.ndarray:
        if length not in self._starts:
            starts, ends = episode_bounds(self.replay.stream_arrays(0)["is_first"])
            self._starts[length] = starts[ends - starts >= length]
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


class StreamSampler:
    """(B, L) training windows from a pool of ``size`` scripted-policy episodes that a stream keeps fresh.

    Before every ``sample`` the ``fresh`` oldest episodes are replaced by the stream's next ones
    (:func:`agents.worldmodel.data.stream_episodes`; episode k lives in slot ``k % size``), then B pool episodes
    are drawn uniformly, each windowed from its first record (``episode_start``) or from a uniform offset inside
    it (``uniform``; windows never cross episodes). The state is the window generator plus the number of stream
    episodes generated; loading it regenerates the pool from that count, so a resumed run draws the same batches.
    """

    KEYS = ("image", "vector", *D.RECORD_KEYS)

    def __init__(self, env_id: str, options: dict[str, Any], episode_length: int, pool: dict[str, np.ndarray],
                 size: int, fresh: int, mode: str, stream_seed: int, seed: int):
        if not 1 <= fresh <= size:
            raise ValueError(f"fresh episodes per update must lie in [1, {size}], got {fresh}")
        self.env = D.collection_env(env_id, options, episode_length)
        self.episode_length, self.size, self.fresh, self.mode = episode_length, size, fresh, mode
        self.stream_seed = stream_seed
        self.rng = np.random.default_rng(seed)
        records = episode_length + 1
        self.pool = {k: np.array(v[:size * records]).reshape(size, records, *v.shape[1:])
                     for k, v in pool.items() if k in self.KEYS}
        if len(self.pool["reward"]) != size:
            raise ValueError(f"the initial pool holds {len(self.pool['reward'])} episodes, expected {size}")
        self.generated = size  # stream episodes 0 .. size-1 form the initial pool

    def _write(self, indices: range) -> None:
        episodes, _ = D.stream_episodes(self.env, self.stream_seed, indices, self.episode_length)
        slots = np.asarray(indices, np.int64) % self.size
        for k, v in self.pool.items():
            v[slots] = episodes[k]

    def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        records = self.episode_length + 1
        if length > records:
            raise ValueError(f"windows of {length} records do not fit into episodes of {records} records")
        self._write(range(self.generated, self.generated + self.fresh))
        self.generated += self.fresh
        slots = self.rng.integers(self.size, size=batch_size)
        offsets = (self.rng.integers(0, records - length + 1, size=batch_size) if self.mode == "uniform"
                   else np.zeros(batch_size, np.int64))
        steps = offsets[:, None] + np.arange(length)
        return {k: v[slots[:, None], steps] for k, v in self.pool.items()}

    def train_windows(self, n: int, length: int) -> dict[str, np.ndarray]:
        """The first ``length`` records of the ``n`` oldest pool episodes: the ones trained on the longest."""
        oldest = np.arange(self.generated - self.size, self.generated - self.size + min(n, self.size))
        return {k: v[oldest % self.size, :length] for k, v in self.pool.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "generated": self.generated}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        generated = int(state["generated"])
        if generated != self.generated:
            self._write(range(generated - self.size, generated))
            self.generated = generated


def make_sampler(cfg: Any, data: Dataset) -> WindowSampler | StreamSampler:
    """The training-window sampler of run config ``cfg``: a stream (``worldmodel.stream`` > 0) or the fixed set."""
    wcfg = section(cfg)
    seeds = Seeds(cfg.seed)
    if wcfg.stream:
        return StreamSampler(cfg.env.id, dict(cfg.env.options), data.episode_length, data.train, wcfg.episodes,
                             wcfg.stream, wcfg.windows, seeds.int("stream"), seeds.int("windows") % 2**31)
    replay_cfg = dataclasses.replace(cfg.replay, seed=seeds.int("replay") % 2**31, directory=None, verbose=False)
    replay = ReplayBuffer.from_arrays(data.train, replay_cfg)
    return WindowSampler(replay, wcfg.windows, seeds.int("windows") % 2**31)


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


def evaluate_sets(cfg: Any, wm: WorldModel, data: Dataset, sampler: WindowSampler | StreamSampler,
                  step: int) -> dict[str, Any]:
    """The memory metrics on the held-out windows (plain names, :func:`agents.worldmodel.evaluate.evaluate`) and on
    as many training episodes (``train_`` + name; ``train_reward_chance`` is the training set's majority rate)."""
    wcfg = section(cfg)
    seeds = Seeds(cfg.seed)
    kwargs = {"batch_size": wcfg.eval_batch, "sample": wcfg.eval_sample}
    held = evaluate(wm, data.eval_windows, data.context, data.query, data.classes,
                    generator=seeds.torch(f"eval-{step}", wm.device), **kwargs)
    windows = sampler.train_windows(wcfg.eval_episodes, data.context + data.query)
    train = evaluate(wm, windows, data.context, data.query, data.classes,
                     generator=seeds.torch(f"eval-train-{step}", wm.device), **kwargs)
    skip = ("context", "query", "gen_mse_per_step")
    return {**held, **{f"train_{k}": v for k, v in train.items() if k not in skip}}


def run_eval(run: Run, wm: WorldModel, data: Dataset, sampler: WindowSampler | StreamSampler,
             step: int) -> dict[str, Any]:
    """Score the model on the held-out and training windows (:func:`evaluate_sets`); logs metrics (``eval/*``)
    and a score line (kind "memory")."""
    result = evaluate_sets(run.config, wm, data, sampler, step)
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
    source = f"stream of {wcfg.stream} fresh episodes per update, pool" if wcfg.stream else "fixed set"
    print(f"dataset: {source} {len(data.train['reward'])} records, {len(data.eval_windows['reward'])} held-out windows, "
          f"context {data.context} + query {data.query}, reward classes {data.classes.tolist()} "
          f"({time.time() - clock:.1f}s)", flush=True)
    wm = build_model(cfg, data.spec).to(device)
    # the resolved architecture (see agents/dreamer/train) beside the env settings, in one write of run.json
    run.update_info(world_model=dataclasses.asdict(wm.cfg), env_settings=data.settings,
                    parameters={"world_model": wm.num_parameters()},
                    memory_protocol={"context": data.context, "query": data.query, "classes": data.classes.tolist(),
                                     "stream": wcfg.stream, "episodes": wcfg.episodes})
    print(f"world model {cfg.wm.preset}/{cfg.wm.size}: {wm.num_parameters():,} parameters", flush=True)
    opt, sched = build_optimizer(wm.param_groups(wcfg.optimizer.weight_decay), wcfg.optimizer)
    sampler = make_sampler(cfg, data)
    if wcfg.stream:  # the sampler holds its own copy of the initial pool
        data = dataclasses.replace(data, train={})
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
                batch = _batch(sampler.sample(wcfg.batch_size, seq_len), data.spec.discrete, device)
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
                    last = run_eval(run, wm, data, sampler, step)
                if step - counters["last_checkpoint"] >= cfg.train.checkpoint_every or stop.requested:
                    counters["last_checkpoint"] = step
                    run.checkpointer.save(step)
                if stop.requested:  # SIGINT/SIGTERM: checkpointed at this update, now stop
                    stop.finish(step)
            step = counters["updates"]
            if counters["last_eval"] != step:
                counters["last_eval"] = step
                last = run_eval(run, wm, data, sampler, step)
            if counters["last_checkpoint"] != step:
                counters["last_checkpoint"] = step
                run.checkpointer.save(step)
        finally:
            bar.close()
    print("memory metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float)), flush=True)
    return last
