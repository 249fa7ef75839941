"""Throughput of the online Dreamer agent: acting env steps/s, seconds per world-model update and per
actor-critic update, and the projected wall-clock of a full run.

Each configuration is built from the same presets ``ssmrl train`` uses (``agent=drama env=atari100k/Pong`` plus
``key.sub=value`` overrides), a replay buffer is filled with random-policy steps, the agent acts for
``--act-steps`` env steps (one world-model step + actor per env step, env included), then ``--warmup-updates``
untimed and ``--updates`` timed updates run, the world-model half and the actor-critic half timed separately
(``DreamerAgent.update``'s methods: the world-model half is ``train_world_model`` with its replay sample,
the actor-critic half ``imagination_starts`` + ``train_actor_critic``). No training run is started; nothing is written to disk.

    .venv/bin/python scripts/bench_train.py                          # drama on Pong at sizes drama and small
    .venv/bin/python scripts/bench_train.py --sizes small --updates 5 --threads 2 dreamer.imag_batch=256

Projection for ``--steps`` env steps at ``--train-ratio`` (default: the config's) after ``warmup_steps``
random steps: steps * act_s_per_step + (steps - warmup_steps) * train_ratio * (wm_s + ac_s), from wall-clock
times and (``hours_cpu_time``) from this process's CPU time, which on a shared machine leaves out the time spent
waiting for a core (with ``--threads 1`` it approximates the wall-clock on an otherwise idle core).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from ssmrl.bench.output import emit


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


def _config(words: list[str]):
    from ssmrl.cli.config import resolve

    return resolve(words)


def setup(words: list[str], seed: int, extra_steps: int = 0):
    """The agent of ``words`` (as ``ssmrl train`` builds it) and a replay filled with random-policy steps:
    returns (cfg, agent, replay, engine, action_space, seconds per random env step). Shared with
    ``profile_train.py``."""
    import envs
    from agents.dreamer.agent import DreamerAgent, replay_config
    from ssmrl.replay import ReplayBuffer
    from ssmrl.rollout import RandomPolicy, RolloutConfig, RolloutEngine
    from ssmrl.runs.schema import resolve_device

    cfg = _config(words)
    from agents.registry import DREAMER_TRAINER, names

    if cfg.agent not in names(trainer=DREAMER_TRAINER):
        raise ValueError(f"needs a world-model agent (agent=drama|s4wm|...), got agent={cfg.agent!r}")
    dcfg = cfg.dreamer
    probe = envs.make(cfg.env.id, **cfg.env.options)
    probe.reset(seed=seed)
    spec, action_space = envs.env_spec(probe), probe.action_space
    probe.close()
    agent = DreamerAgent(cfg.wm, cfg.ac, dcfg, spec, resolve_device(cfg.device), seed=seed)

    # Enough random steps for every sampled window (world-model windows are seq_len long).
    fill = max(dcfg.seq_len, dcfg.imag_context) + 64
    replay = ReplayBuffer(replay_config(cfg.replay, dcfg, capacity=max(fill + extra_steps + 16, 4096), num_streams=1,
                                        directory=None, verbose=False, seed=seed))
    engine = RolloutEngine.from_env_id(cfg.env.id, 1, replay, RolloutConfig(seed=seed), **cfg.env.options)
    t0 = time.perf_counter()
    engine.run(RandomPolicy(action_space, 1, seed=seed), fill)
    return cfg, agent, replay, engine, action_space, (time.perf_counter() - t0) / fill


def bench_one(words: list[str], updates: int, warmup_updates: int, act_steps: int, steps: int,
              train_ratio: float | None, seed: int) -> dict:
    """Measure one configuration (``words``: presets and overrides as on the ``ssmrl train`` line)."""
    from agents.dreamer.agent import sample_batches

    cfg, agent, replay, engine, action_space, random_s = setup(words, seed, act_steps)
    dcfg, device = cfg.dreamer, agent.device

    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    policy = agent.policy(greedy=False, generator=gen)
    engine.state = None  # the agent's policy starts from its own initial state
    engine.run(policy, 2)  # first calls allocate
    t0, c0 = time.perf_counter(), time.process_time()
    engine.run(policy, act_steps)
    act_s = (time.perf_counter() - t0) / max(act_steps, 1)
    act_cpu_s = (time.process_time() - c0) / max(act_steps, 1)
    engine.close()

    # The halves of DreamerAgent.update, through the same methods the training loop calls.
    carried: dict = {}

    def wm_update() -> None:
        batch, context = sample_batches(replay, agent)
        _, latents = agent.train_world_model(batch, gen)
        carried.update(batch=batch, latents=latents, context=context)

    def ac_update() -> None:
        starts = agent.imagination_starts(carried["batch"], carried["latents"], carried["context"], gen)
        agent.train_actor_critic(starts, gen)

    cpu_times: dict[str, list[float]] = {"wm": [], "ac": []}

    def timed(fn, name: str) -> float:
        """Wall seconds of one call; CPU seconds of this process go to ``cpu_times[name]`` (on a shared CPU
        the wall time includes waiting for a core, the CPU time does not)."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        cpu_times[name].append(time.process_time() - c)
        return time.perf_counter() - t

    for _ in range(warmup_updates):
        wm_update()
        ac_update()
    wm_times, ac_times = [], []
    for _ in range(updates):
        wm_times.append(timed(wm_update, "wm"))
        ac_times.append(timed(ac_update, "ac"))
    wm_s, ac_s = _median(wm_times), _median(ac_times)
    ratio = dcfg.train_ratio if train_ratio is None else train_ratio
    n_updates = max(steps - dcfg.warmup_steps, 0) * ratio
    projected = steps * act_s + n_updates * (wm_s + ac_s)
    wm_cpu, ac_cpu = _median(cpu_times["wm"]), _median(cpu_times["ac"])
    projected_cpu = steps * act_cpu_s + n_updates * (wm_cpu + ac_cpu)
    return {
        "words": words,
        "env": cfg.env.id,
        "agent": cfg.agent,
        "wm": f"{cfg.wm.preset}/{cfg.wm.size}",
        "wm_overrides": cfg.wm.overrides,
        "wm_parameters": agent.wm.num_parameters(),
        "ac_parameters": sum(p.numel() for p in agent.ac.parameters()),
        "batch": [dcfg.batch_size, dcfg.seq_len],
        "imagination": {"starts": dcfg.imag_starts, "batch": dcfg.imag_batch, "context": dcfg.imag_context,
                        "horizon": dcfg.horizon},
        "codec_precision": agent.wm.cfg.image.precision if agent.wm.cfg.image_shape else None,
        "random_env_steps_per_s": 1.0 / random_s,
        "acting_env_steps_per_s": 1.0 / act_s,
        "wm_update_s": wm_s,
        "ac_update_s": ac_s,
        "update_s": wm_s + ac_s,
        "wm_update_s_all": wm_times,
        "ac_update_s_all": ac_times,
        "cpu_seconds": {"acting_per_env_step": act_cpu_s, "wm_update": wm_cpu, "ac_update": ac_cpu,
                        "wm_update_all": cpu_times["wm"], "ac_update_all": cpu_times["ac"]},
        "train_env_steps_per_s": 1.0 / (act_s + ratio * (wm_s + ac_s)) if ratio > 0 else 1.0 / act_s,
        "projection": {"env_steps": steps, "train_ratio": ratio, "warmup_steps": dcfg.warmup_steps,
                       "updates": n_updates, "hours": projected / 3600.0,
                       "hours_cpu_time": projected_cpu / 3600.0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssmrl bench train", description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="extra presets/overrides for every configuration (key.sub=value)")
    parser.add_argument("--agent", default="drama")
    parser.add_argument("--env", default="atari100k/Pong")
    parser.add_argument("--sizes", default="drama,small", help="comma-separated wm.size values (debug, small, drama)")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per configuration")
    parser.add_argument("--warmup-updates", type=int, default=1, help="untimed updates first (allocation, caches)")
    parser.add_argument("--act-steps", type=int, default=100, help="timed acting env steps")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps of the projected run")
    parser.add_argument("--train-ratio", type=float, default=None, help="updates per env step (default: config's)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: the config's device, auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=None, metavar="WORDS",
                        help="one more configuration per use: space-separated overrides added to every size's "
                             "words (e.g. --variant '' --variant 'dreamer.imag_starts=posterior'); all variants "
                             "are measured in this one run")
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for size in [s for s in args.sizes.split(",") if s]:
        for variant in args.variant or [""]:
            words = [f"agent={args.agent}", f"env={args.env}", f"wm.size={size}", *args.words, *variant.split()]
            if args.device:
                words.append(f"device={args.device}")
            results.append(bench_one(words, args.updates, args.warmup_updates, args.act_steps, args.steps,
                                     args.train_ratio, args.seed))
            r = results[-1]  # progress on stderr: a drama-size configuration takes minutes on a CPU
            print(f"{r['wm']} {variant}: acting {r['acting_env_steps_per_s']:.2f} env steps/s, wm update "
                  f"{r['wm_update_s']:.3f} s, ac update {r['ac_update_s']:.3f} s", file=sys.stderr, flush=True)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    out = {
        "benchmark": "bench_train",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "loadavg_at_end": load},
        "results": results,
    }
    emit(out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
