"""Atomic checkpoints of everything a learner registers: models, optimisers, counters, RNG states, replay index.

Layout of ``checkpoints/``::

    ckpt-000001000.pt     torch.save of {"step", "objects": {name: state_dict}, "rng": {...}, "wall_s"}
    latest.json           {"file": "ckpt-000001000.pt", "step": 1000, "sha256": "...", "wall_s": 61.2}

``wall_s``: the run's wall-clock seconds up to that checkpoint, summed over every process that worked on it (each
resume adds its own time on top of the checkpoint it loaded; time after a process's last checkpoint is lost with
its work, so it does not count). Checkpoints written before it existed count as 0.

Every file is written to a temporary name, flushed to disk and renamed over its final name, so a crash mid-write
leaves the previous checkpoint and ``latest.json`` untouched. The sha256 in ``latest.json`` catches a checkpoint
that was truncated or altered afterwards.

Recovery: a directory that holds checkpoints but no ``latest.json`` is never treated as empty: the index is rebuilt
from the newest checkpoint that reads back whole (``latest``). ``recover(path)`` points the index at a chosen
checkpoint (``ssmrl train ... --from-checkpoint FILE``); checkpoints after it are renamed ``*.pt.rejected`` so
they can neither be resumed nor displace the good ones when old files are pruned.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ssmrl.runs.seeding import rng_state, set_rng_state

LATEST = "latest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` into a temp file in the same folder, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files follow the user's umask like any other
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Checkpointer:
    """Saves and restores registered objects. An object is anything with ``state_dict``/``load_state_dict``, or a
    plain ``dict`` of counters (restored in place)."""

    def __init__(self, directory: str | Path, keep: int = 2):
        if keep < 2:
            raise ValueError("keep must be >= 2 so that a previous checkpoint survives a bad write")
        self.directory = Path(directory)
        self.keep = keep
        self.objects: dict[str, Any] = {}
        # wall-clock of earlier processes (from the checkpoint loaded) and the start of this process's share
        self._wall_before, self._clock = 0.0, time.monotonic()

    def wall_s(self) -> float:
        """The run's wall-clock seconds so far: earlier processes' (up to the checkpoint loaded) plus this one's."""
        return self._wall_before + time.monotonic() - self._clock

    def register(self, **objects: Any) -> None:
        for name, obj in objects.items():
            if not (isinstance(obj, dict) or (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"))):
                raise TypeError(f"checkpoint object {name!r} needs state_dict/load_state_dict or must be a dict")
            self.objects[name] = obj

    # --- saving ---------------------------------------------------------------------------------------------
    def save(self, step: int) -> Path:
        payload = {
            "step": int(step),
            "objects": {name: (dict(obj) if isinstance(obj, dict) else obj.state_dict()) for name, obj in self.objects.items()},
            "rng": rng_state(),
            "wall_s": round(self.wall_s(), 3),
        }
        path = self.directory / f"ckpt-{int(step):09d}.pt"
        atomic_write(path, lambda f: torch.save(payload, f))
        record = {"file": path.name, "step": int(step), "sha256": sha256(path), "wall_s": payload["wall_s"]}
        atomic_write(self.directory / LATEST, lambda f: f.write(json.dumps(record, indent=1)), mode="w")
        self._prune()
        return path

    def _prune(self) -> None:
        for old in self.all()[: -self.keep]:
            old.unlink(missing_ok=True)

    # --- loading --------------------------------------------------------------------------------------------
    def all(self) -> list[Path]:
        return sorted(self.directory.glob("ckpt-*.pt"))

    def latest(self) -> Path | None:
        """The checkpoint named by ``latest.json``; None when the directory holds no checkpoint. Without the index
        but with checkpoint files, the index is rebuilt from the newest one that reads back (with a warning)."""
        record = self._latest_record()
        if record is None and self.all():
            return self.recover()
        return None if record is None else self.directory / record["file"]

    def latest_step(self) -> int | None:
        """The step recorded in ``latest.json`` (None without one); reads no checkpoint."""
        return self._latest_field("step")

    def latest_wall_s(self) -> float | None:
        """The run's wall-clock seconds at its latest checkpoint (``latest.json``; None without one)."""
        return self._latest_field("wall_s")

    def _latest_field(self, key: str) -> Any:
        """One field of ``latest.json``; None without a readable index (reads no checkpoint)."""
        try:
            record = self._latest_record()
        except CheckpointError:
            return None
        return None if record is None else record[key]

    def recover(self, path: str | Path | None = None) -> Path:
        """Point ``latest.json`` at ``path`` (verified by reading it back) or, without a path, at the newest
        checkpoint that reads back; later checkpoint files are renamed ``*.pt.rejected``. Returns the file."""
        import sys

        if path is not None:
            chosen = Path(path)
            payload = self.read(chosen)  # raises CheckpointError naming the file if it is unusable
            chosen = chosen.resolve()
            if chosen.parent != self.directory.resolve():
                raise CheckpointError(f"{path} is not a checkpoint of this run ({self.directory})")
        else:
            chosen, payload, errors = None, None, []
            for candidate in reversed(self.all()):
                try:
                    payload = self.read(candidate)
                    chosen = candidate
                    break
                except CheckpointError as err:
                    errors.append(str(err))
            if chosen is None:
                raise CheckpointError(f"no checkpoint in {self.directory} reads back: {'; '.join(errors)}")
        for later in self.all():
            if later.name > chosen.name:
                later.rename(later.with_name(later.name + ".rejected"))
        record = {"file": chosen.name, "step": int(payload["step"]), "sha256": sha256(chosen),
                  "wall_s": float(payload.get("wall_s", 0.0))}
        atomic_write(self.directory / LATEST, lambda f: f.write(json.dumps(record, indent=1)), mode="w")
        print(f"checkpoints: {LATEST} now points at {chosen.name} (step {record['step']})", file=sys.stderr, flush=True)
        return self.directory / chosen.name

    def _latest_record(self) -> dict | None:
        index = self.directory / LATEST
        if not index.is_file():
            return None
        try:
            record = json.loads(index.read_text())
            return {"file": str(record["file"]), "step": int(record["step"]), "sha256": str(record["sha256"]),
                    "wall_s": float(record.get("wall_s", 0.0))}
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index}: corrupt checkpoint index ({err}); checkpoints present: {self._names()}") from err

    def _names(self) -> list[str]:
        return [p.name for p in self.all()]

    def read(self, path: str | Path | None = None) -> dict:
        """Read and verify a checkpoint file (default: the latest) without applying it."""
        record = self._latest_record() if path is None else None
        if path is None:
            if record is None:
                raise CheckpointError(f"no checkpoint in {self.directory}")
            path = self.directory / record["file"]
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} does not exist; checkpoints present: {self._names()}")
        if record is not None and sha256(path) != record["sha256"]:
            raise CheckpointError(
                f"checkpoint {path} is corrupt or truncated (sha256 differs from {LATEST}); "
                f"earlier checkpoints still present: {[n for n in self._names() if n != path.name]}"
            )
        try:
            # Our own files: they hold python/numpy RNG states, which the weights-only loader rejects.
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # torch raises several types for truncated zip archives
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
        if not isinstance(payload, dict) or not {"step", "objects", "rng"} <= set(payload):
            raise CheckpointError(f"checkpoint {path} is not an ssmrl checkpoint (missing step/objects/rng)")
        return payload

    def load(self, path: str | Path | None = None, strict: bool = True) -> int:
        """Restore every registered object and the global RNG states; returns the checkpoint's step."""
        payload = self.read(path)
        saved = payload["objects"]
        missing = sorted(set(self.objects) - set(saved))
        if strict and missing:
            raise CheckpointError(f"checkpoint lacks registered objects {missing}; it holds {sorted(saved)}")
        for name, obj in self.objects.items():
            if name not in saved:
                continue
            try:
                if isinstance(obj, dict):
                    obj.clear()
                    obj.update(saved[name])
                else:
                    obj.load_state_dict(saved[name])
            except (RuntimeError, KeyError, ValueError) as err:
                raise CheckpointError(f"checkpoint object {name!r} does not fit this run: {err}") from err
        set_rng_state(payload["rng"])
        self._wall_before, self._clock = float(payload.get("wall_s", 0.0)), time.monotonic()
        return int(payload["step"])
