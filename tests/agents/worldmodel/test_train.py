"""World-model-only training (agents.worldmodel): metric functions, dataset layout, the evaluation protocol's
alignment, and an end-to-end CLI run with exact resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.worldmodel import data as D
from agents.worldmodel import metrics as M
from agents.worldmodel.config import WorldModelTrainConfig
from agents.worldmodel.evaluate import evaluate, score_batch
from envs.memory import collect_episode, make, scripted_policy
from ssmrl.replay import episode_bounds
from ssmrl.world_models import WorldModel, make_config


# --------------------------------------------------------------------------------------------- metric functions
def test_frame_mse_by_hand():
    target = np.zeros((2, 2, 1), np.uint8)
    pred = target.copy()
    pred[0, 0, 0] = 255  # one of 4 values off by 1.0 -> 1/4
    pred[1, 1, 0] = 51  # 0.2 -> 0.04 / 4
    assert M.frame_mse(pred, target) == pytest.approx((1.0 + 0.04) / 4)
    assert M.frame_mse(np.full((3, 2, 2, 3), 0.5), np.zeros((3, 2, 2, 3))).tolist() == [0.25] * 3
    with pytest.raises(ValueError, match="same shape"):
        M.frame_mse(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))
    with pytest.raises(TypeError, match="uint8 or float"):
        M.frame_mse(np.zeros((2, 2, 3), np.int32), np.zeros((2, 2, 3), np.int32))


def test_mse_per_step_by_hand():
    # B=2, L=3, 1x1x1 frames: per-step errors (0.1^2, 0.2^2, 0) and (0.3^2, 0, 0.4^2)
    pred = np.array([[0.1, 0.2, 0.0], [0.3, 0.0, 0.4]]).reshape(2, 3, 1, 1, 1)
    per_step = M.mse_per_step(pred, np.zeros_like(pred))
    np.testing.assert_allclose(per_step, [(0.01 + 0.09) / 2, 0.04 / 2, 0.16 / 2])
    with pytest.raises(ValueError, match=r"\(B, L, H, W, C\)"):
        M.mse_per_step(np.zeros((3, 1, 1, 1)), np.zeros((3, 1, 1, 1)))


def test_reward_classes_and_accuracy_by_hand():
    classes = M.reward_classes(np.array([1.0, 0.0, 0.0, 1.0, 0.0]))
    assert classes.tolist() == [0.0, 1.0]
    pred = np.array([0.4, 0.6, 1.2, -0.3, 0.5])
    # nearest classes: 0, 1, 1, 0, tie -> lower (0)
    assert M.nearest_class(pred, classes).tolist() == [0, 1, 1, 0, 0]
    target = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    assert M.reward_accuracy(pred, target, classes) == pytest.approx(3 / 5)
    assert M.majority_accuracy(target, classes) == pytest.approx(4 / 5)
    # three classes (e.g. a key reward 0.5 beside 0 and 1)
    assert M.reward_accuracy(np.array([0.3, 0.7, 0.9]), np.array([0.5, 0.5, 1.0]), np.array([0.0, 0.5, 1.0])) == 1.0
    with pytest.raises(ValueError, match="strictly increasing"):
        M.nearest_class(pred, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="same shape"):
        M.reward_accuracy(pred, target[:3], classes)


def test_default_split_follows_env_design():
    assert M.default_episode_length("memory/distracting-100") == 160
    assert M.default_split("memory/distracting-100", 160) == (100, 61)
    assert M.default_split("memory/doors-keys-3", 100) == (50, 51)
    assert M.default_split("memory/four-rooms", 10, query=3) == (5, 3)
    with pytest.raises(ValueError, match="fit into an episode of 11 records"):
        M.default_split("memory/four-rooms", 10, context=8, query=4)


def test_distracting_default_episode_places_the_query_in_the_hallway():
    """The default length and split do what metrics.default_episode_length says: the context ends inside the
    hallway, away from both walls, and the far wall is in view for only a small share of the query records."""
    env_id, width = "memory/distracting-100", 100
    length = M.default_episode_length(env_id)
    context, query = M.default_split(env_id, length)
    env = make("distracting-100", image_size=14, n_distractors=0)
    half = env.unwrapped.config.view_cells // 2
    end_of_context, far_wall_in_view = [], []
    for seed in range(20):
        position = collect_episode(env, scripted_policy(env, np.random.default_rng(seed)), seed=seed,
                                   max_steps=length)["truth/position"]
        assert len(position) == context + query
        end_of_context.append(position[context - 1])
        far_wall_in_view.append(np.mean(position[context:] >= width - 1 - half))
    assert min(end_of_context) > half and max(end_of_context) < width - 1 - half
    assert 0.05 < np.mean(far_wall_in_view) < 0.3


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="worldmodel.windows"):
        WorldModelTrainConfig(windows="random")
    with pytest.raises(ValueError, match="worldmodel.batch_size"):
        WorldModelTrainConfig(batch_size=0)
    assert WorldModelTrainConfig(optimizer={"name": "adam", "lr": 1e-3}).optimizer.lr == 1e-3


# ------------------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def records():
    recs, settings = D.collect_records("memory/distracting-8", {"image_size": 16, "view_cells": 5}, 3, 9, seed=5)
    return recs, settings


def test_records_follow_the_replay_convention(records):
    recs, settings = records
    assert settings["width"] == 8
    env = make("distracting-8", image_size=16, view_cells=5)
    ep = collect_episode(env, scripted_policy(env, np.random.default_rng(5)), seed=5, max_steps=9)
    # first episode, record by record: o_t, a_t taken from o_t, r_t received on arriving at o_t
    np.testing.assert_array_equal(recs["image"][:10], ep["image"])
    assert recs["action"][:10].tolist() == ep["action"].tolist() + [0]
    assert recs["reward"][:10].tolist() == [0.0] + ep["reward"].tolist()
    assert np.flatnonzero(recs["is_first"]).tolist() == [0, 10, 20]
    assert np.flatnonzero(recs["is_last"]).tolist() == [9, 19, 29]
    starts, ends = episode_bounds(recs["is_first"])
    assert (starts.tolist(), ends.tolist()) == ([0, 10, 20], [10, 20, 30])
    win = D.episode_windows(recs, 7)
    assert win["image"].shape == (3, 7, 16, 16, 3)
    np.testing.assert_array_equal(win["reward"][1], recs["reward"][10:17])


def test_hdf5_round_trip(records, tmp_path):
    recs, _ = records
    path = D.write_hdf5(tmp_path / "mem.hdf5", recs)
    back = D.load_hdf5(path)
    for key in ("image", "reward", "is_first", "is_last", "is_terminal"):
        np.testing.assert_array_equal(back[key], recs[key], err_msg=key)
    assert back["action"].astype(np.int64).tolist() == recs["action"].tolist()
    train, held = D.split_episodes(back, 1)
    assert len(train["reward"]) == 20 and len(held["reward"]) == 10
    with pytest.raises(ValueError, match="eval_episodes"):
        D.split_episodes(back, 3)
    # the trainer's dataset from the file: the last episode held out, the default split of a 9-step episode
    from types import SimpleNamespace

    from agents.worldmodel.train import build_dataset

    cfg = SimpleNamespace(seed=0, env=SimpleNamespace(id="memory/distracting-8", options={"image_size": 16, "view_cells": 5}),
                          worldmodel=WorldModelTrainConfig(dataset=str(path), eval_episodes=1))
    ds = build_dataset(cfg)
    assert (ds.context, ds.query) == (5, 5)
    np.testing.assert_array_equal(ds.eval_windows["image"][0], recs["image"][20:30])
    np.testing.assert_array_equal(ds.train["reward"], recs["reward"][:20])
    assert (ds.spec.image_shape, ds.spec.vector_dim, ds.spec.action_dim, ds.spec.discrete) == ((16, 16, 3), None, 3, True)
    wrong = SimpleNamespace(seed=0, env=SimpleNamespace(id="memory/distracting-8", options={"image_size": 32, "view_cells": 5}),
                            worldmodel=WorldModelTrainConfig(dataset=str(path), eval_episodes=1))
    with pytest.raises(ValueError, match="'image' observations have shape"):
        build_dataset(wrong)


# -------------------------------------------------------------------------------------------- protocol alignment
def test_imagined_query_aligns_with_observed_records(records):
    """Imagining the query with the recorded actions and the posterior latents fed back (teacher forcing) must
    reproduce the parallel pass over the same records: checks the action/record alignment of the protocol."""
    recs, _ = records
    win = D.episode_windows(recs, 10)
    context, query = 4, 6
    wm = WorldModel(make_config("s4wm", "debug", action_dim=3, image_shape=(16, 16, 3)), seed=0).eval()
    obs = {"image": torch.as_tensor(win["image"])}
    act = torch.as_tensor(win["action"])
    first = torch.as_tensor(win["is_first"])
    with torch.no_grad():
        lat, feat, _ = wm.observe(obs, act, first, sample=False)
        _, _, state = wm.observe({"image": obs["image"][:, :context]}, act[:, :context], first[:, :context], sample=False)
        roll = wm.imagine(None, state, query, actions=act[:, context - 1: context + query - 1],
                          latents=lat["z"][:, context:context + query])
        torch.testing.assert_close(roll["features"][:, 1:], feat[:, context:context + query], atol=1e-5, rtol=1e-5)
        out = score_batch(wm, win, context, query)
        # the reported query rewards are those of records C .. C+Q-1, inference heads on their posterior features
        np.testing.assert_array_equal(out["reward_true"], win["reward"][:, context:])
        np.testing.assert_allclose(out["reward_inference"], wm.reward(feat[:, context:]).numpy(), atol=1e-6)
        # the features the heads read (for agents/worldmodel/probe.py): the same records in both modes
        both = score_batch(wm, win, context, query, features=True)
        np.testing.assert_allclose(both["features_inference"], feat[:, context:].numpy(), atol=1e-6)
        assert both["features_imagination"].shape == both["features_inference"].shape
        np.testing.assert_allclose(wm.reward(torch.as_tensor(both["features_imagination"])).numpy(),
                                   out["reward_imagination"], atol=1e-6)
    assert out["gen"].shape == (3, query, 16, 16, 3) and out["recon"].shape == (3, 10, 16, 16, 3)
    res = evaluate(wm, win, context, query, np.array([0.0, 1.0]), batch_size=2)
    # the aggregate equals the metric functions applied to the raw predictions
    assert res["gen_mse"] == pytest.approx(float(M.frame_mse(out["gen"], win["image"][:, context:]).mean()))
    assert res["recon_mse"] == pytest.approx(float(M.frame_mse(out["recon"], win["image"]).mean()))
    assert res["reward_acc_imagination"] == pytest.approx(
        M.reward_accuracy(out["reward_imagination"], out["reward_true"], np.array([0.0, 1.0])))
    assert len(res["gen_mse_per_step"]) == query


# --------------------------------------------------------------------------------------------------- end to end
@pytest.fixture
def cli():
    """``ssmrl.cli.main.main`` (agent=worldmodel is in agents/registry.py)."""
    from ssmrl.cli import main as cli_main

    return cli_main.main


WORDS = ["agent=worldmodel", "env=memory/distracting-8", "size=debug", "wm.preset=s4wm", "seed=3",
         "env.options.image_size=16", "env.options.view_cells=5", "worldmodel.episodes=3", "worldmodel.eval_episodes=2",
         "worldmodel.episode_length=9", "worldmodel.batch_size=2", "worldmodel.optimizer.lr=1e-3",
         "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2"]


def _final_state(run_dir):
    payload = torch.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1], weights_only=False)
    return payload["step"], payload["objects"]["wm"]


def _scores(run_dir):
    return [json.loads(l) for l in (run_dir / "scores.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stream", [0, 2], ids=["fixed-set", "stream"])
def test_cli_trains_and_resumes_exactly(cli, tmp_path, stream):
    """Fixed set and stream of fresh episodes alike: a run interrupted after 2 updates and resumed ends with the
    same weights and scores as an uninterrupted one (the stream's pool is regenerated from its counter)."""
    words = [*WORDS, f"worldmodel.stream={stream}"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli(["train", *words, "train.steps=4", "--run-dir", str(straight)]) == 0
    scores = _scores(straight)
    assert [s["step"] for s in scores] == [2, 4] and all(s["kind"] == "memory" for s in scores)
    last = scores[-1]
    assert last["context"] == 5 and last["query"] == 5 and len(last["gen_mse_per_step"]) == 5
    for key in ("recon_mse", "gen_mse", "reward_acc_inference", "reward_acc_imagination", "reward_chance"):
        assert np.isfinite(last[key]) and np.isfinite(last[f"train_{key}"]), key
    assert last["episodes"] == last["train_episodes"] == 2
    metrics = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "wm/loss" in m] == [1, 2, 3, 4]

    # 2 updates, then resume the same run directory to 4: identical weights and metrics
    assert cli(["train", *words, "train.steps=2", "--run-dir", str(split)]) == 0
    assert cli(["train", *words, "train.steps=4", "--run-dir", str(split)]) == 0
    (step_a, wm_a), (step_b, wm_b) = _final_state(straight), _final_state(split)
    assert step_a == step_b == 4
    for name in wm_a:
        torch.testing.assert_close(wm_b[name], wm_a[name], rtol=0, atol=0, msg=name)
    assert _scores(split)[-1] == last
    # a resume may not change what shapes the learner
    assert cli(["train", *words, "train.steps=4", "worldmodel.batch_size=3", "--run-dir", str(split)]) == 2
    assert cli(["train", *words, "train.steps=4", f"worldmodel.stream={2 - stream}", "--run-dir", str(split)]) == 2
