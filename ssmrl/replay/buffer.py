"""Per-stream FIFO replay of steps with (B, L) window sampling and optional chunked persistence.

Step record convention (the DreamerV3 one, shared by the rollout engine and the offline loaders). Record t of a
stream holds

    obs keys ("image" uint8 (H, W, C), "vector" float32 (D,), ...)  the observation o_t
    "reward"      float32 ()   the reward received on the transition INTO o_t (0 on the first step)
    "is_first"    bool    ()   o_t starts an episode (a reset observation)
    "is_last"     bool    ()   o_t ends an episode (terminated or truncated); no action is taken from it
    "is_terminal" bool    ()   o_t ends the episode by a true termination (not a time limit)
    "action"      (A,) / ()    the action taken from o_t (zeros on ``is_last`` records)
    extra keys                 e.g. "life_loss" (bool)

So an episode of T env steps is T + 1 records. Streams are independent sequences (one per environment);
records of one stream are consecutive in time, episodes follow each other inside a stream.

Sampled windows are ``(B, L)`` slices of one stream each. With ``within_episode=False`` a window may cross
episode boundaries; a learner must reset its recurrent state where ``is_first`` is True (the window's first
step starts from a zero state anyway). With ``within_episode=True`` no window contains ``is_first`` after its
first position. ``sample`` returns numpy arrays ``(B, L, ...)`` in the stored dtypes (images stay uint8);
``to_torch`` moves them to torch without changing dtypes: the learner converts images to float on its device.

Dtypes are fixed by the first record (or an explicit ``spec``): float64 is stored as float32, int64 as int32,
flags as bool, "reward" as float32.

Persistence (``ReplayConfig.directory``): full chunks are written as they complete; a commit writes the partial
chunks and returns the index. Commit either through ``state_dict()`` stored inside a checkpoint (restore with
``load_state_dict`` / ``ReplayBuffer.load(dir, state)``) or through ``save_index()`` (``index.json``, restore with
``ReplayBuffer.load(dir)``); use one of the two per directory, since each commit garbage-collects files that the
last ``keep_commits`` commits do not reference. The file format is described in ``ssmrl.replay.storage``.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ssmrl.replay import storage
from ssmrl.replay.config import ReplayConfig
from ssmrl.replay.samplers import Candidates, make_sampler

FLAGS = ("is_first", "is_last", "is_terminal")
Spec = dict[str, tuple[tuple[int, ...], np.dtype]]


def _stored_dtype(key: str, dtype: np.dtype) -> np.dtype:
    if key in FLAGS:
        return np.dtype(bool)
    if key == "reward":
        return np.dtype(np.float32)
    if dtype == np.float64:
        return np.dtype(np.float32)
    if dtype == np.int64:
        return np.dtype(np.int32)
    return np.dtype(dtype)


def infer_spec(step: Mapping[str, Any]) -> Spec:
    """Spec of one step record: key -> (shape, stored dtype)."""
    spec: Spec = {}
    for key, value in step.items():
        arr = np.asarray(value)
        spec[key] = (tuple(arr.shape), _stored_dtype(key, arr.dtype))
    return spec


def _check_spec(spec: Spec) -> None:
    missing = [k for k in FLAGS if k not in spec]
    if missing:
        raise KeyError(f"replay steps need the flag keys {list(FLAGS)}; missing {missing}")


class ReplayBuffer:
    """FIFO replay of ``num_streams`` step streams; ``capacity // num_streams`` steps kept per stream.

    Storage: one preallocated array per key shaped ``(num_streams, stream_capacity, *shape)``.
    """

    def __init__(self, config: ReplayConfig | None = None, spec: Mapping[str, Any] | None = None, **overrides: Any):
        config = config or ReplayConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.spec: Spec | None = None
        self._data: dict[str, np.ndarray] = {}
        self._total = np.zeros(config.num_streams, dtype=np.int64)
        self.sampler = make_sampler(config, config.num_streams * config.stream_capacity)
        self._version = 0
        self._cache: dict[tuple, Candidates] = {}
        self.directory = None if config.directory is None else Path(config.directory)
        self._commit = 0
        self._recent_files: deque[list[str]] = deque(maxlen=config.keep_commits)
        self._recent_sampler_files: deque[str] = deque(maxlen=config.keep_commits)
        if spec is not None:
            self._allocate({k: (tuple(s), np.dtype(d)) for k, (s, d) in spec.items()})

    # --- properties -----------------------------------------------------------------------------------------
    @property
    def num_streams(self) -> int:
        return self.config.num_streams

    @property
    def stream_capacity(self) -> int:
        return self.config.stream_capacity

    @property
    def totals(self) -> np.ndarray:
        """Steps ever written per stream: (num_streams,) int64."""
        return self._total.copy()

    def stored(self, stream: int) -> int:
        return int(min(self._total[stream], self.stream_capacity))

    def __len__(self) -> int:
        return int(np.minimum(self._total, self.stream_capacity).sum())

    @property
    def bytes_per_step(self) -> int:
        """Bytes of one stored step: all keys plus the sampler's per-slot statistics."""
        if self.spec is None:
            raise RuntimeError("the replay spec is not known before the first step is added")
        data = sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in self.spec.values())
        sampler = 8 if self.config.sampler == "dfs" else 0
        return data + sampler

    @property
    def nbytes(self) -> int:
        """Bytes the full buffer occupies once every slot is written (numpy pages memory in lazily)."""
        return self.bytes_per_step * self.num_streams * self.stream_capacity

    # --- allocation -----------------------------------------------------------------------------------------
    def _allocate(self, spec: Spec) -> None:
        _check_spec(spec)
        self.spec = dict(spec)
        n, c = self.num_streams, self.stream_capacity
        self._data = {k: np.zeros((n, c, *shape), dtype=dtype) for k, (shape, dtype) in spec.items()}
        if self.config.verbose:
            keys = ", ".join(f"{k} {np.dtype(d).name}{list(s)}" for k, (s, d) in spec.items())
            print(
                f"replay: {n} stream(s) x {c} steps = {n * c} steps x {self.bytes_per_step} B/step "
                f"= {self.nbytes / 2**20:.1f} MiB ({keys})",
                flush=True,
            )

    def _checked(self, step: Mapping[str, Any], leading: tuple[int, ...]) -> dict[str, np.ndarray]:
        assert self.spec is not None
        extra = sorted(set(step) - set(self.spec))
        missing = sorted(set(self.spec) - set(step))
        if extra or missing:
            raise KeyError(f"replay step keys differ from the buffer's: missing {missing}, unexpected {extra}")
        out = {}
        for key, (shape, dtype) in self.spec.items():
            arr = np.asarray(step[key])
            if arr.shape != (*leading, *shape):
                raise ValueError(f"replay key {key!r}: shape {arr.shape}, expected {(*leading, *shape)}")
            if not np.can_cast(arr.dtype, dtype, casting="same_kind") and not (key in FLAGS and arr.dtype.kind in "iu"):
                raise TypeError(f"replay key {key!r}: dtype {arr.dtype} cannot be stored as {dtype}")
            out[key] = arr
        return out

    def _check_stream(self, stream: int) -> int:
        if not 0 <= int(stream) < self.num_streams:
            raise IndexError(f"stream {stream} out of range [0, {self.num_streams})")
        return int(stream)

    # --- writing --------------------------------------------------------------------------------------------
    def add(self, step: Mapping[str, Any], stream: int = 0) -> None:
        """Append one step record (a dict of per-step values) to ``stream``."""
        stream = self._check_stream(stream)
        if self.spec is None:
            self._allocate(infer_spec(step))
        values = self._checked(step, ())
        c = self.stream_capacity
        t = int(self._total[stream])
        pos = t % c
        for key, arr in values.items():
            self._data[key][stream, pos] = arr
        if t >= c:
            self.sampler.on_overwrite(np.array([stream * c + pos]))
        self._total[stream] = t + 1
        self._version += 1
        self._maybe_write_chunk(stream)

    def extend(self, steps: Mapping[str, Any], stream: int = 0) -> None:
        """Append T step records given as arrays with a leading time axis ``(T, ...)``."""
        stream = self._check_stream(stream)
        lengths = {k: len(np.asarray(v)) for k, v in steps.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"replay extend: keys have different lengths {lengths}")
        total_len = next(iter(lengths.values()), 0)
        if total_len == 0:
            return
        if self.spec is None:
            self._allocate(infer_spec({k: np.asarray(v)[0] for k, v in steps.items()}))
        values = self._checked(steps, (total_len,))
        c, k = self.stream_capacity, self.config.chunk_size
        done = 0
        while done < total_len:
            t = int(self._total[stream])
            # stop each piece at a chunk boundary so the chunk is still in the ring when it is written
            n = min(total_len - done, k - t % k, c)
            pos = (t + np.arange(n)) % c
            for key, arr in values.items():
                self._data[key][stream, pos] = arr[done : done + n]
            reused = pos[t + np.arange(n) >= c]
            if reused.size:
                self.sampler.on_overwrite(stream * c + reused)
            self._total[stream] = t + n
            done += n
            self._maybe_write_chunk(stream)
        self._version += 1

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], config: ReplayConfig | None = None, **overrides: Any) -> "ReplayBuffer":
        """A single-stream, memory-only buffer that adopts ``arrays`` (each ``(T, ...)``) without copying
        where their dtypes already match the stored ones (used for offline datasets)."""
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"from_arrays: keys have different lengths {lengths}")
        t = next(iter(lengths.values()))
        if t == 0:
            raise ValueError("from_arrays: no steps")
        config = dataclasses.replace(config or ReplayConfig(), **overrides, capacity=t, num_streams=1, directory=None)
        buffer = cls(config)
        spec = infer_spec({k: np.asarray(v)[0] for k, v in arrays.items()})
        _check_spec(spec)
        buffer.spec = spec
        buffer._data = {k: np.asarray(v).astype(spec[k][1], copy=False)[None] for k, v in arrays.items()}
        buffer._total[0] = t
        if config.verbose:
            print(f"replay: 1 stream x {t} steps x {buffer.bytes_per_step} B/step = {buffer.nbytes / 2**20:.1f} MiB", flush=True)
        return buffer

    # --- sampling -------------------------------------------------------------------------------------------
    def candidates(self, length: int, within_episode: bool | None = None) -> Candidates:
        """Every valid start of a window of ``length`` steps (cached until the next write)."""
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        within = self.config.within_episode if within_episode is None else within_episode
        key = (length, within, self._version)
        if key in self._cache:
            return self._cache[key]
        c = self.stream_capacity
        streams, starts, ages = [], [], []
        for s in range(self.num_streams):
            total = int(self._total[s])
            lo, hi = max(0, total - c), total - length  # starts in [lo, hi]
            if hi < lo:
                continue
            start = np.arange(lo, hi + 1, dtype=np.int64)
            if within and length > 1:
                first = self._data["is_first"][s, np.arange(lo, total) % c]
                cum = np.concatenate([[0], np.cumsum(first, dtype=np.int64)])
                j = start - lo
                # number of is_first at positions start+1 .. start+length-1 must be zero
                start = start[cum[j + length] - cum[j + 1] == 0]
            streams.append(np.full(start.shape, s, dtype=np.int64))
            starts.append(start)
            ages.append(total - (start + length))
        if streams:
            stream_arr, start_arr, age_arr = np.concatenate(streams), np.concatenate(starts), np.concatenate(ages)
        else:
            stream_arr = start_arr = age_arr = np.zeros(0, dtype=np.int64)
        cands = Candidates(stream=stream_arr, start=start_arr, slot=stream_arr * c + start_arr % c, age=age_arr)
        self._cache = {key: cands}
        return cands

    def sample(self, batch_size: int, length: int, purpose: str = "train", with_index: bool = False) -> dict[str, np.ndarray]:
        """Sample ``batch_size`` windows of ``length`` steps with the configured sampler.

        purpose: "train" (world-model / learner batches) or "imagination" (start states; only DFS treats it
        differently). Returns ``{key: (B, L, ...)}``; with ``with_index`` also ``stream_id`` (B, L) int64 and
        ``step_id`` (B, L) int64 (absolute per-stream step index).
        """
        if self.spec is None:
            raise ValueError("cannot sample from an empty replay buffer")
        cands = self.candidates(length)
        if len(cands) == 0:
            raise ValueError(
                f"no window of length {length} fits in the replay buffer yet (stored steps per stream: "
                f"{np.minimum(self._total, self.stream_capacity).tolist()}, within_episode={self.config.within_episode})"
            )
        idx = self.sampler.choose(cands, batch_size, purpose)
        return self.gather(cands.stream[idx], cands.start[idx], length, with_index)

    def gather(self, streams: np.ndarray, starts: np.ndarray, length: int, with_index: bool = False) -> dict[str, np.ndarray]:
        """Windows at given (stream, absolute start) pairs: ``{key: (B, L, ...)}``."""
        streams, starts = np.asarray(streams, dtype=np.int64), np.asarray(starts, dtype=np.int64)
        steps = starts[:, None] + np.arange(length)
        lo = np.maximum(0, self._total[streams] - self.stream_capacity)
        if np.any(starts < lo) or np.any(steps[:, -1] >= self._total[streams]):
            raise IndexError("window outside the stored steps of its stream")
        pos = steps % self.stream_capacity
        rows = streams[:, None]
        out = {key: arr[rows, pos] for key, arr in self._data.items()}
        if with_index:
            out["stream_id"] = np.broadcast_to(rows, pos.shape).copy()
            out["step_id"] = steps
        return out

    def stream_arrays(self, stream: int = 0) -> dict[str, np.ndarray]:
        """The retained steps of one stream in time order (a copy): ``{key: (T, ...)}``."""
        stream = self._check_stream(stream)
        total, c = int(self._total[stream]), self.stream_capacity
        pos = np.arange(max(0, total - c), total) % c
        return {k: a[stream, pos] for k, a in self._data.items()}

    # --- persistence ----------------------------------------------------------------------------------------
    def _maybe_write_chunk(self, stream: int) -> None:
        k = self.config.chunk_size
        total = int(self._total[stream])
        if self.directory is None or total % k:
            return
        start = total - k
        pos = np.arange(start, total) % self.stream_capacity
        arrays = {key: arr[stream, pos] for key, arr in self._data.items()}
        storage.write_arrays(self.directory / storage.chunk_file(stream, start), arrays, self.config.compress)

    def _files(self) -> list[dict[str, Any]]:
        """Write tail files and list, per stream, the files covering its retained steps."""
        assert self.directory is not None
        k, c = self.config.chunk_size, self.stream_capacity
        streams = []
        for s in range(self.num_streams):
            total = int(self._total[s])
            lo = max(0, total - c)
            files = []
            for start in range((lo // k) * k, (total // k) * k, k):
                files.append({"file": storage.chunk_file(s, start), "start": start, "end": start + k})
            tail = (total // k) * k
            if tail < total:  # tail >= total - k >= lo because chunk_size <= stream capacity
                name = storage.tail_file(s, tail, total)
                path = self.directory / name
                if not path.is_file():
                    pos = np.arange(tail, total) % c
                    storage.write_arrays(path, {key: a[s, pos] for key, a in self._data.items()}, self.config.compress)
                files.append({"file": name, "start": tail, "end": total})
            streams.append({"total": total, "files": files})
        return streams

    def _garbage_collect(self, keep: set[str]) -> None:
        assert self.directory is not None
        for s in range(self.num_streams):
            folder = self.directory / storage.stream_dir(s)
            if not folder.is_dir():
                continue
            for path in folder.glob("*.npz"):
                if f"{storage.stream_dir(s)}/{path.name}" not in keep:
                    path.unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        """Commit: flush the partial chunks to disk and return the index plus the sampler state.

        A checkpoint stores this dict; ``load_state_dict`` (or ``ReplayBuffer.load(directory, state)``) then
        restores exactly these steps. A memory-only buffer returns ``index: None`` (sampler state and stream
        totals only)."""
        config = dataclasses.asdict(self.config)
        if self.directory is None:
            return {"index": None, "totals": self._total.tolist(), "sampler": self.sampler.state_dict()}
        if self.spec is None:
            raise ValueError("cannot commit a replay buffer before its first step")
        self._commit += 1
        streams = self._files()
        current = [f["file"] for st in streams for f in st["files"]]
        previous = sorted({f for files in self._recent_files for f in files})
        self._recent_files.append(current)
        self._garbage_collect(set(current) | set(previous))
        index = {
            "format": storage.FORMAT,
            "version": storage.VERSION,
            "commit": self._commit,
            "config": config,
            "spec": storage.spec_to_json(self.spec),
            "streams": streams,
            "previous_files": previous,
        }
        return {"index": index, "sampler": self.sampler.state_dict()}

    def save_index(self) -> Path:
        """Commit and write ``index.json`` (with the sampler state in ``sampler-<commit>.npz``) atomically."""
        if self.directory is None:
            raise ValueError("save_index needs ReplayConfig.directory")
        state = self.state_dict()
        index = state["index"]
        sampler_name = f"sampler-{index['commit']:09d}.npz"
        storage.write_sampler(self.directory / sampler_name, state["sampler"])
        index["sampler_file"] = sampler_name
        storage.write_index(self.directory, index)
        self._recent_sampler_files.append(sampler_name)
        for path in self.directory.glob("sampler-*.npz"):
            if path.name not in self._recent_sampler_files:
                path.unlink(missing_ok=True)
        return self.directory / storage.INDEX

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the committed steps listed in ``state['index']`` (chunk by chunk into the preallocated
        arrays, never a second full copy) and the sampler state. Later steps on disk are ignored."""
        index = state.get("index")
        if index is None:
            totals = np.asarray(state.get("totals"))
            if not np.array_equal(totals, self._total):
                raise ValueError(
                    f"memory-only replay state was taken with stream totals {totals.tolist()}, "
                    f"this buffer holds {self._total.tolist()}"
                )
            self.sampler.load_state_dict(dict(state["sampler"]))
            return
        if self.directory is None:
            raise ValueError("loading a persisted replay state needs ReplayConfig.directory")
        storage.check_index(index)
        saved = index["config"]
        for name in ("num_streams", "capacity", "chunk_size", "sampler"):
            if saved[name] != getattr(self.config, name):
                raise ValueError(f"replay state has {name}={saved[name]!r}, this buffer {getattr(self.config, name)!r}")
        spec = storage.spec_from_json(index["spec"])
        if self.spec is None:
            self._allocate(spec)
        elif spec != self.spec:
            raise ValueError(f"replay state spec {spec} differs from the buffer's {self.spec}")
        if len(index["streams"]) != self.num_streams:
            raise ValueError(f"replay state has {len(index['streams'])} streams, expected {self.num_streams}")
        for s, entry in enumerate(index["streams"]):
            self._total[s] = self._load_stream(s, entry)
        self.sampler.load_state_dict(dict(state["sampler"]))
        self._commit = int(index["commit"])
        self._recent_files.clear()
        if index.get("previous_files"):
            self._recent_files.append(list(index["previous_files"]))
        self._recent_files.append([f["file"] for st in index["streams"] for f in st["files"]])
        self._version += 1
        self._cache = {}

    def _load_stream(self, s: int, entry: Mapping[str, Any]) -> int:
        """Read stream ``s``'s committed chunk files into its ring (one chunk in memory at a time); returns its
        step total. The files must cover the kept window [total - capacity, total) without gaps."""
        c = self.stream_capacity
        total = int(entry["total"])
        covered = lo = max(0, total - c)
        for f in entry["files"]:
            start, end = int(f["start"]), int(f["end"])
            a, b = max(start, lo), min(end, total)
            if a != covered:
                raise storage.ReplayStorageError(
                    f"replay index: stream {s} file {f['file']} starts at step {a}, expected {covered}"
                )
            arrays = storage.read_arrays(self.directory / f["file"], self.spec, end - start)
            pos = np.arange(a, b) % c
            for key, arr in arrays.items():
                if key in self._data:
                    self._data[key][s, pos] = arr[a - start : b - start]
            del arrays
            covered = b
        if covered != total:
            raise storage.ReplayStorageError(f"replay index: stream {s} files end at step {covered}, expected {total}")
        return total

    @classmethod
    def load(cls, directory: str | Path, state: Mapping[str, Any] | None = None, **overrides: Any) -> "ReplayBuffer":
        """Rebuild the buffer committed in ``directory`` (its ``index.json``, or ``state`` from a checkpoint)."""
        directory = Path(directory)
        if state is None:
            index = storage.read_index(directory)
            if "sampler_file" not in index:
                raise storage.ReplayStorageError(f"{directory / storage.INDEX}: missing entry 'sampler_file'")
            state = {"index": index, "sampler": storage.read_sampler(directory / index["sampler_file"])}
        index = state["index"]
        storage.check_index(index)
        fields = {f.name for f in dataclasses.fields(ReplayConfig)}
        config = ReplayConfig(**{k: v for k, v in index["config"].items() if k in fields})
        config = dataclasses.replace(config, directory=str(directory), **overrides)
        buffer = cls(config)
        buffer.load_state_dict(state)
        return buffer


def to_torch(batch: Mapping[str, np.ndarray], device: Any = "cpu", non_blocking: bool = True) -> dict[str, Any]:
    """Numpy batch -> torch tensors on ``device`` with unchanged dtypes (uint8 images stay uint8: convert to
    float on the learner's device, which moves 4x fewer bytes). Zero-copy on CPU for contiguous arrays; on
    CUDA the host tensor is pinned so the copy can overlap with compute."""
    import torch

    device = torch.device(device)
    out = {}
    for key, value in batch.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if device.type != "cpu":
            if device.type == "cuda":
                tensor = tensor.pin_memory()
            tensor = tensor.to(device, non_blocking=non_blocking)
        out[key] = tensor
    return out
