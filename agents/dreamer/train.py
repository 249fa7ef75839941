"""The online training loop: random warm-up, then ``train_ratio`` updates per env step, periodic evaluation and
checkpoints. Everything the loop owns (networks, optimisers, replay index, counters, generators) is in the
checkpoint, so ``ssmrl train`` on the same run directory continues where the last checkpoint left off.
"""
from __future__ import annotations

import dataclasses

import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import envs
from agents.dreamer.agent import DreamerAgent, check_env_spec, replay_config, sample_batches
from ssmrl.evaluation import play_episodes, summarize
from ssmrl.replay import Candidates, ReplayBuffer, ReplayConfig
from ssmrl.rollout import RandomPolicy, RolloutConfig, RolloutEngine
from ssmrl.runs.checkpoint import CheckpointError
from ssmrl.runs.interrupt import StopRequest
from ssmrl.runs.metrics import RunningMeans
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run
from ssmrl.runs.schema import resolve_device
from ssmrl.runs.seeding import GeneratorCheckpoint, Seeds, seed_everything


def _env_spec(cfg) -> tuple[envs.EnvSpec, gym.Space, dict]:
    """The run's env once: its spec, its action space (for the warm-up policy) and its settings."""
    env = envs.make(cfg.env.id, **cfg.env.options)
    _, info = env.reset(seed=cfg.seed)
    spec, action_space = envs.env_spec(env), env.action_space
    env.close()
    return spec, action_space, info.get("settings", {})


def check(cfg, env) -> None:
    """What ``ssmrl train`` checks before creating the run directory: the world model's configuration for ``env``
    (the run's env, built by the caller; sizes, override keys), built without weights. Raises ConfigError naming
    the section."""
    from ssmrl.runs.config import ConfigError
    from ssmrl.world_models import make_config

    spec = envs.env_spec(env)
    check_env_spec(spec)
    try:
        make_config(cfg.wm.preset, cfg.wm.size, env=spec, **cfg.wm.overrides).validate()
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"wm: {err.args[0] if err.args else err}") from err


def build_agent(run: Run) -> tuple[DreamerAgent, gym.Space, dict]:
    """The run's agent (fresh weights), the env's action space and its settings."""
    cfg = run.config
    spec, action_space, settings = _env_spec(cfg)
    device = resolve_device(cfg.device)
    agent = DreamerAgent(cfg.wm, cfg.ac, cfg.dreamer, spec, device, seed=Seeds(cfg.seed).int("networks") % 2**31)
    return agent, action_space, settings


# Steps of each evaluation env kept for the world model's held-out losses (FIFO: the last ones played).
FRESH_STEPS_PER_ENV = 4096


def evaluate(run: Run, agent: DreamerAgent, step: int, episodes: int, replay: ReplayBuffer | None = None) -> dict:
    """:func:`evaluation`, logged into the run (scores.jsonl, metrics.jsonl); returns the summary."""
    results, summary, metrics = evaluation(run, agent, step, episodes, replay)
    run.log_score(step, kind="eval", **{k: v for k, v in summary.items() if k != "normalised_reference"},
                  returns=[r["return"] for r in results])
    run.log_metrics(step, metrics)
    return summary


def evaluation(run: Run, agent: DreamerAgent, step: int, episodes: int, replay: ReplayBuffer | None = None
               ) -> tuple[list[dict], dict, dict]:
    """Play the evaluation of env step ``step`` (``episodes`` episodes, seeded by the run's seed and ``step``).
    With ``replay`` (the training replay) and ``train.eval_wm_windows`` > 0, also the world model's losses on the
    steps just played and on the replay (:func:`world_model_gap`). Returns (per-episode results, their summary,
    metrics ``eval/*`` and ``wm_eval/*``); writes nothing."""
    cfg = run.config
    num_envs = min(episodes, cfg.env.num_envs)
    fresh = None
    if replay is not None and cfg.train.eval_wm_windows > 0:
        fresh = ReplayBuffer(ReplayConfig(capacity=num_envs * FRESH_STEPS_PER_ENV, num_streams=num_envs, verbose=False))
    policy = agent.policy(greedy=cfg.dreamer.greedy_eval, generator=Seeds(cfg.seed).torch(f"eval-{step}", agent.device))
    results = play_episodes(cfg.env.id, policy, episodes, num_envs=num_envs, seed=Seeds(cfg.seed).int(f"eval-envs-{step}"),
                            options={**cfg.env.options, **cfg.env.eval_options}, replay=fresh)
    summary = summarize(cfg.env.id, results)
    metrics = {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
    if fresh is not None:
        metrics.update(world_model_gap(run, agent, fresh, replay, step))
    return results, summary, metrics


def spread_windows(replay: ReplayBuffer, count: int, length: int, within_episode: bool,
                   newest: int | None = None) -> dict[str, np.ndarray] | None:
    """Up to ``count`` windows of ``length`` steps whose starts are spread evenly over the valid starts of
    ``replay`` (stream by stream, oldest first within each; deterministic: no sampler is drawn from). ``newest``:
    only windows that end within the newest ``newest`` steps of their stream. Arrays (B, L, ...); None if none fits."""
    cands = replay.candidates(length, within_episode=within_episode)
    if newest is not None:
        keep = np.nonzero(cands.age < newest)[0]
        cands = Candidates(cands.stream[keep], cands.start[keep], cands.slot[keep], cands.age[keep])
    if len(cands) == 0:
        return None
    pick = np.unique(np.linspace(0, len(cands) - 1, num=min(count, len(cands))).round().astype(np.int64))
    return replay.gather(cands.stream[pick], cands.start[pick], length)


def world_model_gap(run: Run, agent: DreamerAgent, fresh: ReplayBuffer, replay: ReplayBuffer, step: int) -> dict[str, float]:
    """The world model's losses (no update) on ``train.eval_wm_windows`` windows of ``seq_len`` steps each, spread over

    - ``fresh``: the evaluation just played (the last ``FRESH_STEPS_PER_ENV`` steps of each evaluation env), data
      it never trained on -> ``wm_eval/fresh/*``;
    - the whole training replay, warm-up included -> ``wm_eval/replay/*``;
    - the replay's newest ``eval_wm_windows * seq_len`` steps per stream, from nearly the current policy and
      trained on least -> ``wm_eval/recent/*``,

    each with the same seeded generator, plus ``wm_eval/<part>/windows`` (how many fitted). Fresh and recent losses
    far above the replay's: the model fits what it trained on most and not the game (overfitting); fresh far above
    recent: the evaluation reaches states the replay lacks (or ``env.eval_options`` differ)."""
    cfg = run.config
    count, length = cfg.train.eval_wm_windows, agent.cfg.seq_len
    parts = (("fresh", fresh, None), ("replay", replay, None), ("recent", replay, count * length))
    metrics: dict[str, float] = {}
    for name, buffer, newest in parts:
        windows = spread_windows(buffer, count, length, cfg.replay.within_episode, newest)
        if windows is None:
            print(f"wm_eval/{name}: no window of {length} steps fits (step {step}); not logged", flush=True)
            continue
        generator = Seeds(cfg.seed).torch(f"wm-eval-{step}", agent.device)
        total, sums = 0, {}
        for lo in range(0, len(windows["reward"]), agent.cfg.batch_size):  # the training batch size bounds memory
            chunk = {k: v[lo:lo + agent.cfg.batch_size] for k, v in windows.items()}
            n = len(chunk["reward"])
            for k, v in agent.world_model_losses(agent.to_batch(chunk), generator).items():
                sums[k] = sums.get(k, 0.0) + n * v
            total += n
        metrics.update({f"wm_eval/{name}/{k}": v / total for k, v in sums.items()})
        metrics[f"wm_eval/{name}/windows"] = total
    return metrics


def replay_videos(run: Run, agent: DreamerAgent, replay: ReplayBuffer, step: int, sequences: int = 2) -> None:
    """Periodic open-loop videos from replay windows: ``videos/step-<step>/`` and TensorBoard images."""
    if agent.spec.image_shape is None:
        return
    from agents.dreamer.videos import write_videos

    context, horizon = agent.cfg.imag_context, 2 * agent.cfg.horizon
    # A private generator: videos must not shift the learner's random streams.
    rng = np.random.default_rng(Seeds(run.config.seed).int(f"videos-{step}"))
    cands = replay.candidates(context + horizon)
    if len(cands) == 0:
        return
    pick = rng.choice(len(cands), size=min(sequences, len(cands)), replace=False)
    window = replay.gather(cands.stream[pick], cands.start[pick], context + horizon)
    generator = Seeds(run.config.seed).torch(f"videos-{step}", agent.device)
    summary = write_videos(run, agent, window, context, horizon, step, run.directory / "videos" / f"step-{step}", generator)
    run.log_metrics(step, {"video/open_loop_mse": float(np.mean([s["open_loop_mse"] for s in summary]))})


def train(run: Run) -> None:
    cfg = run.config
    dcfg = cfg.dreamer
    seeds = Seeds(cfg.seed)
    seed_everything(cfg.seed)
    agent, action_space, settings = build_agent(run)
    # the resolved world-model architecture (preset + size + overrides + env spec), next to what config.yaml names
    run.update_info(world_model=dataclasses.asdict(agent.wm.cfg), env_settings=settings,
                    parameters={"world_model": agent.wm.num_parameters(),
                                "actor_critic": sum(p.numel() for p in agent.ac.parameters())})
    print(f"world model {cfg.wm.preset}/{cfg.wm.size}: {agent.wm.num_parameters():,} parameters", flush=True)
    num_envs = cfg.env.num_envs
    replay_cfg = replay_config(cfg.replay, dcfg, num_streams=num_envs, seed=seeds.int("replay") % 2**31,
                               directory=str(run.directory / "replay"))
    replay = ReplayBuffer(replay_cfg)
    learn_gen = seeds.torch("learner", agent.device)
    act_gen = seeds.torch("acting", agent.device)
    warmup = RandomPolicy(action_space, num_envs, seed=seeds.int("warmup"))
    counters = {"env_steps": 0, "episodes": 0, "update_credit": 0.0, "last_eval": 0, "last_checkpoint": 0, "last_log": 0,
                "last_video": 0}
    run.checkpointer.register(counters=counters, agent=agent, replay=replay, warmup=warmup,
                              learn_gen=GeneratorCheckpoint(learn_gen), act_gen=GeneratorCheckpoint(act_gen))
    if run.resumed and run.checkpointer.latest() is not None:
        step = run.checkpointer.load()
        run.resume_from(step)
        print(f"resumed from checkpoint at env step {step} ({agent.updates} updates, {len(replay)} replay steps)", flush=True)

    # Env seeds depend on the step we (re)start from: a resume starts fresh, reproducible episodes.
    rollout_cfg = RolloutConfig(seed=seeds.int(f"envs-{counters['env_steps']}") % 2**31)
    engine = RolloutEngine.from_env_id(cfg.env.id, num_envs, replay, rollout_cfg, **cfg.env.options)
    policy = agent.policy(greedy=False, generator=act_gen)
    averages = RunningMeans()
    bar = progress(total=cfg.train.steps, initial=counters["env_steps"], desc=f"{cfg.agent} {cfg.env.id}")
    clock, clock_steps = time.time(), counters["env_steps"]
    with StopRequest() as stop:
        try:
            while counters["env_steps"] < cfg.train.steps:
                acting = warmup if counters["env_steps"] < dcfg.warmup_steps else policy
                for episode in engine.step(acting):
                    counters["episodes"] += 1
                    run.log_score(counters["env_steps"] + num_envs, kind="train", episode=counters["episodes"],
                                  episode_return=episode.episode_return, episode_length=episode.length)
                    averages.add({"episode/return": episode.episode_return, "episode/length": episode.length})
                counters["env_steps"] += num_envs
                bar.update(num_envs)
                step = counters["env_steps"]
                if step >= dcfg.warmup_steps:
                    counters["update_credit"] += dcfg.train_ratio * num_envs
                    while counters["update_credit"] >= 1.0:
                        counters["update_credit"] -= 1.0
                        batch, context = sample_batches(replay, agent)
                        averages.add(agent.update(batch, context, learn_gen))
                if step - counters["last_log"] >= cfg.train.log_every:
                    counters["last_log"] = step
                    now = time.time()
                    metrics = averages.pop()
                    metrics.update({"perf/env_steps_per_s": (step - clock_steps) / max(now - clock, 1e-9),
                                    "perf/updates": agent.updates, "perf/replay_steps": len(replay)})
                    clock, clock_steps = now, step
                    run.log_metrics(step, metrics)
                    bar.set_postfix({k: f"{metrics[k]:.3g}" for k in ("episode/return", "wm/loss") if k in metrics})
                if cfg.train.eval_every and cfg.train.eval_episodes and step - counters["last_eval"] >= cfg.train.eval_every:
                    counters["last_eval"] = step
                    evaluate(run, agent, step, cfg.train.eval_episodes, replay)
                if cfg.train.video_every and step >= dcfg.warmup_steps and step - counters["last_video"] >= cfg.train.video_every:
                    counters["last_video"] = step
                    replay_videos(run, agent, replay, step)
                if step - counters["last_checkpoint"] >= cfg.train.checkpoint_every or stop.requested:
                    counters["last_checkpoint"] = step
                    run.checkpointer.save(step)
                if stop.requested:  # SIGINT/SIGTERM: checkpointed at this step, now stop
                    stop.finish(step)
            if counters["last_checkpoint"] != counters["env_steps"]:
                counters["last_checkpoint"] = counters["env_steps"]
                run.checkpointer.save(counters["env_steps"])
        finally:
            bar.close()
            engine.close()


def load_agent(run: Run, checkpoint: Path | None = None, payload: dict | None = None) -> tuple[DreamerAgent, int]:
    """The run's networks with the weights of ``checkpoint`` (default: the latest), for eval and imagine; the
    optimiser state is not needed there and is not loaded. ``payload``: that checkpoint already read by the caller
    (``run.checkpointer.read``), so that it is read once. Returns (agent, step)."""
    agent, _, _ = build_agent(run)
    payload = run.checkpointer.read(checkpoint) if payload is None else payload
    state = payload["objects"].get("agent")
    if state is None:
        raise CheckpointError(f"checkpoint of {run.directory} holds no 'agent' (objects: {sorted(payload['objects'])})")
    try:
        agent.wm.load_state_dict(state["wm"])
        agent.ac.load_state_dict(state["ac"]["model"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint does not match the run's presets (agent={run.config.agent} "
            f"wm={run.config.wm.preset}/{run.config.wm.size} env={run.config.env.id}): {err}"
        ) from err
    return agent, int(payload["step"])


def load_policy(run: Run, checkpoint: Path | None, greedy: bool, num_envs: int):
    """The trained agent's policy for ``ssmrl eval``."""
    agent, step = load_agent(run, checkpoint)
    return agent.policy(greedy=greedy, generator=Seeds(run.config.seed).torch("eval-cli", agent.device)), step
