"""Checkpoints: bit-identical round trip, RNG continuation, atomic writes, corrupt files (ssmrl.runs.checkpoint)."""
import json
import random

import numpy as np
import pytest
import torch

from ssmrl.runs.checkpoint import Checkpointer, CheckpointError, atomic_write
from ssmrl.runs.seeding import GeneratorCheckpoint, Seeds, component_seed, seed_everything


def _learner(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt


def _train_step(model, opt, gen):
    x = torch.randn(16, 4, generator=gen)
    loss = model(x).pow(2).mean() + 0.01 * torch.randn(()).abs()  # global torch RNG used too
    opt.zero_grad()
    loss.backward()
    opt.step()


def _draws(np_rng, gen):
    return (random.random(), np.random.rand(), torch.rand(()).item(), np_rng.random(), torch.rand((), generator=gen).item())


def test_round_trip_is_bit_identical_and_rng_continues(tmp_path):
    seed_everything(1)
    model, opt = _learner()
    gen = Seeds(1).torch("data")
    np_rng = Seeds(1).numpy("replay")
    counters = {"step": 0}
    ckpt = Checkpointer(tmp_path)
    ckpt.register(model=model, opt=opt, counters=counters, gen=GeneratorCheckpoint(gen), np_rng=GeneratorCheckpoint(np_rng))
    for _ in range(3):
        _train_step(model, opt, gen)
        counters["step"] += 1
    ckpt.save(counters["step"])
    # Uninterrupted continuation.
    _train_step(model, opt, gen)
    expected_params = [p.detach().clone() for p in model.parameters()]
    expected_draws = _draws(np_rng, gen)

    # A fresh process-like learner restored from the checkpoint continues identically.
    seed_everything(99)
    model2, opt2 = _learner(seed=5)
    gen2 = torch.Generator().manual_seed(123)
    np_rng2 = np.random.default_rng(7)
    counters2 = {"step": -1}
    ckpt2 = Checkpointer(tmp_path)
    ckpt2.register(model=model2, opt=opt2, counters=counters2, gen=GeneratorCheckpoint(gen2), np_rng=GeneratorCheckpoint(np_rng2))
    assert ckpt2.load() == 3 and counters2 == {"step": 3}
    _train_step(model2, opt2, gen2)
    for a, b in zip(expected_params, model2.parameters()):
        assert torch.equal(a, b)
    assert _draws(np_rng2, gen2) == expected_draws


def test_keeps_previous_checkpoints_and_prunes_old(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.register(c={"v": 0})
    for step in (10, 20, 30):
        ckpt.save(step)
    assert [p.name for p in ckpt.all()] == ["ckpt-000000020.pt", "ckpt-000000030.pt"]
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 30


def test_atomic_write_survives_crash_mid_write(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda f: f.write(b"old contents"))

    def crash(f):
        f.write(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temp file left behind


def test_crash_during_checkpoint_save_keeps_the_previous_one(tmp_path, monkeypatch):
    ckpt = Checkpointer(tmp_path)
    counters = {"step": 1}
    ckpt.register(c=counters)
    ckpt.save(1)

    def failing_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        ckpt.save(2)
    monkeypatch.undo()
    counters["step"] = 0
    assert ckpt.load() == 1 and counters["step"] == 1


def test_truncated_checkpoint_names_the_file_and_keeps_previous(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.register(model=torch.nn.Linear(3, 3))
    ckpt.save(1)
    latest = ckpt.save(2)
    latest.write_bytes(latest.read_bytes()[:100])  # truncated after the fact
    with pytest.raises(CheckpointError, match=r"ckpt-000000002\.pt.*corrupt.*ckpt-000000001\.pt"):
        ckpt.load()
    assert ckpt.load(tmp_path / "ckpt-000000001.pt") == 1


def test_garbage_file_and_missing_objects_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    ckpt = Checkpointer(tmp_path)
    ckpt.register(model=torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="bad.pt"):
        ckpt.load(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load()
    ckpt.save(5)
    other = Checkpointer(tmp_path)
    other.register(model=torch.nn.Linear(2, 2), extra={"x": 1})
    with pytest.raises(CheckpointError, match="extra"):
        other.load()
    wrong = Checkpointer(tmp_path)
    wrong.register(model=torch.nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match="'model' does not fit"):
        wrong.load()


def test_component_seeds_are_stable_and_distinct():
    assert component_seed(0, "replay") == component_seed(0, "replay")
    seeds = {component_seed(s, n) for s in range(3) for n in ("replay", "env", "policy")}
    assert len(seeds) == 9
    a = Seeds(4).numpy("x").random(3)
    assert np.array_equal(a, Seeds(4).numpy("x").random(3))
    assert not np.array_equal(a, Seeds(5).numpy("x").random(3))


def test_wall_clock_adds_up_over_resumes_and_loses_what_no_checkpoint_kept(tmp_path, monkeypatch):
    """wall_s = earlier processes' seconds up to the checkpoint loaded + this process's seconds since it started."""
    import ssmrl.runs.checkpoint as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    first = Checkpointer(tmp_path)
    first.register(c={"v": 0})
    now[0] += 30
    first.save(1)
    now[0] += 50  # worked on after its last checkpoint, then killed: lost with the work
    second = Checkpointer(tmp_path)
    second.register(c={"v": 0})
    assert second.latest_wall_s() == 30.0 and second.load() == 1
    now[0] += 12
    second.save(2)
    assert second.latest_wall_s() == 42.0 and second.read()["wall_s"] == 42.0
    assert json.loads((tmp_path / "latest.json").read_text())["wall_s"] == 42.0
    assert Checkpointer(tmp_path / "empty").latest_wall_s() is None
    # a checkpoint written before wall_s existed counts as 0
    payload = second.read()
    del payload["wall_s"]
    payload["step"] = 3
    torch.save(payload, tmp_path / "ckpt-000000003.pt")
    third = Checkpointer(tmp_path)
    third.register(c={"v": 0})
    third.recover(tmp_path / "ckpt-000000003.pt")
    assert third.latest_wall_s() == 0.0 and third.load() == 3
    now[0] += 5
    assert third.wall_s() == 5.0
