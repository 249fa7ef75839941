"""Append-only chunk files and the committed index of a persistent replay buffer.

On-disk format (version 1) of a buffer directory::

    <dir>/index.json                               committed index (written only by ReplayBuffer.save_index)
    <dir>/sampler-<commit:09d>.npz                 sampler state of that commit (arrays + JSON string "meta")
    <dir>/stream_<s:03d>/chunk_<start:012d>.npz    full chunk: steps [start, start + chunk_size) of stream s,
                                                   written once, the moment the chunk is complete
    <dir>/stream_<s:03d>/tail_<start:012d>_<end:012d>.npz
                                                   partial chunk [start, end), written at a commit

Every ``.npz`` holds one array per step key (leading axis = steps, dtype and trailing shape as in the spec);
files are written to a temporary name and renamed, so a file either exists complete or not at all.

``index.json`` (and the ``"index"`` entry of ``ReplayBuffer.state_dict()``, which a checkpoint stores)::

    {"format": "ssmrl-replay", "version": 1, "commit": int, "config": {ReplayConfig fields},
     "spec": {key: {"shape": [...], "dtype": "uint8"}},
     "streams": [{"total": steps ever written to the stream,
                  "files": [{"file": "stream_000/chunk_000000000000.npz", "start": 0, "end": 1024}, ...]}],
     "previous_files": [files referenced by the preceding commits, kept for older checkpoints],
     "sampler_file": "sampler-000000003.npz" (only in index.json)}

The files of a stream cover exactly its retained steps ``[max(0, total - stream_capacity), total)`` in order;
loading reads those ranges and nothing else, so steps written after the commit are discarded. Files that no
recent commit references are deleted at the next commit (garbage collection).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ssmrl.runs.checkpoint import atomic_write

FORMAT = "ssmrl-replay"
VERSION = 1
INDEX = "index.json"


class ReplayStorageError(RuntimeError):
    """A replay file that is missing, unreadable or inconsistent with the index; the message names the file."""


def stream_dir(stream: int) -> str:
    return f"stream_{stream:03d}"


def chunk_file(stream: int, start: int) -> str:
    return f"{stream_dir(stream)}/chunk_{start:012d}.npz"


def tail_file(stream: int, start: int, end: int) -> str:
    return f"{stream_dir(stream)}/tail_{start:012d}_{end:012d}.npz"


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray], compress: bool = False) -> None:
    """Atomically write a dict of arrays as ``.npz``."""
    save = np.savez_compressed if compress else np.savez
    atomic_write(Path(path), lambda f: save(f, **arrays))


def read_arrays(path: Path, spec: Mapping[str, tuple[tuple[int, ...], np.dtype]] | None, length: int | None) -> dict[str, np.ndarray]:
    """Read and check one chunk file; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise ReplayStorageError(f"replay chunk file {path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise ReplayStorageError(f"replay chunk file {path} is corrupt or unreadable: {err}") from err
    if spec is not None:
        missing = sorted(set(spec) - set(arrays))
        if missing:
            raise ReplayStorageError(f"replay chunk file {path} lacks keys {missing}")
        for key, (shape, dtype) in spec.items():
            arr = arrays[key]
            if arr.dtype != dtype or arr.shape[1:] != tuple(shape):
                raise ReplayStorageError(
                    f"replay chunk file {path}: key {key!r} has dtype {arr.dtype} shape {arr.shape[1:]}, "
                    f"expected {np.dtype(dtype)} {tuple(shape)}"
                )
            if length is not None and arr.shape[0] < length:
                raise ReplayStorageError(
                    f"replay chunk file {path}: key {key!r} has {arr.shape[0]} steps, expected {length}"
                )
    return arrays


def spec_to_json(spec: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> dict[str, Any]:
    return {k: {"shape": list(shape), "dtype": np.dtype(dtype).str} for k, (shape, dtype) in spec.items()}


def spec_from_json(data: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {k: (tuple(int(s) for s in v["shape"]), np.dtype(v["dtype"])) for k, v in data.items()}


def write_index(directory: Path, index: Mapping[str, Any]) -> None:
    atomic_write(Path(directory) / INDEX, lambda f: f.write(json.dumps(index, indent=1).encode()))


def read_index(directory: Path) -> dict[str, Any]:
    path = Path(directory) / INDEX
    if not path.is_file():
        raise ReplayStorageError(f"replay index {path} is missing (no committed replay in {directory})")
    try:
        index = json.loads(path.read_text())
    except ValueError as err:
        raise ReplayStorageError(f"replay index {path} is corrupt: {err}") from err
    check_index(index, str(path))
    return index


def check_index(index: Mapping[str, Any], where: str = "replay index") -> None:
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ReplayStorageError(
            f"{where}: format {index.get('format')!r} version {index.get('version')!r}, expected {FORMAT!r} {VERSION}"
        )
    for key in ("config", "spec", "streams", "commit"):
        if key not in index:
            raise ReplayStorageError(f"{where}: missing entry {key!r}")


def write_sampler(path: Path, state: Mapping[str, Any]) -> None:
    """Sampler state: numpy arrays as arrays, everything else as one JSON string ``meta``."""
    arrays = {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    arrays["meta"] = np.array(json.dumps(meta))
    write_arrays(path, arrays)


def read_sampler(path: Path) -> dict[str, Any]:
    arrays = read_arrays(path, None, None)
    if "meta" not in arrays:
        raise ReplayStorageError(f"replay sampler file {path} lacks 'meta'")
    state = json.loads(str(arrays.pop("meta")))
    state.update(arrays)
    return state
