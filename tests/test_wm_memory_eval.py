"""World-model-only evaluation on the memory suite: batch layout and the S4WM-style metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ssmrl.world_models import WorldModel, make_config, twohot
from ssmrl.world_models.evaluation import episodes_to_batch, memory_metrics, train_world_model

memory = pytest.importorskip("envs.memory")


@pytest.fixture(scope="module")
def episodes():
    env = memory.make("distracting-10", image_size=16, n_distractors=1, max_steps=14)
    rng = np.random.default_rng(0)
    return [memory.collect_episode(env, memory.scripted_policy(env, rng), seed=s) for s in range(3)]


def test_episodes_to_batch_layout(episodes):
    batch = episodes_to_batch(episodes)
    t = len(episodes[0]["action"])
    assert batch["image"].shape == (3, t + 1, 16, 16, 3) and batch["image"].dtype == torch.uint8
    for i, ep in enumerate(episodes):
        assert torch.equal(batch["image"][i], torch.from_numpy(ep["image"]))
        assert torch.equal(batch["action"][i, :t], torch.from_numpy(ep["action"]))  # action taken at x_t
        assert batch["reward"][i, 0] == 0 and torch.equal(batch["reward"][i, 1:], torch.from_numpy(ep["reward"]))
        assert batch["is_first"][i].tolist() == [True] + [False] * t
    assert episodes_to_batch(episodes, length=5)["action"].shape == (3, 5)
    with pytest.raises(ValueError, match="exceeds the shortest"):
        episodes_to_batch(episodes, length=t + 2)
    with pytest.raises(KeyError, match="'reward'"):
        episodes_to_batch([{"image": episodes[0]["image"], "action": episodes[0]["action"]}])


def test_memory_metrics_against_direct_computation(episodes):
    batch = episodes_to_batch(episodes)
    model = WorldModel(make_config("s4wm", "debug", action_dim=3), seed=0)
    # a reward head that always predicts 1: accuracy must equal the fraction of reward-1 query steps
    with torch.no_grad():
        out = model.reward_head.net.out
        out.weight.zero_()
        out.bias.copy_(torch.log(twohot(torch.tensor(np.log(2.0)), model.reward_head.bins).clamp_min(1e-30)))
    ctx = 6
    m = memory_metrics(model, batch, ctx)
    query_reward = batch["reward"][:, ctx:]
    frac_one = float((query_reward == 1).float().mean())
    assert m["reward_acc_infer"] == pytest.approx(frac_one) and m["reward_acc_imagine"] == pytest.approx(frac_one)
    with torch.no_grad():
        _, feat, _ = model.observe({"image": batch["image"]}, batch["action"], batch["is_first"], sample=False)
        recon = model.decode(feat)["image"].float() / 255
    assert m["recon_mse"] == pytest.approx(float(((recon - batch["image"].float() / 255) ** 2).mean()), rel=1e-5)
    assert 0 < m["gen_mse"] < 1 and m["gen_mse_frame"] == pytest.approx(m["gen_mse"] * 16 * 16 * 3, rel=1e-4)
    with pytest.raises(ValueError, match="context must be"):
        memory_metrics(model, batch, 0)


def test_train_world_model_reduces_loss(episodes):
    batch = episodes_to_batch(episodes)
    model = WorldModel(make_config("drama", "debug", action_dim=3), seed=0)
    logs = []
    train_world_model(model, lambda: batch, 40, lr=3e-3, generator=torch.Generator().manual_seed(0),
                      log_every=1, log=lambda step, m: logs.append(m["loss"]))
    assert len(logs) == 40 and np.mean(logs[-5:]) < 0.5 * np.mean(logs[:5])

