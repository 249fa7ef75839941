"""The world model's losses on fresh evaluation episodes and on its replay, logged at every evaluation."""
import json
import types

import numpy as np

from agents.dreamer.train import spread_windows, world_model_gap
from ssmrl.cli.main import main
from ssmrl.replay import ReplayBuffer
from ssmrl.runs.checkpoint import Checkpointer

ENV = ["env=memory/four-rooms", "env.options.max_steps=40", "env.options.image_size=16"]


def _run(run_dir, *extra):
    assert main(["train", "agent=drama", *ENV, "size=debug", "--run-dir", str(run_dir), "train.steps=80",
                 "train.eval_every=40", "train.checkpoint_every=40", "dreamer.warmup_steps=40", *extra]) == 0
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_losses_on_fresh_and_replay_windows_are_logged_and_leave_training_unchanged(tmp_path):
    with_gap, without = _run(tmp_path / "a"), _run(tmp_path / "b", "train.eval_wm_windows=0")
    evals = [m for m in with_gap if "eval/mean" in m]
    assert [m["step"] for m in evals] == [40, 80]
    for m in evals:
        for part in ("fresh", "replay"):
            assert np.isfinite(m[f"wm_eval/{part}/loss"]) and m[f"wm_eval/{part}/reward_loss"] >= 0
    assert not any(k.startswith("wm_eval/") for m in without for k in m)
    # The extra passes draw from their own generator and change no weight, counter or learner stream.
    strip = [{k: v for k, v in m.items() if not k.startswith(("wm_eval/", "perf/env_steps_per_s"))} for m in with_gap]
    assert strip == [{k: v for k, v in m.items() if k != "perf/env_steps_per_s"} for m in without]
    a, b = (Checkpointer(tmp_path / d / "checkpoints").read()["objects"]["agent"]["wm"] for d in "ab")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def _buffer(lengths):
    """A replay with one stream per entry of ``lengths``; the reward of step t of stream s is 1000 s + t."""
    buffer = ReplayBuffer(capacity=100 * len(lengths), num_streams=len(lengths), verbose=False)
    for s, n in enumerate(lengths):
        for t in range(n):
            buffer.add({"vector": np.zeros(2, np.float32), "action": np.int32(0), "reward": np.float32(1000 * s + t),
                        "is_first": t == 0, "is_last": False, "is_terminal": False}, stream=s)
    return buffer


def test_spread_windows_cover_the_oldest_to_the_newest_start_evenly():
    buffer = _buffer([30, 20])  # starts of 5-step windows: 0..25 in stream 0, 0..15 in stream 1 (42 in all)
    windows = spread_windows(buffer, 7, 5, within_episode=False)
    first = windows["reward"][:, 0]
    assert windows["reward"].shape == (7, 5)
    assert np.array_equal(windows["reward"] - first[:, None], np.tile(np.arange(5), (7, 1)))  # contiguous
    assert first[0] == 0 and first[-1] == 1000 + 15  # the first and the last valid start
    order = [int(f) // 1000 * 26 + int(f) % 1000 for f in first]  # position among the 42 candidates
    assert np.all(np.diff(order) >= 6) and np.all(np.diff(order) <= 8)  # 41 / 6 apart, rounded
    assert len(spread_windows(buffer, 100, 5, within_episode=False)["reward"]) == 42  # never a start twice
    assert spread_windows(buffer, 4, 31, within_episode=False) is None


def test_gap_is_the_window_weighted_mean_over_batches():
    """Windows go through the model in training-batch chunks (7 = 3 + 3 + 1 here); each metric is the mean over
    windows, not over chunks. A stand-in model reports each chunk's mean first reward."""
    fresh, replay = _buffer([30]), _buffer([60, 40])
    agent = types.SimpleNamespace(cfg=types.SimpleNamespace(seq_len=5, batch_size=3), device="cpu",
                                  to_batch=lambda arrays: arrays,
                                  world_model_losses=lambda batch, generator: {"r": float(batch["reward"][:, 0].mean())})
    config = types.SimpleNamespace(seed=0, train=types.SimpleNamespace(eval_wm_windows=7),
                                   replay=types.SimpleNamespace(within_episode=False))
    metrics = world_model_gap(types.SimpleNamespace(config=config), agent, fresh, replay, step=10)
    for name, buffer in (("fresh", fresh), ("replay", replay)):
        want = spread_windows(buffer, 7, 5, within_episode=False)["reward"][:, 0].mean()
        assert np.isclose(metrics[f"wm_eval/{name}/r"], want)
    assert not np.isclose(metrics["wm_eval/replay/r"], np.mean([np.mean(c) for c in np.array_split(
        spread_windows(replay, 7, 5, within_episode=False)["reward"][:, 0], [3, 6])]))
