"""Replay persistence: append-only chunks, committed index, exact resume, discarding uncommitted steps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssmrl.replay import ReplayBuffer, ReplayConfig, ReplayStorageError


def step(stream: int, t: int, rng: np.random.Generator) -> dict:
    return {
        "image": rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8),
        "vector": np.array([stream, t, rng.normal()], dtype=np.float32),
        "action": np.int64(rng.integers(4)),
        "reward": np.float32(rng.normal()),
        "is_first": t % 9 == 0,
        "is_last": t % 9 == 8,
        "is_terminal": t % 18 == 8,
    }


def write(buffer: ReplayBuffer, start: int, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for t in range(start, start + steps):
        for s in range(buffer.num_streams):
            buffer.add(step(s, t, rng), stream=s)


def config(tmp_path, **kw) -> ReplayConfig:
    base = dict(capacity=2 * 40, num_streams=2, chunk_size=8, sampler="dfs", seed=4, dfs_imagination_divisor=64.0, directory=str(tmp_path), verbose=False)
    base.update(kw)
    return ReplayConfig(**base)


def same_content(a: ReplayBuffer, b: ReplayBuffer) -> None:
    np.testing.assert_array_equal(a.totals, b.totals)
    for s in range(a.num_streams):
        x, y = a.stream_arrays(s), b.stream_arrays(s)
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def same_samples(a: ReplayBuffer, b: ReplayBuffer, rounds: int = 5) -> None:
    for r in range(rounds):
        purpose = "imagination" if r % 2 else "train"
        x = a.sample(6, 5, purpose, with_index=True)
        y = b.sample(6, 5, purpose, with_index=True)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("sampler", ["dfs", "uniform", "recency"])
def test_save_resume_gives_identical_content_and_samples(tmp_path, sampler):
    buf = ReplayBuffer(config(tmp_path, sampler=sampler))
    write(buf, 0, 30, seed=0)  # 30 per stream: 3 full chunks + a tail of 6
    for _ in range(4):
        buf.sample(5, 5)
        buf.sample(7, 3, "imagination")
    buf.save_index()
    loaded = ReplayBuffer.load(tmp_path)
    assert loaded.config.sampler == sampler and loaded.config.capacity == 80
    same_content(buf, loaded)
    same_samples(buf, loaded)
    # both continue identically after more writes (the loaded buffer writes its own chunks)
    write(buf, 30, 25, seed=1)
    write(loaded, 30, 25, seed=1)
    same_content(buf, loaded)
    same_samples(buf, loaded)


def test_steps_after_the_commit_are_discarded(tmp_path):
    buf = ReplayBuffer(config(tmp_path))
    write(buf, 0, 21, seed=0)
    buf.sample(6, 4)
    buf.save_index()
    snapshot = {s: buf.stream_arrays(s) for s in range(2)}
    sampler_state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in buf.sampler.state_dict().items()}
    # more steps: crosses chunk boundaries (chunk files for 24, 32 written) and wraps the ring, no new commit
    write(buf, 21, 40, seed=1)
    buf.sample(6, 4)
    loaded = ReplayBuffer.load(tmp_path)
    np.testing.assert_array_equal(loaded.totals, [21, 21])
    for s in range(2):
        got = loaded.stream_arrays(s)
        for k, v in snapshot[s].items():
            np.testing.assert_array_equal(got[k], v, err_msg=k)
    np.testing.assert_array_equal(loaded.sampler.n, sampler_state["n"])
    assert loaded.sampler.rng.bit_generator.state == sampler_state["rng"]


def test_checkpoint_state_dict_round_trip_and_fifo_wrap(tmp_path):
    """The path a checkpoint takes: state_dict() -> torch.save -> torch.load -> ReplayBuffer.load(dir, state)."""
    buf = ReplayBuffer(config(tmp_path, capacity=2 * 20, chunk_size=6))  # 20 per stream, not a multiple of 6
    write(buf, 0, 47, seed=2)  # wraps the ring twice
    buf.sample(4, 5)
    path = tmp_path / "ckpt.pt"
    torch.save(buf.state_dict(), path)
    state = torch.load(path, weights_only=False)
    assert [st["total"] for st in state["index"]["streams"]] == [47, 47]
    loaded = ReplayBuffer.load(tmp_path, state)
    same_content(buf, loaded)
    same_samples(buf, loaded)
    # files of evicted chunks were garbage-collected: every stored file belongs to a recent commit
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("stream_*/*.npz")}
    assert names <= set(f["file"] for st in state["index"]["streams"] for f in st["files"]) | set(state["index"]["previous_files"])
    assert not any(n.endswith("chunk_000000000000.npz") for n in names)


def test_older_commit_still_loads_after_a_newer_one(tmp_path):
    buf = ReplayBuffer(config(tmp_path))
    write(buf, 0, 13, seed=0)
    old = buf.state_dict()
    old_content = {s: buf.stream_arrays(s) for s in range(2)}
    write(buf, 13, 9, seed=1)
    buf.state_dict()  # newer commit; keep_commits=2 keeps the older commit's files
    loaded = ReplayBuffer.load(tmp_path, old)
    for s in range(2):
        for k, v in old_content[s].items():
            np.testing.assert_array_equal(loaded.stream_arrays(s)[k], v)


def test_missing_and_corrupt_chunks_name_the_file(tmp_path):
    buf = ReplayBuffer(config(tmp_path))
    write(buf, 0, 20, seed=0)
    buf.save_index()
    index = json.loads((tmp_path / "index.json").read_text())
    victim = tmp_path / index["streams"][1]["files"][1]["file"]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ReplayStorageError, match=victim.name):
        ReplayBuffer.load(tmp_path)
    victim.unlink()
    with pytest.raises(ReplayStorageError, match=f"{victim.name} is missing"):
        ReplayBuffer.load(tmp_path)
    (tmp_path / "index.json").unlink()
    with pytest.raises(ReplayStorageError, match="index.json"):
        ReplayBuffer.load(tmp_path)


def test_memory_only_state_restores_sampler():
    cfg = ReplayConfig(capacity=50, sampler="dfs", seed=2, verbose=False, dfs_imagination_divisor=64.0)
    a, b = ReplayBuffer(cfg), ReplayBuffer(cfg)
    rng = np.random.default_rng(0)
    for t in range(30):
        s = step(0, t, rng)
        a.add(s)
        b.add(s)
    a.sample(4, 5)
    b.load_state_dict(a.state_dict())
    same_samples(a, b)
