"""S4WM-style memory benchmark: train world models offline on scripted-policy episodes and compare their memory
metrics (reconstruction MSE, generation MSE, reward-prediction accuracy in inference and imagination). Prints JSON.

Each preset is one ``ssmrl train agent=worldmodel`` run (in parallel subprocesses); the summary reads the runs'
``scores.jsonl`` (kind "memory"), so it can also summarise runs that are still going or were stopped. Every
evaluation scores held-out episodes (plain metric names) and as many training episodes (``train_*``), each with its
majority-class rate; the summary puts the two side by side. Training data: ``configs/agent/worldmodel.yaml``
(``worldmodel.stream``: fresh scripted-policy episodes per update, or 0 for a fixed set of ``worldmodel.episodes``).

Example (2-core CPU, tiny models, 32x32 frames):
    python scripts/memory_benchmark.py --env memory/distracting-100 --presets s4wm,s5wm,drama,rssm \
        --steps 1000 --out-dir runs/membench/distracting-100 \
        --set env.options.image_size=32 worldmodel.batch_size=8 worldmodel.stream=8
    python scripts/memory_benchmark.py --summarize --out-dir runs/membench/distracting-100 --plot docs/img/memory.png
    python scripts/memory_benchmark.py --ceiling --set env.options.image_size=32   # true position -> reward
    python scripts/memory_benchmark.py --probe runs/membench/distracting-100/s4wm   # is the position in the features?

The hallway's cue (``--set env.options.cue=true``, envs/memory/distracting.py) makes the reward also depend on a bit
shown only at the start; the ceiling then reads ``position+cue`` and ``--probe-key cue`` probes the bit.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ssmrl.bench.output import emit

# World-model overrides of every benchmark run; a key that --set names (wm.overrides.<key>=...) replaces its value.
# Small models (fit a 2-core CPU): the first conv halves the 32x32 frames (the last deconv restores them), 2.4-2.8x
# cheaper updates than stride 1 for every preset alike (docs/results.md, "Training throughput"), so the comparison
# between backbones is unchanged in kind. The reward loss weighted 100: with weight 1 the reward term is under 1% of
# the loss (summed squared pixel errors ~130 vs ~1) and s4wm stayed at the majority rate for 7k updates; weighted
# 100 it reached 0.93 held-out reward accuracy in 2k (docs/results.md, "Memory benchmark").
BENCH_WM = {"d_model": 64, "image.channels": [8, 16, 16, 16], "latent.groups": 8, "latent.classes": 8,
            "heads.hidden": 64, "image.first_stride": 2, "loss.reward": 100}


def _train_in_process(words: list[str], run_dir: str) -> int:
    """``ssmrl train agent=worldmodel ...`` in this process."""
    from ssmrl.cli import main as cli

    return cli.main(["train", *words, "--run-dir", run_dir])


def _words(env: str, preset: str, steps: int, seed: int, size: str, sets: list[str], eval_every: int) -> list[str]:
    words = ["agent=worldmodel", f"env={env}", f"wm.preset={preset}", f"wm.size={size}", f"seed={seed}",
             f"train.steps={steps}", f"train.eval_every={eval_every}", f"train.checkpoint_every={eval_every}",
             f"train.log_every={max(1, eval_every // 4)}"]
    given = {s.split("=", 1)[0] for s in sets}
    words += [f"wm.overrides.{k}={json.dumps(v)}" for k, v in BENCH_WM.items() if f"wm.overrides.{k}" not in given]
    return words + list(sets)


def time_updates(words: list[str], updates: int, warmup: int = 2) -> dict:
    """Seconds per world-model update of one run's configuration (``words``), through the trainer's own
    ``train_step`` on its own dataset and window sampler; nothing is written."""
    import statistics

    import torch

    from ssmrl.optim import build_optimizer
    from agents.worldmodel.train import _batch, build_dataset, build_model, make_sampler, section, train_step

    cfg = _config(words)
    wcfg = section(cfg)
    data = build_dataset(cfg)
    wm = build_model(cfg, data.spec)
    opt, sched = build_optimizer(wm.param_groups(wcfg.optimizer.weight_decay), wcfg.optimizer)
    sampler = make_sampler(cfg, data)  # with worldmodel.stream, each update's time includes collecting its episodes
    seq_len = wcfg.seq_len or data.context + data.query
    gen = torch.Generator().manual_seed(cfg.seed)
    times = []
    for i in range(warmup + updates):
        t0 = time.perf_counter()
        train_step(wm, opt, sched, _batch(sampler.sample(wcfg.batch_size, seq_len), data.spec.discrete, "cpu"),
                   wcfg.optimizer.grad_clip, gen)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"update_s": statistics.median(times), "update_s_all": times, "batch": [wcfg.batch_size, seq_len],
            "parameters": wm.num_parameters()}


def _config(words: list[str]):
    from ssmrl.cli.config import resolve

    return resolve(words)


def ceiling(words: list[str], keys: list[str] | None = None) -> dict:
    """Reward accuracy of a model given the env's true state (default: the position) instead of a latent, on the
    run configuration's own training data (fixed set, or the stream's first pool) and held-out episodes, scored on
    the query records like the world models (:mod:`agents.worldmodel.ceiling`)."""
    from agents.worldmodel import ceiling as C
    from agents.worldmodel import data as D
    from agents.worldmodel.train import build_dataset, section

    cfg = _config(words)
    wcfg = section(cfg)
    keys = keys or list(C.default_keys(cfg.env.id, cfg.env.options))
    t0 = time.perf_counter()
    data = build_dataset(cfg, truth=True)
    length = data.context + data.query
    train_windows = D.episode_windows(data.train, length, limit=wcfg.eval_episodes)
    sets = {"heldout": C.query_records(data.eval_windows, data.context, data.query),
            "train": C.query_records(train_windows, data.context, data.query)}
    result = C.ceiling(data.train, sets, data.classes, keys)
    return {"benchmark": "memory_ceiling", "env": cfg.env.id, "seed": cfg.seed, "episodes": wcfg.episodes,
            "stream": wcfg.stream, "eval_episodes": wcfg.eval_episodes, "context": data.context, "query": data.query,
            "classes": data.classes.tolist(), **result, "wall_s": round(time.perf_counter() - t0, 1)}


def probe_run(run_dir: Path, checkpoint: Path | None = None, windows: int = 64, key: str = "") -> dict:
    """A linear probe of a benchmark run's features for the true position, or for the truth key ``key`` (e.g. the
    cued hallway's ``cue``) (:mod:`agents.worldmodel.probe`): fitted on ``windows`` training episodes (the run's
    first training pool), scored on those and on its held-out set, at the run's latest checkpoint or
    ``checkpoint``. Reads the run; writes nothing."""
    import torch

    from agents.worldmodel import ceiling as C
    from agents.worldmodel import data as D
    from agents.worldmodel import probe as P
    from agents.worldmodel.train import build_dataset, build_model, section
    from ssmrl.cli.config import Config
    from ssmrl.runs.checkpoint import CheckpointError
    from ssmrl.runs.run import Run
    from ssmrl.runs.seeding import Seeds

    run = Run.load(run_dir, Config)
    cfg = run.config
    if cfg.agent != "worldmodel":
        raise ValueError(f"{run_dir}: agent {cfg.agent!r} is not a world-model benchmark run (agent=worldmodel)")
    reward_keys = C.default_keys(cfg.env.id, cfg.env.options)  # ValueError for envs without a default truth key
    if len(reward_keys) != 1:
        raise ValueError(f"the probe regresses one truth key; {cfg.env.id} has {list(reward_keys)}")
    parts = reward_keys[0].split("+")
    if key and key not in parts:
        raise ValueError(f"--probe-key must be one of the truth keys of the reward rule {parts}, got {key!r}")
    key = key or parts[0]  # the position; the reward rule reads the other keys' true values
    wcfg = section(cfg)
    t0 = time.perf_counter()
    payload = run.checkpointer.read(checkpoint)
    data = build_dataset(cfg, truth=True)
    wm = build_model(cfg, data.spec)
    try:
        wm.load_state_dict(payload["objects"]["wm"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint of {run_dir} does not hold this run's world model: {err}") from err
    length = data.context + data.query
    sets = {"train": D.episode_windows(data.train, length, limit=windows), "heldout": data.eval_windows}
    result = P.probe(wm, data.train, sets, data.context, data.query, data.classes, key=key, reward_keys=reward_keys,
                     batch_size=wcfg.eval_batch,
                     sample=wcfg.eval_sample, generator=Seeds(cfg.seed).torch("probe", torch.device("cpu")))
    return {"benchmark": "memory_probe", "run": str(run_dir), "checkpoint": str(checkpoint or "latest"),
            "step": int(payload["step"]), "preset": cfg.wm.preset, "env": cfg.env.id, "context": data.context,
            "query": data.query, **result, "wall_s": round(time.perf_counter() - t0, 1)}


def _probe_cli(run_dir: Path, checkpoint: Path | None, windows: int, key: str) -> int:
    """``--probe``: the JSON of :func:`probe_run`, or one line naming bad input and status 2."""
    from ssmrl.runs.checkpoint import CheckpointError

    try:
        if not (run_dir / "config.yaml").is_file():
            raise ValueError(f"{run_dir} is not a run directory (no config.yaml)")
        if windows < 2:
            raise ValueError(f"--probe-windows must be >= 2, got {windows}")
        emit(probe_run(run_dir, checkpoint, windows, key), indent=1)
    except (CheckpointError, ValueError) as err:
        print(f"memory_benchmark.py: {err}", file=sys.stderr)
        return 2
    return 0


# held-out metric (plain name in scores.jsonl) -> name in the side-by-side table; the training set's is "train_" + key
SIDE_BY_SIDE = {"reward_acc_inference": "reward_acc_inference", "reward_acc_imagination": "reward_acc_imagination",
                "reward_chance": "majority", "recon_mse": "recon_mse", "gen_mse": "gen_mse"}


def side_by_side(row: dict) -> dict:
    """``{metric: {"train": ..., "heldout": ...}}`` of one memory score line (None where a set was not scored)."""
    return {name: {"train": row.get(f"train_{key}"), "heldout": row.get(key)} for key, name in SIDE_BY_SIDE.items()}


def summarize(out_dir: Path) -> dict:
    """Per run: the last memory evaluation (and its train/held-out table), all evaluations (step, accuracies,
    majority rates and MSEs of both sets), and the comparison at the largest update count every run has reached."""
    runs = {}
    for scores in sorted(out_dir.glob("*/scores.jsonl")):
        rows = [json.loads(l) for l in scores.read_text().splitlines() if l.strip()]
        rows = [r for r in rows if r.get("kind") == "memory"]
        if not rows:
            continue
        info = json.loads((scores.parent / "run.json").read_text()) if (scores.parent / "run.json").is_file() else {}
        keys = (*SIDE_BY_SIDE, *(f"train_{k}" for k in SIDE_BY_SIDE))
        runs[scores.parent.name] = {
            "preset": rows[-1].get("preset"), "env": rows[-1].get("env"), "parameters": info.get("parameters"),
            "data": {k: (info.get("memory_protocol") or {}).get(k) for k in ("stream", "episodes")},
            "last": {k: v for k, v in rows[-1].items() if k != "kind"},
            "train_vs_heldout": side_by_side(rows[-1]),
            "curve": [{"step": r["step"], **{k: r.get(k) for k in keys}} for r in rows],
        }
    common = min((r["curve"][-1]["step"] for r in runs.values()), default=None)
    at_common = {}
    for name, r in runs.items():
        steps = [c for c in r["curve"] if c["step"] <= (common or 0)]
        if steps:
            at_common[name] = steps[-1]
    return {"out_dir": str(out_dir), "runs": runs, "common_step": common, "at_common_step": at_common}


def plot(summary: dict, path: Path) -> Path:
    """Reward accuracy against updates, one colour per run: imagination (left) and inference (right), held out
    (solid) and on training episodes (dashed), with the held-out majority-class rate (dotted grey: what a constant
    prediction scores) and the S4WM paper's 95% bar (dashed grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, mode in zip(axes, ("imagination", "inference")):
        for i, (name, run) in enumerate(sorted(summary["runs"].items())):
            steps = [c["step"] for c in run["curve"]]
            colour = colours[i % len(colours)]
            ax.plot(steps, [c.get(f"reward_acc_{mode}") for c in run["curve"]], color=colour, label=f"{name} held out")
            ax.plot(steps, [c.get(f"train_reward_acc_{mode}") for c in run["curve"]], color=colour, ls="--",
                    label=f"{name} training episodes")
            if i == 0:
                ax.plot(steps, [c.get("reward_chance") for c in run["curve"]], color="grey", ls=":",
                        label="majority class (held out)")
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.set_title(f"reward accuracy in {mode}", fontsize=10)
        ax.set_xlabel("world-model updates")
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy on query steps")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="memory/distracting-100")
    p.add_argument("--presets", default="s4wm,s5wm,drama,rssm")
    p.add_argument("--size", default="small", help="wm.size (BENCH_WM overrides shrink it; --set wm.overrides.<key>=... replaces one)")
    p.add_argument("--steps", type=int, default=1000, help="updates per run")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out-dir", default="runs/membench")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value words for every run")
    p.add_argument("--summarize", action="store_true", help="only summarise the runs in --out-dir")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also draw the accuracy curves of the runs in --out-dir")
    p.add_argument("--time-updates", type=int, default=0, metavar="N",
                   help="only time N updates per preset in this process (with --variant sets) and print JSON")
    p.add_argument("--variant", action="append", default=None, metavar="WORDS",
                   help="with --time-updates: one more configuration per use (space-separated key=value words)")
    p.add_argument("--ceiling", action="store_true",
                   help="only fit and score the true-state reward model (the metric's ceiling) and print JSON")
    p.add_argument("--ceiling-keys", default="", help="truth keys for --ceiling (comma-separated; default per env)")
    p.add_argument("--probe", type=Path, metavar="RUN",
                   help="only probe RUN's features for the true position (or --probe-key; a linear probe) and print JSON")
    p.add_argument("--checkpoint", type=Path, help="with --probe: a checkpoint file of RUN (default: its latest)")
    p.add_argument("--probe-windows", type=int, default=64, help="with --probe: training windows to fit on")
    p.add_argument("--probe-key", default="", help="with --probe: the truth key to probe (default: the position; "
                   "with env.options.cue=true also: cue)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one training in this process
    a = p.parse_args(argv)
    if a.time_updates:
        import torch

        torch.set_num_threads(a.threads)
        rows = []
        for preset in a.presets.split(","):
            for variant in a.variant or [""]:
                words = _words(a.env, preset, a.steps, a.seed, a.size, a.set, a.eval_every) + variant.split()
                rows.append({"preset": preset, "variant": variant, **time_updates(words, a.time_updates)})
                print(f"{preset} {variant}: {rows[-1]['update_s']:.3f} s per update", file=sys.stderr, flush=True)
        emit({"benchmark": "memory_benchmark_updates", "env": a.env, "results": rows}, indent=1)
        return 0
    if a.ceiling:
        words = _words(a.env, a.presets.split(",")[0], a.steps, a.seed, a.size, a.set, a.eval_every)
        emit(ceiling(words, [k for k in a.ceiling_keys.split(",") if k]), indent=1)
        return 0
    if a.probe:
        return _probe_cli(a.probe, a.checkpoint, a.probe_windows, a.probe_key)
    if a.worker:
        import torch

        torch.set_num_threads(a.threads)
        return _train_in_process(a.set, a.worker)
    out_dir = Path(a.out_dir)
    if not a.summarize:
        out_dir.mkdir(parents=True, exist_ok=True)
        procs = {}
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        for preset in a.presets.split(","):
            words = _words(a.env, preset, a.steps, a.seed, a.size, a.set, a.eval_every)
            log = open(out_dir / f"{preset}.log", "a")
            cmd = [sys.executable, __file__, "--worker", str(out_dir / preset), "--threads", str(a.threads),
                   "--set", *words]
            procs[preset] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.time(), log)
            print(f"started {preset} (pid {procs[preset][0].pid}): {' '.join(words)}", file=sys.stderr, flush=True)
        walls = {}
        for preset, (proc, start, log) in procs.items():
            rc = proc.wait()
            log.close()
            walls[preset] = {"returncode": rc, "wall_s": round(time.time() - start, 1)}
    result = summarize(out_dir)
    if a.plot:
        if not result["runs"]:
            print(f"memory_benchmark.py: no evaluated run in {out_dir} to plot", file=sys.stderr)
            return 2
        result["plot"] = str(plot(result, a.plot))
    if not a.summarize:
        result["processes"] = walls
        result["command"] = sys.argv
    emit(result, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
