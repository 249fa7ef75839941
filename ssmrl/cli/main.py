"""The ``ssmrl`` command: train, eval, imagine, offline, dataset, bench.

Presets are ``group=name`` words (``agent=drama env=atari100k/Pong size=debug``), overrides are
``key.sub=value`` words, and ``--run-dir DIR`` names the run directory (created, or resumed when it exists).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from ssmrl.runs.checkpoint import CheckpointError
from ssmrl.runs.config import ConfigError
from ssmrl.runs.interrupt import Interrupted

REPO_ROOT = Path(__file__).resolve().parents[2]

# agent preset -> "module:function" taking an open Run; filled in as learners land.
TRAINERS: dict[str, str] = {
    "random": "agents.random_agent:train",
    "worldmodel": "agents.worldmodel.train:train",
    **{name: "agents.dreamer.train:train" for name in ("drama", "s4wm", "s5wm", "rssm", "transformer")},
}
OFFLINE_TRAINERS: dict[str, str] = {name: "agents.offline.run:train" for name in ("dm", "dt", "bc")}
# ``ssmrl bench <name>`` -> script in scripts/ with a ``main(argv)`` function.
BENCH_SCRIPTS = {
    "scan": "bench_scan.py",
    "envs": "bench_envs.py",
    "replay": "bench_replay.py",
    "worldmodel": "bench_worldmodel.py",
    "train": "bench_train.py",
}

EPILOG = """examples:
  ssmrl train agent=drama env=atari100k/Pong size=debug --run-dir runs/pong-debug seed=3
  ssmrl eval runs/pong-debug --episodes 10
  ssmrl imagine runs/pong-debug --sequences 4 --horizon 32
"""


class NotAvailable(RuntimeError):
    """A sub-command or preset whose implementation has not landed."""


def _load(target: str, what: str):
    module_name, _, func = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (err.name == module_name or module_name.startswith(err.name + ".")):
            raise NotAvailable(f"{what} is not available yet (module {module_name} is missing)") from err
        raise
    return getattr(module, func)


def _default_run_dir(words: list[str]) -> Path:
    tag = "-".join(w.split("=", 1)[1].replace("/", "_") for w in words if "=" in w and "." not in w.split("=", 1)[0])
    return Path("runs") / (tag or "run")


def _check_run(cfg, command: str, trainers: dict[str, str]) -> None:
    """Everything a run needs that can be checked before its directory exists: the agent, the device, the env
    (built once and closed) or the dataset file. Raises ConfigError naming the key."""
    from ssmrl.runs.schema import resolve_device

    if cfg.agent not in trainers:
        raise ConfigError(f"agent: unknown agent {cfg.agent!r} for ssmrl {command}; valid agents: {sorted(trainers)}")
    try:
        resolve_device(cfg.device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device: {err}") from err
    if command == "offline":
        if not cfg.dataset:
            raise ConfigError("dataset: ssmrl offline needs dataset=<D4RL-format .hdf5 file or Minari dataset folder> "
                              "(make one with: ssmrl dataset collect env=mujoco/Hopper)")
        if not Path(cfg.dataset).exists():
            raise ConfigError(f"dataset: {cfg.dataset} does not exist")
        from agents.offline.io import load_dataset

        _, meta = load_dataset(cfg.dataset)  # reads and validates the whole file (ConfigError naming it)
        if cfg.train.eval_episodes > 0 and not (cfg.offline.env or meta.get("env_id") or meta.get("task")):
            raise ConfigError(f"offline.env: no evaluation env is known for dataset {cfg.dataset} (its metadata "
                              "and name name none); set offline.env=hopper|halfcheetah|walker2d|ant|<Gymnasium id> "
                              "or train.eval_episodes=0")
        return
    import envs

    if cfg.env.num_envs < 1:
        raise ConfigError(f"env.num_envs: expected >= 1, got {cfg.env.num_envs}")
    try:
        env = envs.make(cfg.env.id, **cfg.env.options)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"env.id={cfg.env.id!r} with env.options={cfg.env.options}: {err}") from err
    try:
        module_name = trainers[cfg.agent].partition(":")[0]
        agent_check = getattr(importlib.import_module(module_name), "check", None)
        if agent_check is not None:  # the learner's own checks (e.g. the world model's sizes and override keys)
            agent_check(cfg, env)
    finally:
        env.close()


# --- sub-commands -----------------------------------------------------------------------------------------------
def _run_trainer(args: argparse.Namespace, command: str, trainers: dict[str, str]) -> int:
    from ssmrl.runs.run import Run
    from ssmrl.runs.schema import Config

    # a dataset path is stored absolute, so eval and resume work from any directory (argv in run.json keeps the
    # spelling that was typed)
    args.words = [f"dataset={Path(w.split('=', 1)[1]).resolve()}" if w.startswith("dataset=") else w
                  for w in args.words]
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(args.words)
    if args.from_checkpoint and not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--from-checkpoint resumes an existing run, and {run_dir} holds none")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory")
    run = Run.open(run_dir, args.words, Config, command=command, validate=lambda cfg: _check_run(cfg, command, trainers))
    if args.from_checkpoint:
        run.checkpointer.recover(args.from_checkpoint)
    trainer = _load(trainers[run.config.agent], f"agent {run.config.agent!r}")
    print(f"run directory: {run.directory} ({'resuming' if run.resumed else 'new'})", file=sys.stderr)
    try:
        trainer(run)
    finally:
        run.close()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return _run_trainer(args, "train", TRAINERS)


def cmd_offline(args: argparse.Namespace) -> int:
    return _run_trainer(args, "offline", OFFLINE_TRAINERS)


def cmd_eval(args: argparse.Namespace) -> int:
    evaluate = _load("ssmrl.evaluation:evaluate_cli", "ssmrl eval")
    return evaluate(args)


def cmd_imagine(args: argparse.Namespace) -> int:
    imagine = _load("agents.dreamer.imagine:imagine_cli", "ssmrl imagine")
    return imagine(args)


def cmd_dataset(args: argparse.Namespace) -> int:
    dataset = _load("agents.sac.dataset_cli:dataset_cli", "ssmrl dataset")
    return dataset(args)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.name in ("suite", "report"):
        runner = _load("ssmrl.bench:bench_cli", f"ssmrl bench {args.name}")
        return runner(args)
    script = REPO_ROOT / "scripts" / BENCH_SCRIPTS[args.name]
    if not script.is_file():
        raise NotAvailable(f"ssmrl bench {args.name} is not available yet ({script} is missing)")
    spec = importlib.util.spec_from_file_location(f"ssmrl_bench_{args.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(args.rest)
    return result if isinstance(result, int) else 0


# --- parser -----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmrl", description="Model-based RL with state space models.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    words_help = "presets group=name (agent=, env=, size=) and overrides key.sub=value"
    recover_help = ("resume from this checkpoint of the run (e.g. after a truncated newest one): latest.json is "
                    "pointed at it and later checkpoints are renamed *.pt.rejected")
    p = sub.add_parser("train", help="train an online agent (resumes when --run-dir exists)")
    p.add_argument("words", nargs="*", help=words_help)
    p.add_argument("--run-dir", help="run directory (default: runs/<presets>)")
    p.add_argument("--from-checkpoint", metavar="FILE", help=recover_help)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("offline", help="train an offline agent (dm, dt, bc) from a dataset")
    p.add_argument("words", nargs="*", help=words_help + "; dataset=<path-or-id>")
    p.add_argument("--run-dir", help="run directory (default: runs/<presets>)")
    p.add_argument("--from-checkpoint", metavar="FILE", help=recover_help)
    p.set_defaults(func=cmd_offline)

    p = sub.add_parser("eval", help="evaluate a run directory or checkpoint")
    p.add_argument("target", help="run directory or checkpoint file")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--greedy", action="store_true", help="take the most likely action instead of sampling")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="evaluation seed (default: run seed + 10_000)")
    p.add_argument("--out", help="JSON file for the results (default: <run>/eval-<step>.json)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("imagine", help="render imagined rollouts of a world model as MP4/GIF")
    p.add_argument("target", help="run directory or checkpoint file")
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--context", type=int, default=8)
    p.add_argument("--horizon", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: <run>/videos/imagine-<step>)")
    p.set_defaults(func=cmd_imagine)

    p = sub.add_parser("dataset", help="collect or inspect offline datasets (D4RL-style HDF5, Minari)")
    p.add_argument("action", choices=["collect", "info"])
    p.add_argument("words", nargs="*", help="collect: env=mujoco/Hopper levels=medium size=... ; info: PATH")
    p.add_argument("--out", help="output file or folder")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("bench", help="benchmarks (scan, envs, replay, worldmodel) and benchmark suites")
    p.add_argument("name", choices=sorted(BENCH_SCRIPTS) + ["suite", "report"])
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark (see its --help)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Words may follow options (``train agent=x --run-dir d seed=3``); argparse leaves those over.
    if extra and hasattr(args, "words") and all("=" in w and not w.startswith("-") for w in extra):
        args.words = list(args.words) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, NotAvailable, FileNotFoundError) as err:
        print(f"ssmrl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # after work started: disk full, a directory turned read-only, ...
        print(f"ssmrl {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Interrupted as err:
        print(f"ssmrl {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print(f"ssmrl {args.command}: interrupted; the last checkpoint is kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
