"""Run directories: one folder holds everything a run produced and everything needed to resume it.

    <run-dir>/
      config.yaml      the fully resolved config (rewritten when a resume changes an allowed key)
      run.json         package versions, git commit, machine, seed, command lines, env settings, resumes
      metrics.jsonl    one JSON object per logged step ({"step": ..., "<name>": value, ...})
      scores.jsonl     one JSON object per finished evaluation/training episode
      tb/              TensorBoard event files
      checkpoints/     atomic checkpoints (see ssmrl.runs.checkpoint)
      videos/          GIF/MP4 files
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ssmrl.runs.config import ConfigError, deep_merge, dump_yaml, flatten, from_dict, load_yaml, resolve_args


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """:func:`ssmrl.runs.checkpoint.atomic_write`, imported when first used (that module loads torch; a config
    or ``--help`` never needs it)."""
    from ssmrl.runs.checkpoint import atomic_write as write_atomically

    write_atomically(path, write, mode)


def _checkpointer(directory: Path):
    from ssmrl.runs.checkpoint import Checkpointer

    return Checkpointer(directory)


PACKAGES = ("ssmrl", "torch", "numpy", "gymnasium", "ale-py", "dm-control", "mujoco", "triton", "h5py", "tensorboard")

# Keys a resume may change: budgets and reporting, never anything that shapes the learner or its data.
RESUMABLE_PREFIXES = ("train.steps", "train.log_every", "train.eval_every", "train.eval_episodes",
                      "train.checkpoint_every", "train.video_every", "train.eval_wm_windows", "device")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed package, not a checkout: no commit to record
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine_info() -> dict[str, Any]:
    import torch

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["env_vars"] = {k: os.environ[k] for k in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "TRITON_INTERPRET", "OMP_NUM_THREADS") if k in os.environ}
    return info


def _jsonable(value: Any) -> Any:
    """Numbers from numpy/torch as plain floats; non-finite values become strings so the line stays valid JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


LOCK_FILE = ".lock"


class RunLockedError(ConfigError):
    """Another live process holds the run directory."""


def lock_run_directory(directory: Path):
    """Take the exclusive lock of a run directory (creating it): an open file whose ``flock`` dies with the
    process, so a crashed or killed run never leaves a stale lock. Raises :class:`RunLockedError` naming the
    holder's pid and host while another process holds it. Returns the open lock file (keep it open)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK_FILE, "a+")
    except OSError as err:
        raise ConfigError(f"cannot create run directory {directory}: {err.strerror or err}") from err
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(f"run directory {directory} is in use by another process ({holder}); "
                             "wait for it to finish or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
    handle.flush()
    return handle


@dataclass
class Run:
    """An open run directory. ``resumed_step`` is the checkpoint step on resume, else None.
    Runs made by :meth:`open` hold the directory's lock until :meth:`close` (or the process ends)."""

    directory: Path
    config: Any
    resumed: bool

    def __post_init__(self):
        self._lock = None
        self.directory = Path(self.directory)
        for sub in ("checkpoints", "videos", "tb"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.checkpointer = _checkpointer(self.directory / "checkpoints")
        self._writer = None
        self._purge_step: int | None = None

    # --- creation / resume ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | Path, args: list[str], schema: type, command: str = "train",
             validate: Callable[[Any], None] | None = None) -> "Run":
        """Create a run from presets/overrides, or resume the one in ``directory`` (its config.yaml wins).

        On resume, command-line words may only change keys in ``RESUMABLE_PREFIXES``; any other difference
        is an error that names the key, so nothing given on the command line is silently dropped. ``validate``
        (config -> None, raising ``ConfigError``) runs before anything is written: a refused first start
        leaves no directory behind, a refused resume rewrites nothing.
        """
        directory = Path(directory)
        merged, given = resolve_args(args)
        config_file = directory / "config.yaml"
        if config_file.is_file():
            lock = lock_run_directory(directory)  # before reading: a live run may be rewriting its files
            try:
                return cls._resume(directory, given, schema, lock, validate)
            except BaseException:
                lock.close()
                raise
        if directory.exists() and any(p.name != LOCK_FILE for p in directory.iterdir()):
            raise ConfigError(f"run directory {directory} exists, is not empty and has no config.yaml")
        config = from_dict(schema, merged)  # validated before anything is created
        if validate is not None:
            validate(config)
        lock = lock_run_directory(directory)
        run = cls(directory, config, resumed=False)
        run._lock = lock
        atomic_write(config_file, lambda f: f.write(dump_yaml(config)), mode="w")
        run.update_info(
            command=command,
            argv=sys.argv,
            created=time.time(),
            seed=getattr(config, "seed", None),
            packages=package_versions(),
            git=git_commit(),
            machine=machine_info(),
        )
        return run

    @classmethod
    def _resume(cls, directory: Path, given: dict, schema: type, lock, validate=None) -> "Run":
        """Resume the run in ``directory`` (locked by the caller with ``lock``)."""
        config_file = directory / "config.yaml"
        recorded = load_yaml(config_file)
        changes = {}
        for key, value in flatten(given).items():
            old = flatten(recorded).get(key, _MISSING)
            if old == value:
                continue
            if not key.startswith(RESUMABLE_PREFIXES):
                raise ConfigError(
                    f"cannot change {key} when resuming {directory} (run has {old if old is not _MISSING else 'no such key'!r}, "
                    f"command line says {value!r}); only {list(RESUMABLE_PREFIXES)} may change; use a new --run-dir"
                )
            changes[key] = value
        data = recorded
        for key, value in changes.items():
            data = deep_merge(data, _nest(key, value))
        config = from_dict(schema, data)
        if validate is not None:
            validate(config)
        steps = getattr(getattr(config, "train", None), "steps", None)
        done = _checkpointer(directory / "checkpoints").latest_step()
        if "train.steps" in changes and steps is not None and done is not None and steps < done:
            raise ConfigError(f"train.steps={steps} is below the run's progress ({done} at the latest checkpoint "
                              f"of {directory}); give at least {done}")
        run = cls(directory, config, resumed=True)
        run._lock = lock
        if changes:
            print(f"resume: applying {changes}", file=sys.stderr)
            atomic_write(config_file, lambda f: f.write(dump_yaml(config)), mode="w")
        run.update_info(resumes=run.info().get("resumes", []) + [{"time": time.time(), "argv": sys.argv, "changes": changes}])
        return run

    @classmethod
    def load(cls, directory: str | Path, schema: type) -> "Run":
        """Open an existing run read-mostly (for eval/imagine)."""
        directory = Path(directory)
        config_file = directory / "config.yaml"
        if not config_file.is_file():
            raise FileNotFoundError(f"{directory} is not a run directory (no config.yaml)")
        return cls(directory, from_dict(schema, load_yaml(config_file)), resumed=True)

    # --- run.json ---------------------------------------------------------------------------------------------
    def info(self) -> dict:
        path = self.directory / "run.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def update_info(self, **fields: Any) -> None:
        data = {**self.info(), **fields}
        atomic_write(self.directory / "run.json", lambda f: f.write(json.dumps(data, indent=1, default=str)), mode="w")

    # --- logging ----------------------------------------------------------------------------------------------
    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events logged after the checkpoint we resumed from, so the curve continues.
            self._writer = SummaryWriter(str(self.directory / "tb"), purge_step=self._purge_step)
        return self._writer

    def resume_from(self, step: int) -> None:
        """Tell the logs that training continues from checkpoint ``step`` (later lines are dropped; the point
        logged at ``step`` itself belongs to the checkpoint and stays)."""
        self._purge_step = step + 1
        for name in ("metrics.jsonl", "scores.jsonl"):
            path = self.directory / name
            if path.is_file():
                kept = "".join(line + "\n" for line in path.read_text().splitlines()
                               if line.strip() and _step_of(line) <= step)
                atomic_write(path, lambda f, text=kept: f.write(text), mode="w")

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        with open(self.directory / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def log_score(self, step: int, **fields: Any) -> None:
        row = {"step": int(step), **{k: _jsonable(v) for k, v in fields.items()}}
        with open(self.directory / "scores.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


_MISSING = object()


def _nest(dotted: str, value: Any) -> dict:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def _step_of(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except ValueError:
        return math.inf  # a torn last line from a crash: drop it
