"""World-model training data beyond a fixed set (issue 18): the stream of fresh scripted-policy episodes, the
training-set vs held-out memory metrics, the true-state ceiling of reward accuracy, and the benchmark summary."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from agents.worldmodel import ceiling as C
from agents.worldmodel import data as D
from agents.worldmodel.config import WorldModelTrainConfig
from agents.worldmodel.train import StreamSampler, WindowSampler, build_dataset, evaluate_sets, make_sampler
from ssmrl.runs.config import from_dict, resolve_args
from ssmrl.cli.config import Config

from tests import ROOT
from tests.agents.worldmodel import StandInModel

_spec = importlib.util.spec_from_file_location(
    "memory_benchmark", ROOT / "scripts" / "memory_benchmark.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ENV, OPTIONS, LENGTH = "memory/distracting-8", {"image_size": 16, "view_cells": 5}, 9
WORDS = ["agent=worldmodel", f"env={ENV}", "seed=3", "env.options.image_size=16", "env.options.view_cells=5",
         "worldmodel.episodes=4", "worldmodel.eval_episodes=3", f"worldmodel.episode_length={LENGTH}",
         "worldmodel.batch_size=3"]


def _cfg(*extra: str) -> Config:
    merged, _ = resolve_args([*WORDS, *extra])
    return from_dict(Config, merged)


def _env():
    return D.collection_env(ENV, OPTIONS, LENGTH)


# ------------------------------------------------------------------------------------------------- the stream
def test_stream_episodes_depend_on_seed_and_index_only():
    env = _env()
    a, _ = D.stream_episodes(env, 11, range(4), LENGTH)
    b, _ = D.stream_episodes(env, 11, [2, 0], LENGTH)  # another order, after other episodes: same episodes
    assert a["image"].shape == (4, LENGTH + 1, 16, 16, 3)
    for key in a:
        np.testing.assert_array_equal(b[key], a[key][[2, 0]], err_msg=key)
    assert a["is_first"][:, 0].all() and not a["is_first"][:, 1:].any()
    other, _ = D.stream_episodes(env, 12, range(4), LENGTH)
    assert not any(np.array_equal(other["image"][i], a["image"][i]) for i in range(4))
    # episodes of one stream differ from each other (own reset seeds: distractors)
    assert len({a["image"][i].tobytes() for i in range(4)}) == 4


def test_stream_is_disjoint_from_the_held_out_set():
    """The run's stream and its held-out set come from different seed streams: no held-out episode (frames or
    path) appears among the training episodes, and the held-out set does not depend on the stream setting."""
    cfg_stream, cfg_fixed = _cfg("worldmodel.stream=2"), _cfg("worldmodel.stream=0")
    data = build_dataset(cfg_stream)
    held = data.eval_windows
    np.testing.assert_array_equal(build_dataset(cfg_fixed).eval_windows["image"], held["image"])
    sampler = make_sampler(cfg_stream, data)
    seen = [sampler.train_windows(4, LENGTH + 1)]
    for _ in range(6):  # 12 more stream episodes through the pool
        sampler.sample(3, LENGTH + 1)
        seen.append(sampler.train_windows(4, LENGTH + 1))
    train_frames = {w.tobytes() for s in seen for w in s["image"]}
    train_first = {w[0].tobytes() for s in seen for w in s["image"]}
    assert len(train_frames) == 4 + 12
    assert not train_frames & {w.tobytes() for w in held["image"]}
    assert not train_first & {w[0].tobytes() for w in held["image"]}


def test_stream_sampler_refreshes_the_pool_and_resumes_exactly():
    cfg = _cfg("worldmodel.stream=2", "worldmodel.windows=uniform")
    data = build_dataset(cfg)
    straight = make_sampler(cfg, data)
    assert isinstance(straight, StreamSampler)
    batches = [straight.sample(3, 6) for _ in range(5)]
    assert straight.generated == 4 + 5 * 2
    # the pool holds exactly the last 4 stream episodes, in slot k % 4
    expect, _ = D.stream_episodes(_env(), straight.stream_seed, range(10, 14), LENGTH)
    np.testing.assert_array_equal(straight.pool["image"][[2, 3, 0, 1]], expect["image"])
    # 2 batches, checkpoint, a new sampler (as on resume: rebuilt from the config), 3 more batches
    first = make_sampler(cfg, build_dataset(cfg))
    for i in range(2):
        got = first.sample(3, 6)
        for key in batches[i]:
            np.testing.assert_array_equal(got[key], batches[i][key], err_msg=f"batch {i} {key}")
    state = first.state_dict()
    resumed = make_sampler(cfg, build_dataset(cfg))
    resumed.load_state_dict(state)
    for i in range(2, 5):
        got = resumed.sample(3, 6)
        for key in batches[i]:
            np.testing.assert_array_equal(got[key], batches[i][key], err_msg=f"batch {i} {key}")
    # uniform windows start anywhere inside an episode and never cross one
    assert any(not b["is_first"][:, 0].all() for b in batches)
    assert not any(b["is_first"][:, 1:].any() for b in batches)


def test_stream_config_is_checked():
    with pytest.raises(ValueError, match="must not exceed the pool"):
        WorldModelTrainConfig(episodes=4, stream=5)
    with pytest.raises(ValueError, match="worldmodel.stream needs"):
        WorldModelTrainConfig(stream=2, dataset="x.hdf5")
    with pytest.raises(ValueError, match="worldmodel.stream"):
        WorldModelTrainConfig(stream=-1)


# --------------------------------------------------------------------------------- train vs held-out metrics
class MemorisingModel(StandInModel):
    """A stand-in world model that memorised the reward sequences of some episodes (keyed by their first frame)
    and predicts 0 for any other episode, in inference and in imagination alike."""

    def __init__(self, windows: dict[str, np.ndarray]):
        self.keys = {w[0].tobytes(): i for i, w in enumerate(windows["image"])}
        assert len(self.keys) == len(windows["image"])
        self.rewards = torch.as_tensor(np.asarray(windows["reward"], np.float32))

    def observe(self, obs, action, first, sample=False, generator=None):
        b, t = action.shape[:2]
        ids = torch.tensor([self.keys.get(f[0].numpy().tobytes(), -1) for f in obs["image"]], dtype=torch.float32)
        feat = torch.stack([ids[:, None].expand(b, t), torch.arange(t, dtype=torch.float32).expand(b, t)], -1)
        return None, feat, feat[:, -1]

    def imagine(self, policy, state, horizon, actions=None, sample=False, generator=None):
        steps = torch.arange(horizon + 1, dtype=torch.float32)
        feat = torch.stack([state[:, :1].expand(-1, horizon + 1), state[:, 1:] + steps], -1)
        return {"features": feat}

    def reward(self, feat):
        ids, t = feat[..., 0].long(), feat[..., 1].long()
        known = self.rewards[ids.clamp(min=0), t.clamp(max=self.rewards.shape[1] - 1)]
        return torch.where(ids >= 0, known, torch.zeros_like(known))


@pytest.mark.parametrize("stream", [0, 2])
def test_train_and_held_out_metrics_use_their_own_sets(stream):
    cfg = _cfg(f"worldmodel.stream={stream}", "worldmodel.context=4", "worldmodel.query=6")
    data = build_dataset(cfg)
    sampler = make_sampler(cfg, data)
    assert isinstance(sampler, StreamSampler if stream else WindowSampler)
    for _ in range(3):
        sampler.sample(3, 10)
    # the training episodes scored: fixed set -> its first ones; stream -> the pool's oldest (trained on)
    if stream:
        expect, _ = D.stream_episodes(_env(), sampler.stream_seed, range(10 - 4, 10 - 1), LENGTH)
        expect = {k: v[:, :10] for k, v in expect.items()}
    else:
        expect = D.episode_windows(data.train, 10, limit=3)
    windows = sampler.train_windows(3, 10)
    np.testing.assert_array_equal(windows["image"], expect["image"])

    result = evaluate_sets(cfg, MemorisingModel(windows), data, sampler, step=1)
    held_true = data.eval_windows["reward"][:, 4:10]
    train_true = windows["reward"][:, 4:10]
    assert result["train_reward_acc_inference"] == result["train_reward_acc_imagination"] == 1.0
    assert result["reward_acc_inference"] == result["reward_acc_imagination"] == pytest.approx((held_true == 0).mean())
    assert result["reward_acc_imagination"] < 1.0
    assert result["reward_chance"] == pytest.approx(max((held_true == 0).mean(), (held_true == 1).mean()))
    assert result["train_reward_chance"] == pytest.approx(max((train_true == 0).mean(), (train_true == 1).mean()))
    assert result["episodes"] == result["train_episodes"] == 3
    # and the other way round: a model that memorised the held-out set
    swapped = evaluate_sets(cfg, MemorisingModel(data.eval_windows), data, sampler, step=1)
    assert swapped["reward_acc_imagination"] == 1.0
    assert swapped["train_reward_acc_imagination"] == pytest.approx((train_true == 0).mean())


# ----------------------------------------------------------------------------------------------- the ceiling
def test_ceiling_learns_a_reward_that_is_a_function_of_position():
    rng = np.random.default_rng(0)

    def records(n, reward_fn):
        pos = rng.integers(0, 100, size=n)
        first = np.zeros(n, bool)
        first[::50] = True
        return {"truth/position": pos, "reward": reward_fn(pos).astype(np.float32), "is_first": first}

    square_wave = lambda p: (p // 10) % 2  # noqa: E731 - the distracting hallway's rule
    train, test = records(3000, square_wave), records(1000, square_wave)
    out = C.ceiling(train, {"heldout": test}, np.array([0.0, 1.0]), ["position"])
    assert out["heldout_acc"] >= 0.99 and out["heldout_majority"] < 0.6
    assert out["fit_records"] == 3000 - 60 and out["heldout_records"] == 1000
    # a reward that ignores the position: the ceiling stays near the majority rate
    coin = lambda p: rng.random(len(p)) < 0.5  # noqa: E731
    out = C.ceiling(records(3000, coin), {"heldout": records(1000, coin)}, np.array([0.0, 1.0]), ["position"])
    assert out["heldout_acc"] < 0.6
    with pytest.raises(KeyError, match="truth key 'segment'"):
        C.ceiling(train, {"heldout": test}, np.array([0.0, 1.0]), ["segment"])


def test_ceiling_on_the_hallway_is_perfect():
    """On the real env the position determines the reward: the true-state model scores 1.0 on held-out query
    records, far above the majority rate, through the script's own entry point."""
    out = bench.ceiling([*WORDS, "worldmodel.stream=0", "worldmodel.episodes=8", "worldmodel.episode_length=12"])
    assert out["keys"] == ["position"] and out["benchmark"] == "memory_ceiling"
    assert out["heldout_acc"] == 1.0 and out["train_acc"] == 1.0
    assert out["heldout_majority"] < 0.9
    assert out["heldout_records"] == out["train_records"] == 3 * out["query"]
    assert out["fit_records"] == 8 * 12
    with pytest.raises(ValueError, match="no default truth keys"):
        C.default_keys("memory/doors-keys-3")


def test_ceiling_of_the_cued_hallway_needs_the_cue():
    """With the cue option the reward is an exclusive or of the segment's parity and the cue: the default keys
    become the pair, which the true-state model reads exactly, while the position alone is right about half
    the time (and the cue alone too)."""
    words = [*WORDS, "env.options.cue=true", "worldmodel.stream=0", "worldmodel.episodes=16",
             "worldmodel.episode_length=12"]
    out = bench.ceiling(words)
    assert out["keys"] == ["position+cue"] and out["heldout_acc"] == 1.0 and out["train_acc"] == 1.0
    for alone in ("position", "cue"):
        assert bench.ceiling(words, [alone])["heldout_acc"] < 0.75
    assert C.default_keys(ENV, {"cue": False}) == ("position",)


# -------------------------------------------------------------------------------------------- the summary
def test_summary_puts_train_and_held_out_side_by_side(tmp_path):
    run = tmp_path / "s4wm"
    run.mkdir()
    rows = [{"kind": "memory", "step": s, "preset": "s4wm", "env": ENV, "reward_acc_inference": 0.5 + s / 100,
             "reward_acc_imagination": 0.4, "reward_chance": 0.65, "recon_mse": 0.01, "gen_mse": 0.02,
             "train_reward_acc_inference": 0.9, "train_reward_acc_imagination": 0.8, "train_reward_chance": 0.6,
             "train_recon_mse": 0.005, "train_gen_mse": 0.01} for s in (1, 2)]
    (run / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "run.json").write_text(json.dumps({"memory_protocol": {"stream": 8, "episodes": 64}}))
    out = bench.summarize(tmp_path)["runs"]["s4wm"]
    assert out["train_vs_heldout"]["reward_acc_inference"] == {"train": 0.9, "heldout": 0.52}
    assert out["train_vs_heldout"]["majority"] == {"train": 0.6, "heldout": 0.65}
    assert out["data"] == {"stream": 8, "episodes": 64}
    assert out["curve"][0]["train_reward_acc_imagination"] == 0.8 and out["curve"][0]["reward_chance"] == 0.65
    png = tmp_path / "img" / "curves.png"
    assert bench.main(["--summarize", "--out-dir", str(tmp_path), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert bench.main(["--summarize", "--out-dir", str(tmp_path / "img"), "--plot", str(png)]) == 2  # nothing to plot


def test_benchmark_runs_get_the_bench_model_with_set_replacing_single_keys():
    """Every run gets BENCH_WM (small model, reward weight); a --set word replaces that one key, the rest stays."""
    def overrides(sets):
        words = bench._words("memory/distracting-100", "s4wm", 10, 0, "small", sets, 5)
        return from_dict(Config, resolve_args(words)[0]).wm.overrides

    default = overrides([])
    assert default["loss"]["reward"] == bench.BENCH_WM["loss.reward"] and default["d_model"] == bench.BENCH_WM["d_model"]
    changed = overrides(["wm.overrides.loss.reward=1", "worldmodel.batch_size=8"])
    assert changed["loss"]["reward"] == 1
    assert {k: v for k, v in changed.items() if k != "loss"} == {k: v for k, v in default.items() if k != "loss"}
