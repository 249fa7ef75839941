"""``ssmrl bench suite``: run every (agent, env, seed) cell of a benchmark as its own run directory.

Layout of a suite folder::

    <out>/<agent>/<env id with / as __>/seed<k>/     an ordinary run directory (resumable)
    <out>/<agent>/<env>/seed<k>/done.json            written when the cell finished: its final score and the
                                                     training's wall-clock over every attempt (wall_s)
    <out>/<agent>/<env>/seed<k>.log                  the cell's console output (appended on every attempt)
    <out>/suite.json                                 the suite's settings and every cell's status

Running the same command again skips finished cells and resumes interrupted ones (their run directories resume
from the last checkpoint). Backends: ``local`` runs cells as subprocesses, at most ``workers`` at a time;
``ray`` submits each cell as a Ray task (address from ``--address`` or ``RAY_ADDRESS``) with ``num_cpus`` /
``num_gpus`` per cell.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

SUITES = ("atari100k", "stori", "dmc", "d4rl", "memory")


def suite_envs(suite: str) -> list[str]:
    """Every environment (or dataset) id of a benchmark suite."""
    if suite == "atari100k":
        from envs.atari100k import GAMES

        return [f"atari100k/{g}" for g in GAMES]
    if suite == "stori":
        from envs.stori import ids

        return [f"stori/{name}" for name in ids()]
    if suite == "dmc":
        from envs.dmc import ids

        return [f"dmc/{name}" for name in ids()]
    if suite == "memory":
        from envs.memory import ids

        return [f"memory/{name}" for name in ids()]
    if suite == "d4rl":
        return [f"{env}-{level}" for env in ("hopper", "halfcheetah", "walker2d") for level in ("medium", "medium-replay")]
    raise ValueError(f"unknown suite {suite!r}; suites: {list(SUITES)}")


@dataclass
class Cell:
    agent: str
    env: str
    seed: int
    run_dir: str
    words: list[str]
    command: str = "train"  # "offline" for the d4rl suite
    final_episodes: int = 0  # > 0: the cell's score is a fresh N-episode eval of its last checkpoint
    dataset: str = ""  # the d4rl suite: the dataset file the env id names

    @property
    def log_file(self) -> Path:
        return Path(self.run_dir + ".log")

    @property
    def done_file(self) -> Path:
        return Path(self.run_dir) / "done.json"

    def status(self) -> str:
        if self.done_file.is_file():
            return "done"
        return "partial" if (Path(self.run_dir) / "config.yaml").is_file() else "new"

    def argv(self) -> list[str]:
        target = f"dataset={self.dataset}" if self.command == "offline" else f"env={self.env}"
        return [sys.executable, "-m", "ssmrl.cli.main", self.command, f"agent={self.agent}", target,
                f"seed={self.seed}", *self.words, "--run-dir", self.run_dir]


def dataset_file(datasets_dir: Path, name: str) -> Path:
    """The one dataset in ``datasets_dir`` that a d4rl suite id names: ``hopper-medium-replay`` ->
    ``hopper-medium-replay.hdf5`` or ``hopper-medium-replay-v<k>[-...].hdf5`` (as ``ssmrl dataset collect`` names them)."""
    found = sorted({*Path(datasets_dir).glob(f"{name}.hdf5"), *Path(datasets_dir).glob(f"{name}-v*.hdf5")})
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({', '.join(p.name for p in found)})"
        raise ValueError(f"{datasets_dir} holds {what} for {name}; expected one {name}.hdf5 or {name}-v<k>*.hdf5")
    return found[0].resolve()


def make_cells(suite: str, agents: list[str], seeds: list[int], out: Path, envs: list[str] | None = None,
               words: list[str] | None = None, final_episodes: int = 0,
               datasets_dir: Path | None = None) -> list[Cell]:
    env_ids = envs or suite_envs(suite)
    command = "offline" if suite == "d4rl" else "train"
    if command == "offline" and datasets_dir is None:
        raise ValueError("the d4rl suite needs --datasets-dir: the folder of the D4RL-format files it trains on")
    files = {env: str(dataset_file(datasets_dir, env)) for env in env_ids} if command == "offline" else {}
    return [Cell(agent, env, seed, str(out / agent / env.replace("/", "__") / f"seed{seed}"), list(words or []), command,
                 final_episodes, files.get(env, ""))
            for agent in agents for env in env_ids for seed in seeds]


def normalised_score(row: dict) -> float | None:
    """An evaluation row's normalised score, also from scores.jsonl written before the rename ("normalized_score")."""
    return row.get("normalised_score", row.get("normalized_score"))


def final_score(run_dir: Path) -> dict:
    """The last evaluation row of a run's scores.jsonl (or the mean of its last 10 training episodes)."""
    path = Path(run_dir) / "scores.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    evals = [r for r in rows if r.get("kind") == "eval"]
    if evals:
        last = evals[-1]
        norm = normalised_score(last)
        return {"step": last["step"], "score": last["mean"], "source": "eval", **({"normalised": norm} if norm is not None else {})}
    train = [r["episode_return"] for r in rows if "episode_return" in r][-10:]
    if not train:
        raise RuntimeError(f"{run_dir} finished without any evaluation or episode score")
    return {"step": rows[-1]["step"], "score": sum(train) / len(train), "source": "train (last 10 episodes)"}


def evaluate_cell(cell: Cell, episodes: int = 5) -> dict:
    """Score a finished cell that logged no score by evaluating its last checkpoint (``ssmrl eval``)."""
    out = Path(cell.run_dir) / "eval-final.json"
    argv = [sys.executable, "-m", "ssmrl.cli.main", "eval", cell.run_dir, "--episodes", str(episodes), "--out", str(out)]
    with open(cell.log_file, "a") as logfile:
        proc = subprocess.run(argv, stdout=logfile, stderr=subprocess.STDOUT, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"{cell.run_dir}: no score, and its evaluation failed (exit {proc.returncode}); "
                           f"see {cell.log_file}")
    result = json.loads(out.read_text())
    online = "mean" in result  # offline evaluators name their summary return_* and nest the normalised score
    score = {"step": result["step"], "score": result["mean"] if online else result["return_mean"],
             "source": f"eval of the last checkpoint ({episodes} episodes)", "episodes": episodes}
    if online:
        score["stderr"] = result["stderr"]
        if "normalised_score" in result:
            score["normalised"] = result["normalised_score"]
    elif isinstance(result.get("normalised"), dict):
        score["normalised"] = result["normalised"]["score"]
    return score


def run_cell(cell: Cell, log: bool = True) -> dict:
    """Run (or resume) one cell in a subprocess; on success write done.json and return it."""
    cell.log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(cell.log_file, "a") as logfile:
        proc = subprocess.run(cell.argv(), stdout=logfile, stderr=subprocess.STDOUT, env={**os.environ})
    result = {"cell": asdict(cell), "returncode": proc.returncode, "seconds": time.time() - start}
    if proc.returncode == 0:
        from ssmrl.runs.checkpoint import Checkpointer

        # the training's wall-clock over every attempt ("seconds" is this attempt's, with the final eval)
        result["wall_s"] = Checkpointer(Path(cell.run_dir) / "checkpoints").latest_wall_s()
        try:
            periodic = final_score(Path(cell.run_dir))
        except RuntimeError:  # finished without any score (e.g. no periodic eval, no finished episode)
            periodic = None
        if cell.final_episodes > 0 or periodic is None:
            result.update(evaluate_cell(cell, cell.final_episodes or 5))
            if periodic is not None:
                result["last_periodic_eval"] = periodic
        else:
            result.update(periodic)
        cell.done_file.write_text(json.dumps(result, indent=1))
    elif log:
        print(f"cell {cell.agent} {cell.env} seed {cell.seed} failed (exit {proc.returncode}); see {cell.log_file}",
              file=sys.stderr)
    return result


def run_local(cells: list[Cell], workers: int) -> list[dict]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # the work runs in subprocesses
        return list(pool.map(run_cell, cells))


def run_ray(cells: list[Cell], address: str | None, num_cpus: float, num_gpus: float) -> list[dict]:
    try:
        import ray
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError('--backend ray needs the ray package (pip install "ssmrl[ray]")') from err
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(run_cell)
    return ray.get([remote.remote(cell) for cell in cells])


def run_suite(suite: str, agents: list[str], seeds: list[int], out: Path, envs: list[str] | None = None,
              words: list[str] | None = None, backend: str = "local", workers: int = 1, address: str | None = None,
              num_cpus: float = 1.0, num_gpus: float = 0.0, final_episodes: int = 0,
              datasets_dir: Path | None = None) -> dict:
    cells = make_cells(suite, agents, seeds, out, envs, words, final_episodes, datasets_dir)
    todo = [c for c in cells if c.status() != "done"]
    print(f"suite {suite}: {len(cells)} cells, {len(cells) - len(todo)} finished, {len(todo)} to run "
          f"({sum(c.status() == 'partial' for c in todo)} resuming) on backend {backend}", file=sys.stderr)
    if backend == "local":
        results = run_local(todo, workers)
    elif backend == "ray":
        results = run_ray(todo, address, num_cpus, num_gpus)
    else:
        raise ValueError(f"unknown backend {backend!r}; use local or ray")
    summary = {"suite": suite, "agents": agents, "seeds": seeds, "words": words or [], "backend": backend,
               "final_episodes": final_episodes, "datasets_dir": str(datasets_dir) if datasets_dir else None,
               "cells": [{**asdict(c), "status": c.status()} for c in cells],
               "failed": [r["cell"] for r in results if r["returncode"] != 0]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(summary, indent=1))
    return summary


def collect(out: Path) -> list[dict]:
    """Every finished cell's done.json under a suite folder (an older file's "normalized" key read as "normalised"),
    with ``directory``: the folder it was found in (the cell's run directory wherever the suite now lies; the
    recorded ``cell["run_dir"]`` may be relative to where the suite ran, or moved)."""
    cells = []
    for path in sorted(Path(out).glob("*/*/seed*/done.json")):
        cell = json.loads(path.read_text())
        if "normalized" in cell:
            cell.setdefault("normalised", cell.pop("normalized"))
        cells.append({**cell, "directory": str(path.parent)})
    return cells


def suite_cli(argv: list[str]) -> int:
    """``ssmrl bench suite ...`` (``argv`` after ``suite``); 0 when every cell finished, else 1."""
    parser = argparse.ArgumentParser(prog="ssmrl bench suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="key=value words (presets and overrides for every cell, e.g. size=debug "
                                            "train.steps=2e4) may appear anywhere, also after --agents or --envs")
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--agents", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--envs", nargs="+", help="subset of the suite's env ids (default: all)")
    parser.add_argument("--out", default=None, help="suite folder (default: runs/bench-<suite>)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=1, help="local backend: cells at a time")
    parser.add_argument("--address", default=None, help="ray backend: cluster address (default: $RAY_ADDRESS or a local instance)")
    parser.add_argument("--cpus-per-cell", type=float, default=1.0)
    parser.add_argument("--gpus-per-cell", type=float, default=0.0)
    parser.add_argument("--final-episodes", type=int, default=0,
                        help="score each finished cell by a fresh N-episode eval of its last checkpoint (ssmrl eval) "
                             "instead of its last periodic eval (default 0: the periodic one)")
    parser.add_argument("--datasets-dir", type=Path, default=None,
                        help="the d4rl suite: folder of its D4RL-format files (<id>.hdf5 or <id>-v<k>*.hdf5, e.g. "
                             "from ssmrl dataset collect)")
    opts, words = parser.parse_known_args(argv)
    bad = [w for w in words if "=" not in w or w.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    for name in ("agents", "envs"):  # nargs="+" also swallows the key=value words that follow
        values = getattr(opts, name) or []
        words += [v for v in values if "=" in v]
        setattr(opts, name, [v for v in values if "=" not in v] or None)
    if not opts.agents:
        parser.error("--agents needs at least one agent name")
    unknown = [e for e in opts.envs or [] if e not in suite_envs(opts.suite)]
    if unknown:
        parser.error(f"--envs: {unknown} are not env ids of the {opts.suite} suite; valid: {suite_envs(opts.suite)}")
    if opts.final_episodes < 0:
        parser.error(f"--final-episodes must be >= 0, got {opts.final_episodes}")
    if opts.suite == "d4rl":
        try:  # every file is found before any cell starts
            make_cells(opts.suite, opts.agents, opts.seeds, Path("."), opts.envs, words, datasets_dir=opts.datasets_dir)
        except ValueError as err:
            parser.error(str(err))
    out = Path(opts.out or f"runs/bench-{opts.suite}")
    summary = run_suite(opts.suite, opts.agents, opts.seeds, out, opts.envs, words, opts.backend, opts.workers,
                        opts.address, opts.cpus_per_cell, opts.gpus_per_cell, opts.final_episodes, opts.datasets_dir)
    done = sum(c["status"] == "done" for c in summary["cells"])
    print(f"{done}/{len(summary['cells'])} cells finished; results in {out} (ssmrl bench report {out})", file=sys.stderr)
    return 0 if not summary["failed"] else 1
