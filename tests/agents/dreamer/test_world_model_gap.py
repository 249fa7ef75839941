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
        for part in ("fresh", "replay", "recent"):
            assert np.isfinite(m[f"wm_eval/{part}/loss"]) and m[f"wm_eval/{part}/reward_loss"] >= 0
            assert m[f"wm_eval/{part}/windows"] == 16  # size=debug: windows of 16 steps; 40-step episodes
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


def test_newest_restricts_windows_to_the_last_steps_of_each_stream():
    buffer = _buffer([30, 20])
    windows = spread_windows(buffer, 4, 5, within_episode=False, newest=10)  # windows ending in the last 10 steps
    first = windows["reward"][:, 0]
    assert first.min() >= 0 and set(first // 1000) == {0, 1}
    assert all(f % 1000 + 5 > n - 10 for f, n in zip(first, [30 if f < 1000 else 20 for f in first]))
    assert len(spread_windows(buffer, 100, 5, within_episode=False, newest=10)["reward"]) == 2 * 10  # ends 10 apart


def test_evaluation_records_exactly_the_steps_it_played():
    """play_episodes(replay=...) stores each episode's steps plus its final observation, nothing else (one env)."""
    from ssmrl.evaluation import play_episodes
    from ssmrl.replay import ReplayConfig

    buffer = ReplayBuffer(ReplayConfig(capacity=100, num_streams=1, verbose=False))
    policy = lambda obs, first, state: (np.zeros(len(first), np.int64), state)  # noqa: E731
    results = play_episodes("memory/four-rooms", policy, 2, num_envs=1, seed=0,
                            options={"max_steps": 10, "image_size": 16}, replay=buffer)
    data = buffer.stream_arrays(0)
    assert len(data["reward"]) == sum(r["length"] + 1 for r in results) == 22
    assert data["is_last"].sum() == 2 and data["is_first"].sum() == 2 and data["is_first"][0]


def test_world_model_losses_restore_the_module_mode_and_change_no_weight():
    import torch

    from agents.dreamer.agent import DreamerAgent
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
    from envs.spec import EnvSpec, ObservationSpec

    spec = EnvSpec((ObservationSpec("vector", (3,), "float32"),), action_dim=2, discrete=True)
    agent = DreamerAgent(WorldModelSection("drama", "debug"), ActorCriticConfig(actor_units=16, critic_units=16),
                         DreamerConfig(batch_size=2, seq_len=4), spec, torch.device("cpu"), seed=0)
    batch = {"vector": torch.randn(2, 4, 3), "action": torch.zeros(2, 4, dtype=torch.int64), "reward": torch.zeros(2, 4),
             "is_first": torch.zeros(2, 4, dtype=torch.bool), "is_terminal": torch.zeros(2, 4, dtype=torch.bool)}
    before = {k: v.clone() for k, v in agent.wm.state_dict().items()}
    for training in (True, False):
        agent.wm.train(training)
        metrics = agent.world_model_losses(batch, torch.Generator().manual_seed(0))
        assert agent.wm.training is training and np.isfinite(metrics["loss"])
    assert all(torch.equal(before[k], v) for k, v in agent.wm.state_dict().items())


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
    for name, buffer, newest in (("fresh", fresh, None), ("replay", replay, None), ("recent", replay, 35)):
        want = spread_windows(buffer, 7, 5, within_episode=False, newest=newest)["reward"][:, 0].mean()
        assert np.isclose(metrics[f"wm_eval/{name}/r"], want) and metrics[f"wm_eval/{name}/windows"] == 7
    assert not np.isclose(metrics["wm_eval/replay/r"], np.mean([np.mean(c) for c in np.array_split(
        spread_windows(replay, 7, 5, within_episode=False)["reward"][:, 0], [3, 6])]))
