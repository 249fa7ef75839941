"""Offline datasets (D4RL HDF5 files, Minari folders) into the replay structure, plus writers for both.

Readers return the flat D4RL form ``(data, metadata)``: ``observations (N, ...)`` (or a dict of such arrays),
``actions (N, ...)``, ``next_observations``, ``rewards (N,)``, ``terminals (N,)``, ``timeouts (N,)``, optional
``infos/<k>``; N transitions. Loaders turn a dataset into a single-stream ``ReplayBuffer`` with the step-record
convention of ``ssmrl.replay.buffer`` (an episode of T transitions becomes T + 1 records; the last one holds the
final ``next_observation`` with ``is_last`` and ``is_terminal`` = the dataset's terminal flag). (Returns-to-go
and in-episode timesteps are the offline learners' business: ``agents/offline/data.py`` computes them with
``ssmrl.replay.episodes``.)

Episodes end where ``terminals`` (termination, ``is_terminal``) or ``timeouts`` (time limit, not terminal) is
set, at the end of the file, and (D4RL only, with a warning) where ``next_observations[t] != observations[t+1]``
without either flag. Observations: an array becomes key "image" when uint8 with rank >= 3 per step, otherwise
"vector"; a dict (Minari ``Dict`` spaces) keeps its keys.

Layouts: D4RL = the top-level keys above plus ``metadata/*``; Minari (0.5.x) =
``<root>/<namespace>/<env>/<name>-vN/{metadata.json, data/main_data.hdf5}`` with one group ``episode_{i}`` per
episode holding ``observations`` (T+1), ``actions``, ``rewards``, ``terminations``, ``truncations`` (T).
A dataset with missing keys, mismatched lengths or non-finite values raises ``DatasetError`` naming the key and
the index.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ssmrl.replay.buffer import ReplayBuffer
from ssmrl.replay.config import ReplayConfig

REQUIRED_D4RL = ("observations", "actions", "next_observations", "rewards", "terminals", "timeouts")
# what D4RL's own get_dataset requires; v0 files, maze2d, antmaze and adroit lack timeouts and/or next_observations
MINIMAL_D4RL = ("observations", "actions", "rewards", "terminals")
EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")


class DatasetError(ValueError):
    """An offline dataset that cannot be used; the message names the file, key and index."""


def _h5py():
    try:
        import h5py
    except ModuleNotFoundError as err:  # pragma: no cover - h5py is in the offline extra
        raise ModuleNotFoundError('offline datasets need h5py (pip install "ssmrl[offline]")') from err
    return h5py


# --- validation ----------------------------------------------------------------------------------------------
def _first_bad(arr: np.ndarray) -> int | None:
    """Index (along axis 0) of the first row holding NaN/inf, or None."""
    if arr.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) if arr.ndim else ~np.isfinite(arr)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _check_finite(name: str, arr: np.ndarray, source: str) -> None:
    bad = _first_bad(arr)
    if bad is not None:
        raise DatasetError(f"{source}: key {name!r} holds a non-finite value at index {bad}")


def _obs_items(obs: Any, prefix: str = "observations") -> list[tuple[str, np.ndarray]]:
    if isinstance(obs, Mapping):
        return [(f"{prefix}/{k}", np.asarray(v)) for k, v in obs.items()]
    return [(prefix, np.asarray(obs))]


def complete_d4rl(data: Mapping[str, Any], source: str = "D4RL dataset", max_episode_steps: int = 1000) -> dict:
    """Fill what older D4RL files leave out, as D4RL's loaders do (with a warning naming each assumption):

    - no ``timeouts``: an episode also ends after ``max_episode_steps`` steps without a terminal, and where
      ``next_observations[t] != observations[t + 1]`` when next observations exist;
    - no ``next_observations``: ``observations[t + 1]`` inside an episode, the step's own observation at an
      episode's last step (``next_observation_valid`` is False there).
    Returns a new dict; complete data passes through unchanged.
    """
    missing = [k for k in MINIMAL_D4RL if k not in data]
    if missing:
        raise DatasetError(f"{source}: missing key(s) {missing}; a D4RL dataset needs at least {list(MINIMAL_D4RL)}")
    out = dict(data)
    if "timeouts" in out and "next_observations" in out:
        return out
    obs_items = _obs_items(out["observations"])
    n = len(obs_items[0][1])
    terminals = np.asarray(out["terminals"]).astype(bool).reshape(n)
    if "timeouts" not in out:
        jump = np.zeros(n, bool)
        if "next_observations" in out:
            for (_, o), (_, no) in zip(obs_items, _obs_items(out["next_observations"], "next")):
                jump[:-1] |= ~np.isclose(no[:-1].reshape(n - 1, -1), o[1:].reshape(n - 1, -1)).all(axis=1)
        timeouts, length = np.zeros(n, bool), 0
        for t in range(n):
            length += 1
            if not terminals[t] and (jump[t] or length >= max_episode_steps):
                timeouts[t] = True
            if terminals[t] or timeouts[t]:
                length = 0
        out["timeouts"] = timeouts
        warnings.warn(f"{source}: no 'timeouts' key; episodes end at terminals, after max_episode_steps="
                      f"{max_episode_steps} steps{' and where next_observations jump' if jump.any() else ''} "
                      f"({int(timeouts.sum())} time-outs inferred)", stacklevel=2)
    if "next_observations" not in out:
        ends = terminals | np.asarray(out["timeouts"]).astype(bool).reshape(n)
        ends[-1] = True
        nxt_index = np.where(ends, np.arange(n), np.minimum(np.arange(n) + 1, n - 1))

        def shift(o):
            return np.asarray(o)[nxt_index]

        obs = out["observations"]
        out["next_observations"] = ({k: shift(v) for k, v in obs.items()} if isinstance(obs, Mapping) else shift(obs))
        out["next_observation_valid"] = ~ends
        warnings.warn(f"{source}: no 'next_observations' key; using observations[t + 1] inside episodes "
                      f"({int(ends.sum())} episode-final steps have none)", stacklevel=2)
    return out


def validate_d4rl(data: Mapping[str, Any], source: str = "D4RL dataset") -> int:
    """Check keys, lengths and finiteness of flat D4RL data; return the number of transitions N. A non-finite
    value in an ``infos/*`` key (not used for learning) warns instead of failing."""
    missing = [k for k in REQUIRED_D4RL if k not in data]
    if missing:
        raise DatasetError(f"{source}: missing key(s) {missing}; a D4RL dataset needs {list(REQUIRED_D4RL)} "
                           f"(read_d4rl fills timeouts and next_observations from files that only have "
                           f"{list(MINIMAL_D4RL)})")
    items = _obs_items(data["observations"]) + _obs_items(data["next_observations"], "next_observations")
    items += [(k, np.asarray(data[k])) for k in ("actions", "rewards", "terminals", "timeouts")]
    items += [(k, np.asarray(v)) for k, v in data.items() if k.startswith("infos/")]
    n = len(items[0][1])
    for name, arr in items:
        if arr.ndim == 0 or len(arr) != n:
            raise DatasetError(f"{source}: key {name!r} has length {len(arr) if arr.ndim else 0}, expected {n} (length of {items[0][0]!r})")
    if n == 0:
        raise DatasetError(f"{source}: key 'observations' is empty")
    rewards = np.asarray(data["rewards"])
    if rewards.shape not in ((n,), (n, 1)):
        raise DatasetError(f"{source}: key 'rewards' has shape {rewards.shape}, expected ({n},)")
    for name, arr in items:
        if name.startswith("infos/"):
            bad = _first_bad(arr)
            if bad is not None:
                warnings.warn(f"{source}: key {name!r} holds a non-finite value at index {bad} (unused; kept)",
                              stacklevel=2)
            continue
        _check_finite(name, arr, source)
    return n


# --- conversion to step records ---------------------------------------------------------------------------
def _obs_key(arr: np.ndarray) -> str:
    return "image" if arr.dtype == np.uint8 and arr.ndim >= 4 else "vector"


def to_records(
    data: Mapping[str, Any], ends: np.ndarray, terminated: np.ndarray
) -> dict[str, np.ndarray]:
    """Flat transitions + episode ends -> step records ``{key: (N + E, ...)}``.

    ends: (E,) exclusive transition index where each episode ends (increasing, last == N);
    terminated: (E,) whether each episode ended by a true termination."""
    n = len(np.asarray(data["rewards"]))
    ends = np.asarray(ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    episode = np.repeat(np.arange(len(ends)), ends - starts)  # episode of each transition
    rec = np.arange(n) + episode  # record of each transition's observation
    final = ends + np.arange(len(ends))  # record of each episode's last observation
    total = n + len(ends)
    records: dict[str, np.ndarray] = {}

    def obs_dict(obs: Any) -> dict[str, np.ndarray]:
        if isinstance(obs, Mapping):
            return {k: np.asarray(v) for k, v in obs.items()}
        arr = np.asarray(obs)
        return {_obs_key(arr): arr}

    nxt = obs_dict(data["next_observations"])
    for key, arr in obs_dict(data["observations"]).items():
        dtype = np.float32 if arr.dtype == np.float64 else arr.dtype
        out = np.empty((total, *arr.shape[1:]), dtype=dtype)
        out[rec] = arr
        out[final] = nxt[key][ends - 1]
        records[key] = out
    actions = np.asarray(data["actions"])
    act = np.zeros((total, *actions.shape[1:]), dtype=np.float32 if actions.dtype == np.float64 else actions.dtype)
    act[rec] = actions
    records["action"] = act
    reward = np.zeros(total, dtype=np.float32)
    reward[rec + 1] = np.asarray(data["rewards"], dtype=np.float32).reshape(n)
    records["reward"] = reward
    is_first = np.zeros(total, dtype=bool)
    is_first[starts + np.arange(len(ends))] = True
    is_last = np.zeros(total, dtype=bool)
    is_last[final] = True
    is_terminal = np.zeros(total, dtype=bool)
    is_terminal[final] = np.asarray(terminated, dtype=bool)
    records.update(is_first=is_first, is_last=is_last, is_terminal=is_terminal)
    return records


def d4rl_episodes(data: Mapping[str, Any], source: str = "D4RL dataset") -> tuple[np.ndarray, np.ndarray]:
    """Episode ends (exclusive transition indices) and their terminated flags for flat D4RL data."""
    n = validate_d4rl(data, source)
    term = np.asarray(data["terminals"]).astype(bool).reshape(n)
    timeout = np.asarray(data["timeouts"]).astype(bool).reshape(n)
    boundary = term | timeout
    # an unflagged jump between next_observations[t] and observations[t+1] also ends an episode
    jump = np.zeros(n, dtype=bool)
    for (_, o), (_, no) in zip(_obs_items(data["observations"]), _obs_items(data["next_observations"], "next")):
        o, no = o.reshape(n, -1), no.reshape(n, -1)
        for a in range(0, n - 1, 4096):  # blocks: never a float copy of a whole image dataset
            b = min(a + 4096, n - 1)
            if o.dtype.kind in "fc":
                same = np.isclose(no[a:b], o[a + 1 : b + 1], rtol=1e-5, atol=1e-6).all(axis=1)
            else:
                same = (no[a:b] == o[a + 1 : b + 1]).all(axis=1)
            jump[a:b] |= ~same
    unflagged = jump & ~boundary
    if unflagged.any():
        idx = np.flatnonzero(unflagged)
        warnings.warn(
            f"{source}: {idx.size} episode boundaries without terminals/timeouts (next_observations[t] != "
            f"observations[t+1]), first at index {idx[0]}; treated as time-limit ends",
            stacklevel=2,
        )
    ends_mask = boundary | unflagged
    ends_mask[-1] = True  # the file's end closes the last episode
    ends = np.flatnonzero(ends_mask) + 1
    return ends, term[ends - 1]


# --- D4RL files ----------------------------------------------------------------------------------------------
def _write_meta(group, meta: Mapping[str, Any]) -> None:
    for key, value in meta.items():
        if isinstance(value, Mapping):
            _write_meta(group.create_group(key), value)
        elif value is None:
            group.create_dataset(key, data="null")
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            group.create_dataset(key, data=json.dumps(list(value)))
        else:
            group.create_dataset(key, data=value)


def _read_meta(group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        if hasattr(item, "items"):
            out[key] = _read_meta(item)
            continue
        value = item[()]
        if isinstance(value, bytes):
            value = value.decode()
            if value == "null":
                value = None
            elif value.startswith("["):
                value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _atomic_h5(path: Path, fill) -> None:
    h5py = _h5py()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_d4rl(path: str | Path, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write flat D4RL data (``observations`` may not be a dict here) and ``metadata/*`` atomically."""
    path = Path(path)
    validate_d4rl(data, str(path))
    if isinstance(data["observations"], Mapping):
        raise DatasetError(f"{path}: D4RL files hold one 'observations' array, got a dict")

    def fill(f) -> None:
        for key, value in data.items():
            if key == "metadata":  # written below from ``metadata``
                continue
            arr = np.asarray(value)
            if key in ("terminals", "timeouts"):
                arr = arr.astype(bool)
            elif key == "rewards":
                arr = arr.reshape(-1)
            f.create_dataset(key, data=arr)  # "infos/x" creates the infos group
        _write_meta(f.create_group("metadata"), metadata or {})

    _atomic_h5(path, fill)
    return path


def read_d4rl(path: str | Path, max_episode_steps: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and validate a D4RL HDF5 file: ``(flat arrays incl. infos/<k>, metadata dict)``. Files without
    ``timeouts`` or ``next_observations`` are completed by :func:`complete_d4rl` (episode cap: the argument, else
    the file's ``metadata/max_episode_steps``, else 1,000)."""
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"D4RL dataset file {path} does not exist")
    data: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        for key, item in f.items():
            if key == "metadata":
                meta = _read_meta(item)
            elif hasattr(item, "items"):
                for sub, ds in item.items():
                    if not hasattr(ds, "items"):
                        data[f"{key}/{sub}"] = ds[()]
            else:
                data[key] = item[()]
    cap = max_episode_steps or int(meta.get("max_episode_steps", 1000))
    data = complete_d4rl(data, str(path), cap)
    validate_d4rl(data, str(path))
    return data, meta


def load_d4rl(path: str | Path, config: ReplayConfig | None = None, **overrides: Any) -> ReplayBuffer:
    """A D4RL HDF5 file as a single-stream replay buffer (the step records);
    ``buffer.metadata`` holds the file's ``metadata/*``."""
    data, meta = read_d4rl(path)
    ends, terminated = d4rl_episodes(data, str(path))
    records = to_records(data, ends, terminated)
    del data
    buffer = ReplayBuffer.from_arrays(records, config, **overrides)
    buffer.metadata = meta
    return buffer


# --- Minari folders ----------------------------------------------------------------------------------------
def minari_path(root: str | Path, dataset_id: str | None = None) -> Path:
    """The dataset folder: ``root`` itself, or ``root/<namespace>/<env>/<name>-vN`` for a dataset id."""
    return Path(root) if dataset_id is None else Path(root).joinpath(*dataset_id.split("/"))


def _read_obs(item) -> Any:
    if hasattr(item, "items"):
        return {k: _read_obs(v) for k, v in item.items()}
    return item[()]


def _read_minari_episode(group, source: str) -> dict[str, Any]:
    """One ``episode_*`` group, checked: keys, lengths (observations one longer than rewards), finiteness, and
    termination/truncation flags only on the last step."""
    missing = [k for k in EPISODE_KEYS if k not in group]
    if missing:
        raise DatasetError(f"{source}: missing key(s) {missing}; a Minari episode needs {list(EPISODE_KEYS)}")
    ep = {k: _read_obs(group[k]) for k in EPISODE_KEYS}
    t = len(ep["rewards"])
    for key, arr in _obs_items(ep["observations"]):
        if len(arr) != t + 1:
            raise DatasetError(f"{source}: key {key!r} has length {len(arr)}, expected {t + 1} (rewards + 1)")
        _check_finite(key, arr, source)
    for key in ("actions", "terminations", "truncations"):
        for sub, arr in _obs_items(ep[key], key):
            if len(arr) != t:
                raise DatasetError(f"{source}: key {sub!r} has length {len(arr)}, expected {t} (length of 'rewards')")
            _check_finite(sub, arr, source)
    _check_finite("rewards", np.asarray(ep["rewards"]), source)
    if t == 0:
        raise DatasetError(f"{source}: key 'rewards' is empty (episode without steps)")
    for key in ("terminations", "truncations"):
        early = np.flatnonzero(np.asarray(ep[key], dtype=bool)[:-1])
        if early.size:
            raise DatasetError(f"{source}: key {key!r} is set at index {early[0]} before the episode's last step {t - 1}")
    return ep


def read_minari(path: str | Path, dataset_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and validate a Minari dataset folder into flat D4RL form ``(data, metadata)``. An episode that ends
    with neither ``terminations`` nor ``truncations`` set (data collection stopped) gets ``timeouts`` set on its
    last step, so that the flat form keeps every episode boundary."""
    h5py = _h5py()
    folder = minari_path(path, dataset_id)
    meta_file, data_file = folder / "metadata.json", folder / "data" / "main_data.hdf5"
    for f in (meta_file, data_file):
        if not f.is_file():
            raise FileNotFoundError(f"Minari dataset {folder}: missing file {f}")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as err:
        raise DatasetError(f"{meta_file}: not valid JSON ({err})") from err
    episodes = []
    with h5py.File(data_file, "r") as f:
        names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise DatasetError(f"{data_file}: no episode_* groups")
        for name in names:
            episodes.append(_read_minari_episode(f[name], f"{data_file}:{name}"))
    if "total_episodes" in meta and int(meta["total_episodes"]) != len(episodes):
        raise DatasetError(f"{meta_file}: total_episodes = {meta['total_episodes']} but the data file holds {len(episodes)} episodes")

    def cat(get) -> Any:
        first = get(episodes[0])
        if isinstance(first, Mapping):
            return {k: np.concatenate([get(e)[k] for e in episodes]) for k in first}
        return np.concatenate([np.asarray(get(e)) for e in episodes])

    def part(obs, sl) -> Any:
        return {k: v[sl] for k, v in obs.items()} if isinstance(obs, Mapping) else np.asarray(obs)[sl]

    data = {
        "observations": cat(lambda e: part(e["observations"], slice(None, -1))),
        "next_observations": cat(lambda e: part(e["observations"], slice(1, None))),
        "actions": cat(lambda e: e["actions"]),
        "rewards": cat(lambda e: np.asarray(e["rewards"]).reshape(-1)),
        "terminals": cat(lambda e: np.asarray(e["terminations"], dtype=bool)),
        "timeouts": cat(lambda e: np.asarray(e["truncations"], dtype=bool)),
    }
    ends = np.cumsum([len(e["rewards"]) for e in episodes]) - 1
    data["timeouts"][ends] |= ~data["terminals"][ends]
    return data, meta


def load_minari(path: str | Path, dataset_id: str | None = None,
                config: ReplayConfig | None = None, **overrides: Any) -> ReplayBuffer:
    """A Minari dataset folder as a single-stream replay buffer (the step records);
    ``buffer.metadata`` holds ``metadata.json``."""
    data, meta = read_minari(path, dataset_id)
    ends, terminated = d4rl_episodes(data, str(minari_path(path, dataset_id)))
    records = to_records(data, ends, terminated)
    del data
    buffer = ReplayBuffer.from_arrays(records, config, **overrides)
    buffer.metadata = meta
    return buffer


def write_minari(root: str | Path, dataset_id: str, data: Mapping[str, Any],
                 metadata: Mapping[str, Any] | None = None, episode_ends: np.ndarray | None = None) -> Path:
    """Write flat D4RL-form data as a Minari folder ``root/<dataset_id>``; episodes split at terminals,
    timeouts and ``episode_ends`` (default: flags and the data's end). Returns the folder."""
    n = validate_d4rl(data, f"write_minari({dataset_id!r})")
    if episode_ends is None:
        flags = np.asarray(data["terminals"], bool) | np.asarray(data["timeouts"], bool)
        flags[-1] = True
        episode_ends = np.flatnonzero(flags) + 1
    ends = np.asarray(episode_ends, dtype=np.int64)
    folder = minari_path(root, dataset_id)

    def sl(obs, a, b, final) -> Any:
        if isinstance(obs, Mapping):
            return {k: sl(v, a, b, final[k]) for k, v in obs.items()}
        return np.concatenate([np.asarray(obs)[a:b], np.asarray(final)[b - 1 : b]])

    def fill(f) -> None:
        start = 0
        for i, end in enumerate(ends.tolist()):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = end - start
            obs = sl(data["observations"], start, end, data["next_observations"])
            if isinstance(obs, Mapping):
                og = g.create_group("observations")
                for k, v in obs.items():
                    og.create_dataset(k, data=v)
            else:
                g.create_dataset("observations", data=obs)
            g.create_dataset("actions", data=np.asarray(data["actions"])[start:end])
            g.create_dataset("rewards", data=np.asarray(data["rewards"]).reshape(n)[start:end])
            g.create_dataset("terminations", data=np.asarray(data["terminals"], bool)[start:end])
            g.create_dataset("truncations", data=np.asarray(data["timeouts"], bool)[start:end])
            start = end

    _atomic_h5(folder / "data" / "main_data.hdf5", fill)
    meta = {"dataset_id": dataset_id, "total_episodes": int(len(ends)), "total_steps": int(n), "data_format": "hdf5"}
    meta.update(metadata or {})
    tmp = folder / ".metadata.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / "metadata.json")
    return folder
