"""Imagination starts from the world-model batch (``imag_starts=posterior``) and the agent's update methods.

The posterior starts are checked against an independent route: observing the window's prefix up to the start
step with :meth:`WorldModel.observe` (a parallel pass) and imagining from the state it returns.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from envs.spec import EnvSpec, ObservationSpec
from ssmrl.world_models import PRESETS, WorldModel, make_config
from ssmrl.world_models.model import cat_states

from tests import ROOT

A, IMG, VEC = 3, (8, 8, 3), 3


def _window(b: int, l: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    batch = {"image": torch.randint(0, 256, (b, l, *IMG), generator=g, dtype=torch.uint8),
             "vector": torch.randn(b, l, VEC, generator=g),
             "action": torch.randint(0, A, (b, l), generator=g),
             "reward": torch.randn(b, l, generator=g),
             "is_first": torch.zeros(b, l, dtype=torch.bool),
             "is_terminal": torch.zeros(b, l, dtype=torch.bool)}
    batch["is_first"][:, 0] = True
    batch["is_first"][0, 3] = True  # an episode boundary inside a window: the state must reset there
    batch["is_first"][1, 6] = True
    batch["is_terminal"][0, 2] = True
    return batch


@pytest.mark.parametrize("preset", PRESETS)
def test_posterior_states_continue_like_observing_the_prefix(preset):
    b, l, last, horizon = 3, 9, 4, 3
    cfg = make_config(preset, "debug", action_dim=A, image_shape=IMG, vector_dim=VEC)
    model = WorldModel(cfg, seed=0).eval()
    batch = _window(b, l, seed=1)
    obs = {k: batch[k] for k in ("image", "vector")}
    loss, _, out = model.loss_and_outputs(batch, sample=False)
    starts = model.posterior_states(out["latents"], batch["action"], batch["is_first"], last)
    assert starts.h.shape == (last * b, cfg.d_model) and starts.z.shape == (last * b, model.z_dim)
    assert not starts.h.requires_grad and not starts.z.requires_grad and loss.requires_grad

    g = torch.Generator().manual_seed(5)
    actions = torch.randint(0, A, (b, horizon), generator=g)
    latents = torch.nn.functional.one_hot(torch.randint(0, model.z_dim, (b, horizon), generator=g), model.z_dim)
    for k in range(last):
        t = l - last + k
        rows = slice(k * b, (k + 1) * b)  # step-major: start k * B + i is window i at step L - last + k
        torch.testing.assert_close(starts.h[rows], out["latents"]["h"][:, t])
        torch.testing.assert_close(starts.z[rows], out["latents"]["z"][:, t])
        _, _, prefix_state = model.observe({key: v[:, :t + 1] for key, v in obs.items()}, batch["action"][:, :t + 1],
                                           batch["is_first"][:, :t + 1], sample=False)
        start_k = dataclasses.replace(starts, backbone=_rows(starts.backbone, rows, b, last, k),
                                      h=starts.h[rows], z=starts.z[rows], action=starts.action[rows])
        ours = model.imagine(None, start_k, horizon, actions=actions, latents=latents.float())
        ref = model.imagine(None, prefix_state, horizon, actions=actions, latents=latents.float())
        torch.testing.assert_close(ours["features"], ref["features"], atol=1e-4, rtol=1e-4)


def _rows(state, rows, b, last, k):
    """Select starts ``rows`` of a concatenated backbone state (inverse of cat_states for one block)."""
    from ssmrl.world_models.backbones import KVCache

    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state[rows]
    if isinstance(state, KVCache):
        return KVCache(k=state.k[:, rows], v=state.v[:, rows], valid=state.valid[rows])
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_rows(s, rows, b, last, k) for s in state))
    return type(state)(_rows(s, rows, b, last, k) for s in state)


def test_cat_states_joins_nested_states_on_their_batch_dimension():
    from ssmrl.world_models.backbones import KVCache

    a = [torch.zeros(2, 3), (torch.zeros(2, 1), torch.ones(2, 4))]
    c = [torch.ones(1, 3), (torch.ones(1, 1), torch.zeros(1, 4))]
    joined = cat_states([a, c])
    assert joined[0].shape == (3, 3) and joined[1][1].shape == (3, 4) and joined[1][0][2, 0] == 1
    caches = [KVCache(k=torch.zeros(2, n, 1, 4, 5), v=torch.zeros(2, n, 1, 4, 5),
                      valid=torch.arange(4).expand(n, 4) < n) for n in (2, 3)]
    cache = cat_states(caches)
    assert cache.k.shape == (2, 5, 1, 4, 5) and cache.valid.sum(1).tolist() == [2, 2, 3, 3, 3]


# ------------------------------------------------------------------------------------------------ the agent


def _agent(**dreamer):
    from agents.dreamer.agent import DreamerAgent
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection

    spec = EnvSpec((ObservationSpec("image", IMG, "uint8"), ObservationSpec("vector", (VEC,), "float32")),
                   action_dim=A, discrete=True)
    cfg = DreamerConfig(**{"batch_size": 3, "seq_len": 9, "imag_batch": 6, "imag_context": 4, "horizon": 3,
                           **dreamer})
    ac = ActorCriticConfig(actor_units=16, critic_units=16, actor_layers=1, critic_layers=1, num_bins=15)
    return DreamerAgent(WorldModelSection("drama", "debug"), ac, cfg, spec, torch.device("cpu"), seed=0)


def test_posterior_starts_are_the_batch_states_at_the_last_steps_with_their_terminal_flags():
    agent = _agent(imag_starts="posterior")
    batch = _window(3, 9, seed=2)
    batch["is_terminal"][2, 8] = True
    metrics, latents = agent.train_world_model(batch, torch.Generator().manual_seed(0))
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in metrics.values())
    starts = agent.imagination_starts(batch, latents, None)  # no context windows needed
    assert starts.state.z.shape[0] == 6
    torch.testing.assert_close(starts.state.z[:3], latents["z"][:, 7])
    torch.testing.assert_close(starts.state.z[3:], latents["z"][:, 8])
    assert starts.terminal.tolist() == [False, False, False, False, False, True]
    out = agent.train_actor_critic(starts, torch.Generator().manual_seed(1))
    assert np.isfinite(float(out["ac/loss"]))


def test_imag_starts_posterior_needs_starts_that_fit_the_batch():
    from agents.dreamer.config import DreamerConfig

    with pytest.raises(ValueError, match="imag_batch"):
        DreamerConfig(batch_size=4, seq_len=8, imag_batch=6, imag_starts="posterior")
    with pytest.raises(ValueError, match="imag_batch"):
        DreamerConfig(batch_size=4, seq_len=8, imag_batch=64, imag_starts="posterior")
    with pytest.raises(ValueError, match="imag_starts"):
        DreamerConfig(imag_starts="posteriors")


def test_config_loader_names_the_section_of_an_invalid_choice():
    from ssmrl.runs.config import ConfigError, from_dict, resolve_args
    from ssmrl.cli.config import Config

    merged, _ = resolve_args(["agent=drama", "dreamer.imag_starts=both"])
    with pytest.raises(ConfigError, match="dreamer: imag_starts"):
        from_dict(Config, merged)


def test_terminal_starts_weigh_nothing():
    """With start weight 0, a trajectory's rewards cannot move the loss; with weight 1 they do."""
    from agents.dreamer.actor_critic import ActorCritic
    from agents.dreamer.config import ActorCriticConfig

    torch.manual_seed(0)
    ac = ActorCritic(6, 3, True, ActorCriticConfig(actor_units=8, critic_units=8, actor_layers=1, critic_layers=1,
                                                    num_bins=15))
    feats = torch.randn(2, 5, 6)
    actions = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 4)), 3).float()
    rewards, conts = torch.randn(2, 4), torch.ones(2, 4)
    other = rewards.clone()
    other[1] += 5.0
    for w, same in (([1.0, 0.0], True), ([1.0, 1.0], False)):
        weights = torch.tensor(w)
        l1, _ = ac.loss(feats, actions, rewards, conts, update_stats=False, start_weights=weights)
        l2, _ = ac.loss(feats, actions, other, conts, update_stats=False, start_weights=weights)
        assert torch.isclose(l1, l2).item() is same


def test_the_benchmark_times_the_methods_the_update_calls(monkeypatch):
    """bench_train and DreamerAgent.update go through train_world_model / imagination_starts /
    train_actor_critic: counting calls through both shows they cannot drift apart."""
    import importlib.util

    from agents.dreamer.agent import DreamerAgent, sample_batches

    calls: dict[str, int] = {}
    for name in ("train_world_model", "imagination_starts", "train_actor_critic"):
        original = getattr(DreamerAgent, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(DreamerAgent, name, counted)
    path = ROOT / "scripts" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    words = ["agent=drama", "env=memory/four-rooms", "size=debug", "dreamer.imag_starts=posterior"]
    result = bench.bench_one(words, updates=2, warmup_updates=1, act_steps=2, steps=100, train_ratio=None, seed=0)
    assert calls == {"train_world_model": 3, "imagination_starts": 3, "train_actor_critic": 3}
    assert result["imagination"]["starts"] == "posterior" and result["update_s"] > 0

    agent = _agent()
    from ssmrl.replay import ReplayBuffer, ReplayConfig

    replay = ReplayBuffer(ReplayConfig(capacity=64, num_streams=1, verbose=False))
    rng = np.random.default_rng(0)
    for t in range(40):
        replay.add({"image": rng.integers(0, 256, IMG, dtype=np.uint8), "vector": rng.normal(size=VEC).astype(np.float32),
                    "action": np.int64(t % A), "reward": np.float32(0), "is_first": t == 0, "is_last": False, "is_terminal": False})
    agent.update(*sample_batches(replay, agent), torch.Generator().manual_seed(0))
    assert calls == {"train_world_model": 4, "imagination_starts": 4, "train_actor_critic": 4}


def test_the_acting_policy_clips_continuous_actions_to_the_env_range():
    """Imagination uses the raw Normal sample (DreamerV3); only the env and the carried model state see the
    clipped action."""
    from agents.dreamer.agent import DreamerAgent
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection

    spec = EnvSpec((ObservationSpec("vector", (VEC,), "float32"),), action_dim=2, discrete=False,
                   action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    ac = ActorCriticConfig(actor_units=16, critic_units=16, actor_layers=1, critic_layers=1, num_bins=15)
    agent = DreamerAgent(WorldModelSection("s4wm", "debug"), ac, DreamerConfig(), spec, torch.device("cpu"), seed=0)
    with torch.no_grad():
        agent.ac.actor.net[-1].bias.copy_(torch.tensor([3.0, -3.0, 5.0, 5.0]))  # loc near +-1, std at its max
    policy = agent.policy(generator=torch.Generator().manual_seed(0))
    obs = {"vector": np.zeros((256, VEC), np.float32)}
    action, state = policy.act(obs, np.ones(256, bool), policy.initial_state(256))
    assert np.abs(action).max() <= 1.0 and (np.abs(action) == 1.0).any()
    _, carried = state  # the action the next step feeds the model is the executed one
    assert carried.abs().max() <= 1.0 and torch.equal(carried, torch.as_tensor(action))
    raw = agent.ac.act(torch.zeros(256, agent.wm.feat_dim), generator=torch.Generator().manual_seed(0))
    assert raw.abs().max() > 1.0  # the raw samples do leave the range
