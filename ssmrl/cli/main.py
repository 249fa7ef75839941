"""The ``ssmrl`` command: train, offline, eval, imagine, config, dataset, bench.

Presets are ``group=name`` words (``agent=drama env=atari100k/Pong size=debug``), overrides are
``key.sub=value`` words, and ``--run-dir DIR`` names the run directory (created, or resumed when it exists).
This package is the composition root: the agents come from ``agents.registry``, the run config's shape from
``ssmrl.cli.config``; the core packages never import ``agents``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from agents.registry import AGENTS, TOOLS, AgentEntry, names
from ssmrl.runs.config import CONFIG_ROOT, ConfigError, preset_groups
from ssmrl.runs.interrupt import Interrupted

# ``ssmrl bench <name>`` -> a program in scripts/ (installed as ``ssmrl_scripts``) with a ``main(argv)`` function.
BENCH_SCRIPTS = {
    "scan": "bench_scan",
    "envs": "bench_envs",
    "replay": "bench_replay",
    "worldmodel": "bench_worldmodel",
    "train": "bench_train",
}

EPILOG = """examples:
  ssmrl train agent=drama env=atari100k/Pong size=debug --run-dir runs/pong-debug seed=3
  ssmrl eval runs/pong-debug --episodes 10
  ssmrl imagine runs/pong-debug --sequences 4 --horizon 32
  ssmrl config agent=drama env=atari100k/Pong size=debug dreamer.train_ratio=0.5
"""


def _load(target: str):
    """The function a registry target ``"module:function"`` names (imported on first use: start-up stays fast)."""
    module_name, _, func = target.partition(":")
    return getattr(importlib.import_module(module_name), func)


def _default_run_dir(words: list[str]) -> Path:
    tag = "-".join(w.split("=", 1)[1].replace("/", "_") for w in words if "=" in w and "." not in w.split("=", 1)[0])
    return Path("runs") / (tag or "run")


def _check_run(cfg, entry: AgentEntry) -> dict:
    """Everything a run needs that can be checked before its directory exists: the device, the env (built once and
    closed) and the learner's own checks, or the dataset file. Raises ConfigError naming the key. Returns what the
    check already read and the trainer takes as keyword arguments (an offline run's ``dataset``: (arrays, meta),
    so the file is read once)."""
    from ssmrl.runs.schema import resolve_device

    try:
        resolve_device(cfg.device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device: {err}") from err
    if entry.kind == "offline":
        if not cfg.dataset:
            raise ConfigError("dataset: ssmrl offline needs dataset=<D4RL-format .hdf5 file or Minari dataset folder> "
                              "(make one with: ssmrl dataset collect env=mujoco/Hopper)")
        if not Path(cfg.dataset).exists():
            raise ConfigError(f"dataset: {cfg.dataset} does not exist")
        from agents.offline.io import load_dataset

        arrays, meta = load_dataset(cfg.dataset)  # reads and validates the whole file (ConfigError naming it)
        if cfg.train.eval_episodes > 0 and not (cfg.offline.env or meta.get("env_id") or meta.get("task")):
            raise ConfigError(f"offline.env: no evaluation env is known for dataset {cfg.dataset} (its metadata "
                              "and name name none); set offline.env=hopper|halfcheetah|walker2d|ant|<Gymnasium id> "
                              "or train.eval_episodes=0")
        return {"dataset": (arrays, meta)}
    import envs

    if cfg.env.num_envs < 1:
        raise ConfigError(f"env.num_envs: expected >= 1, got {cfg.env.num_envs}")
    try:
        env = envs.make(cfg.env.id, **cfg.env.options)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"env.id={cfg.env.id!r} with env.options={cfg.env.options}: {err}") from err
    try:
        if entry.check is not None:  # the learner's own checks (e.g. the world model's sizes and override keys)
            _load(entry.check)(cfg, env)
    finally:
        env.close()
    return {}


# --- sub-commands -----------------------------------------------------------------------------------------------
def _run_trainer(args: argparse.Namespace, command: str) -> int:
    from ssmrl.cli.config import Config, check, entry_for
    from ssmrl.runs.run import Run

    # a dataset path is stored absolute, so eval and resume work from any directory (argv in run.json keeps the
    # spelling that was typed)
    args.words = [f"dataset={Path(w.split('=', 1)[1]).resolve()}" if w.startswith("dataset=") else w
                  for w in args.words]
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(args.words)
    if args.from_checkpoint and not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--from-checkpoint resumes an existing run, and {run_dir} holds none")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory")
    check(args.words, command, run_dir)  # the agent and every key the words set, before anything is read or made
    prepared: dict = {}  # what the check read and hands to the trainer
    run = Run.open(run_dir, args.words, Config, command=command,
                   validate=lambda cfg: prepared.update(_check_run(cfg, entry_for(cfg.agent, command))))
    if args.from_checkpoint:
        run.checkpointer.recover(args.from_checkpoint)
    entry = AGENTS[run.config.agent]
    trainer = _load(entry.trainer)
    print(f"run directory: {run.directory} ({'resuming' if run.resumed else 'new'})", file=sys.stderr)
    try:
        trainer(run, **prepared)
    finally:
        run.close()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return _run_trainer(args, "train")


def cmd_offline(args: argparse.Namespace) -> int:
    return _run_trainer(args, "offline")


def _open_for_eval(run_dir: Path):
    """(run, policy loader or None, evaluator or None) of the run in ``run_dir``, from its agent's registry entry."""
    from ssmrl.cli.config import Config
    from ssmrl.runs.checkpoint import CheckpointError
    from ssmrl.runs.run import Run

    run = Run.load(run_dir, Config)  # an agent missing from the registry is a ConfigError naming it
    entry = AGENTS[run.config.agent]
    if entry.policy_loader is None and entry.evaluator is None:
        known = [n for n, e in AGENTS.items() if e.policy_loader or e.evaluator]
        raise CheckpointError(f"run {run_dir} was trained by agent {entry.name!r}, which eval does not know; known: {known}")
    return (run, entry.policy_loader and _load(entry.policy_loader),
            entry.evaluator and _load(entry.evaluator))


def cmd_eval(args: argparse.Namespace) -> int:
    evaluate = _load("ssmrl.evaluation:evaluate_cli")
    return evaluate(args, _open_for_eval)


def cmd_imagine(args: argparse.Namespace) -> int:
    from ssmrl.cli.config import Config

    return _load(TOOLS["imagine"])(args, Config)


def cmd_dataset(args: argparse.Namespace) -> int:
    return _load(TOOLS["dataset"])(args)


def cmd_config(args: argparse.Namespace) -> int:
    """Print the config that ``ssmrl train|offline WORDS`` would run with, as YAML; creates nothing."""
    from ssmrl.cli.config import Config, check
    from ssmrl.runs.config import dump_yaml, from_dict

    merged, entry = check(args.words)
    cfg = from_dict(Config, merged)
    print(f"# agent {entry.name} ({entry.kind}; run with: ssmrl {entry.command}); "
          f"sections: {', '.join(entry.sections)}")
    print(dump_yaml(cfg), end="")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.name in ("suite", "report"):
        runner = _load("ssmrl.bench:bench_cli")
        return runner(args)
    module = importlib.import_module(f"ssmrl_scripts.{BENCH_SCRIPTS[args.name]}")
    result = module.main(args.rest)
    return result if isinstance(result, int) else 0


def _presets_help(root: Path = CONFIG_ROOT) -> str:
    lines = []
    for group in preset_groups(root):
        found = sorted(p.stem for p in (root / group).glob("*.yaml"))
        shown = ", ".join(f"{n}/<name>" for n in found) if group == "env" else ", ".join(found)
        lines.append(f"  {group + '=':<8}{shown}")
    return "\n".join(lines)


def _epilog() -> str:
    from ssmrl.cli.config import sections_help

    agents = "\n".join(f"  ssmrl {c + ':':<9}{', '.join(names(command=c))}" for c in ("train", "offline"))
    return (EPILOG + f"""
agents (agents/registry.py; agent=NAME):
{agents}

presets (group=name words; configs/<group>/<name>.yaml, merged over configs/defaults.yaml in the order agent, env,
size):
{_presets_help()}

keys (key.sub=value words; values are YAML): agent, size, seed, device at the top level, then the sections the
agent reads (a run's config.yaml holds only those; a key of another section is an error):
{sections_help()}
`ssmrl config WORDS...` prints the resolved config of WORDS without creating anything.
""")


# --- parser -----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmrl", description="Model-based RL with state space models.", epilog=_epilog(),
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

    p = sub.add_parser("config", help="print the resolved config of presets and overrides (YAML); creates nothing",
                       description="Print the config tree that ssmrl train/offline would run with for WORDS, as YAML "
                                   "(only the sections the chosen agent reads); nothing is created.")
    p.add_argument("words", nargs="*", help=words_help)
    p.set_defaults(func=cmd_config)

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
    except Exception as err:
        status = _exit_status(err)
        if status is None:
            raise
        print(f"ssmrl {args.command}: {'' if isinstance(err, Interrupted) else 'error: '}{err}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"ssmrl {args.command}: interrupted; the last checkpoint is kept, run the same command to resume", file=sys.stderr)
        return 130


def _exit_status(err: Exception) -> int | None:
    """2 for bad input (config, checkpoint, missing file or piece), 1 for an OSError after work started, 128 +
    signal for an interrupt; None: not ours to report."""
    checkpoint = sys.modules.get("ssmrl.runs.checkpoint")  # not imported (torch) when nothing touched a checkpoint
    if isinstance(err, (ConfigError, FileNotFoundError)) or (
            checkpoint is not None and isinstance(err, checkpoint.CheckpointError)):
        return 2
    if isinstance(err, OSError):  # after work started: disk full, a directory turned read-only, ...
        return 1
    if isinstance(err, Interrupted):
        return 128 + err.signum
    return None


if __name__ == "__main__":
    sys.exit(main())
