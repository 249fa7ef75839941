"""Decision Mamba / Decision Transformer / BC: data windows, causality, PSER, recurrent acting, scores, training."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from agents.offline.config import ModelConfig, OfflineConfig, PSERConfig
from agents.offline.data import OfflineData
from agents.offline.pser import alpha_of, freeze_copy, pser_target, stage_of
from agents.offline.scores import normalised_score
from agents.offline.trainer import OfflineTrainer, build_model, target_return_for, train_offline

O, A = 3, 2
TINY = ModelConfig(d_model=16, n_layers=2, dropout=0.1, max_timestep=64, d_state=4, n_heads=2)


SEQ_AGENTS = ["dt", "dm", "dm-s4d"]


def _arrays(n=40, seed=0, ep_len=(5, 9)):
    """A random D4RL-style stream with episodes of random length; the last one is cut by a timeout."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, O)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    i = 0
    while True:
        i += int(rng.integers(*ep_len))
        if i >= n:
            break
        (terminals if rng.random() < 0.5 else timeouts)[i - 1] = True
    timeouts[-1] = not terminals[-1]
    return {"observations": obs, "actions": np.tanh(obs[:, :A] * 1.5).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_observations": np.roll(obs, -1, 0), "terminals": terminals, "timeouts": timeouts}


def _model(agent, seed=0):
    """``dm-s4d``: Decision Mamba whose fine-grained (triplet) SSM is S4D instead of Mamba."""
    torch.manual_seed(seed)
    agent, _, fine = agent.partition("-")
    cfg = OfflineConfig(agent=agent, context=6, model=ModelConfig(**{**TINY.__dict__, "fine_ssm": fine or "mamba"}))
    return build_model(cfg, O, A).eval()


def _batch(seed=0, k=6):
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(2, k, dtype=torch.bool)
    first[1, 2] = True  # row 1: a new episode begins at step 2
    return {"rtg": torch.randn(2, k, 1, generator=g), "states": torch.randn(2, k, O, generator=g),
            "actions": torch.randn(2, k, A, generator=g).tanh(),
            "timesteps": torch.tensor([[3, 4, 5, 6, 7, 8], [7, 8, 0, 1, 2, 3]])[:, :k], "first": first}


# ---------------------------------------------------------------------------------------------- data and scores
def test_windows_rtg_first_and_next_targets_match_a_plain_loop():
    arr = _arrays(n=40)
    data = OfflineData(arr, context=5, rtg_scale=10.0, max_timestep=64)
    done = arr["terminals"] | arr["timeouts"]
    rtg, t_in, first = np.zeros(40), np.zeros(40, int), np.zeros(40, bool)
    for i in range(40):  # plain loops as reference
        first[i] = i == 0 or done[i - 1]
        t_in[i] = 0 if first[i] else t_in[i - 1] + 1
    for i in reversed(range(40)):
        rtg[i] = arr["rewards"][i] + (0.0 if done[i] else rtg[i + 1])
    w = data.window(np.arange(0, 36))
    np.testing.assert_allclose(w["rtg"][:, 0, 0].numpy(), rtg[:36] / 10.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w["next_rtg"][:, 0, 0].numpy(), (rtg[:36] - arr["rewards"][:36]) / 10.0, rtol=1e-5, atol=1e-6)
    assert w["first"][:, 0].tolist() == first[:36].tolist()
    assert w["timesteps"][:, 0].tolist() == t_in[:36].tolist()
    np.testing.assert_allclose(w["states"][:, 0].numpy() * data.state_std + data.state_mean, arr["observations"][:36], atol=1e-5)
    np.testing.assert_allclose(w["actions"][:, 2].numpy(), arr["actions"][2:38])
    b = data.sample(8, np.random.default_rng(0))
    assert b["states"].shape == (8, 5, O) and b["first"].dtype == torch.bool
    with pytest.raises(ValueError, match="context"):
        OfflineData(arr, context=41)
    with pytest.raises(KeyError, match="timeouts"):
        OfflineData({k: v for k, v in arr.items() if k != "timeouts"}, context=5)


def test_normalised_score_matches_d4rl_reference_values():
    refs = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3),
            "ant": (-325.6, 3879.7)}
    for task, (lo, hi) in refs.items():
        for ret in (lo, hi, 1234.5):
            s = normalised_score(ret, f"{task}-medium-v2", env=f"{task.capitalize()}-v3")
            assert s.reference == "d4rl" and s.task == task and s.env == f"{task.capitalize()}-v3"
            assert s.score == pytest.approx(100 * (ret - lo) / (hi - lo), rel=1e-12, abs=1e-9)
    # D4RL's references on a Gymnasium v5 return only on request, and the result says which env it came from
    with pytest.raises(KeyError, match="Hopper-v5; set offline.d4rl_reference_any_version=true"):
        normalised_score(3234.3, "hopper", env="Hopper-v5")
    forced = normalised_score(3234.3, "hopper", env="Hopper-v5", allow_other_version=True)
    assert forced.score == pytest.approx(100.0) and forced.env == "Hopper-v5"
    own = {"ref_min_score": 10.0, "ref_max_score": 110.0}
    s = normalised_score(60.0, "Hopper-v5", own, env="Hopper-v5")
    assert (s.reference, s.score) == ("dataset", pytest.approx(50.0))
    # a random-only collection (no expert return) does not fall back to D4RL's values silently
    with pytest.raises(KeyError, match="D4RL's reference scores belong"):
        normalised_score(60.0, "hopper", {"ref_min_score": 10.0}, env="Hopper-v5")
    assert normalised_score(60.0, "Hopper-v5", own, reference="d4rl", env="Hopper-v2").reference == "d4rl"
    with pytest.raises(KeyError, match="ref_min_score"):
        normalised_score(1.0, "hopper", {}, reference="dataset")
    with pytest.raises(ValueError, match="reference"):
        normalised_score(1.0, "hopper", reference="x")


def test_target_return_scaled_to_the_dataset_expert():
    cfg = OfflineConfig()
    assert target_return_for(cfg, "hopper-medium-v2", {})[0] == 3600.0
    t, src = target_return_for(cfg, "Hopper-v5", {"ref_max_score": 1000.0})
    assert t == pytest.approx(1000.0 * 3600.0 / 3234.3) and "dataset" in src


# ---------------------------------------------------------------------------------------------- causality
@pytest.mark.parametrize("agent", SEQ_AGENTS)
def test_action_at_t_ignores_a_t_future_and_steps_before_the_episode_start(agent):
    model = _model(agent)
    base = _batch()
    ref = model(base)["action"]
    t = 3
    perturbations = {
        "a_t": lambda b: b["actions"][:, t].add_(5.0),
        "future": lambda b: [b[k][:, t + 1:].add_(3.0) for k in ("rtg", "states", "actions")],
        "future_t": lambda b: b["timesteps"][:, t + 1:].add_(1),
    }
    for name, perturb in perturbations.items():
        b = {k: v.clone() for k, v in base.items()}
        perturb(b)
        out = model(b)["action"]
        torch.testing.assert_close(out[:, :t + 1], ref[:, :t + 1], msg=name)
        assert not torch.allclose(out, ref) or name == "a_t" and t == 5, name  # the perturbation mattered later
    # row 1 starts a new episode at step 2: steps 0, 1 (all tokens) must not reach steps >= 2
    b = {k: v.clone() for k, v in base.items()}
    for k in ("rtg", "states", "actions"):
        b[k][1, :2] += 4.0
    out = model(b)["action"]
    torch.testing.assert_close(out[1, 2:], ref[1, 2:])
    assert not torch.allclose(out[1, :2], ref[1, :2])
    # while in row 0 (no reset) the past does matter
    b = {k: v.clone() for k, v in base.items()}
    b["states"][0, 0] += 4.0
    assert not torch.allclose(model(b)["action"][0, 3:], ref[0, 3:])


@pytest.mark.parametrize("agent", SEQ_AGENTS)
def test_incremental_acting_equals_the_parallel_forward(agent):
    """One ``act`` / ``record_action`` per env step reproduces the parallel forward's actions (episode from t=0)."""
    model = _model(agent)
    k = 6
    b = _batch(k=k)
    b["first"][:] = False
    b["first"][:, 0] = True
    b["timesteps"] = torch.arange(k).expand(2, k).clone()
    ref = model(b)["action"]
    cache = model.begin(2)
    for t in range(k):
        a, cache = model.act(cache, b["rtg"][:, t], b["states"][:, t], b["timesteps"][:, t], b["first"][:, t])
        torch.testing.assert_close(a, ref[:, t], atol=2e-5, rtol=1e-4)
        cache = model.record_action(cache, b["actions"][:, t], b["timesteps"][:, t])


# ---------------------------------------------------------------------------------------------- PSER
def test_pser_schedule_and_target_uses_the_frozen_previous_policy():
    cfg = PSERConfig(schedule="stages", stages=4, alpha_max=0.85, alpha_cap=None)
    assert [stage_of(u, 100, cfg) for u in (0, 24, 25, 50, 99)] == [0, 0, 1, 2, 3]
    assert [alpha_of(s, 100, cfg) for s in range(4)] == pytest.approx([0.0, 0.85 / 3, 0.85 * 2 / 3, 0.85])
    assert alpha_of(7, 100, cfg) == pytest.approx(0.85)  # capped
    assert alpha_of(3, 100, PSERConfig(enabled=False)) == 0.0
    # the public code's schedule: 2,500-update iterations (40 over 100k updates), alpha_T * k / 39 capped at 0.5
    public = PSERConfig()
    assert [stage_of(u, 100_000, public) for u in (0, 2499, 2500, 99_999)] == [0, 0, 1, 39]
    alphas = [alpha_of(k, 100_000, public) for k in range(40)]
    assert alphas[1] == pytest.approx(0.85 / 39) and max(alphas) == pytest.approx(0.5)
    assert alphas.index(0.5) == 23  # 0.85 * 23 / 39 = 0.501 is the first capped iteration
    live = _model("dt")
    prev = freeze_copy(live)
    b = _batch()
    alpha = 0.4
    target = pser_target(prev, b, alpha)
    torch.testing.assert_close(target, 0.6 * b["actions"] + 0.4 * prev(b)["action"])
    with torch.no_grad():  # training the live model further must not move the target
        for p in live.parameters():
            p.add_(0.5)
    assert not torch.allclose(live(b)["action"], prev(b)["action"])
    torch.testing.assert_close(pser_target(prev, b, alpha), target)
    assert not any(p.requires_grad for p in prev.parameters())
    torch.testing.assert_close(pser_target(None, b, alpha), b["actions"])
    with pytest.raises(ValueError, match="eval"):
        pser_target(live.train(), b, alpha)


def test_trainer_switches_stages_and_freezes_copies():
    cfg = OfflineConfig(agent="dt", context=4, batch_size=4, updates=8, warmup_steps=1, model=TINY,
                        pser=PSERConfig(iteration_updates=4))
    cfg_dm_like = cfg
    tr = OfflineTrainer(cfg_dm_like, OfflineData(_arrays(), 4, max_timestep=64))
    tr.use_pser = True  # PSER is Decision Mamba's; exercised here on the cheaper DT
    infos = [tr.update() for _ in range(8)]
    assert [i["stage"] for i in infos] == [0] * 4 + [1] * 4
    assert [i["alpha"] for i in infos] == [0.0] * 4 + [0.5] * 4  # 0.85 capped at 0.5
    assert tr.prev_model is not None and not tr.prev_model.training


# ---------------------------------------------------------------------------------------------- training
def test_trainer_resume_from_state_dict_is_exact():
    data = OfflineData(_arrays(), 4, max_timestep=64)
    cfg = OfflineConfig(agent="dt", context=4, batch_size=4, updates=6, warmup_steps=2, model=TINY, seed=1)
    a = OfflineTrainer(cfg, data)
    full = [a.update()["loss"] for _ in range(6)]
    b = OfflineTrainer(cfg, data)
    part = [b.update()["loss"] for _ in range(3)]
    sd = b.state_dict()
    c = OfflineTrainer(cfg, data)
    c.load_state_dict(sd)
    part += [c.update()["loss"] for _ in range(3)]
    assert part == pytest.approx(full, rel=1e-6)


def test_ssm_parameters_get_no_weight_decay():
    from agents.offline.trainer import _param_groups

    model = _model("dm")
    decay, rest = (set(map(id, g["params"])) for g in _param_groups(model, 1e-5))
    named = dict(model.named_parameters())
    for name in ("layers.0.coarse.A_log", "layers.0.fine.A_log", "layers.1.coarse.dt_proj.bias", "embed.timestep.weight"):
        assert id(named[name]) in rest, name
    for name in ("layers.0.coarse.in_proj.weight", "layers.0.gate.weight", "action_head.0.weight"):
        assert id(named[name]) in decay, name
    assert len(decay) + len(rest) == len(named) and not decay & rest


@pytest.mark.parametrize("agent", ["bc", "dt", "dm"])
def test_tiny_dataset_trains_end_to_end_and_loss_drops(agent):
    """Actions are a fixed function of the state: a learner must fit them; evaluation runs in Hopper-v5."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    n = 400
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    w = rng.normal(size=(11, 3)).astype(np.float32) / 3
    timeouts = np.zeros(n, bool)
    timeouts[49::50] = True
    arr = {"observations": obs, "actions": np.tanh(obs @ w), "rewards": rng.normal(size=n).astype(np.float32),
           "terminals": np.zeros(n, bool), "timeouts": timeouts}
    meta = {"env_id": "Hopper-v5", "ref_min_score": -20.0, "ref_max_score": 300.0}
    cfg = OfflineConfig(agent=agent, context=5, batch_size=16, lr=3e-3, warmup_steps=10, updates=150,
                        eval_every=100, eval_episodes=2, max_eval_steps=15, model=TINY, seed=0,
                        pser=PSERConfig(stages=2))
    cfg.model = ModelConfig(**{**TINY.__dict__, "dropout": 0.0})
    logs = []
    out = train_offline(cfg, arr, meta, on_log=lambda s, i: logs.append(i["action_loss"]))
    tr = out["trainer"]
    with torch.no_grad():
        tr.model.eval()
        batch = tr.data.window(np.arange(0, n - 5, 5))
        fitted = (tr.model(batch)["action"] - batch["actions"]).pow(2).mean().item()
    baseline = batch["actions"].pow(2).mean().item()  # predicting zeros
    assert fitted < 0.25 * baseline, (fitted, baseline)
    assert [e["step"] for e in out["evals"]] == [100, 150]
    final = out["final"]
    assert len(final["returns"]) == 2 and final["normalised"]["reference"] == "dataset"
    assert final["normalised"]["score"] == pytest.approx(100 * (final["return_mean"] + 20) / 320)
    assert out["target_return"] == pytest.approx(300.0 * 3600 / 3234.3)
    assert time.perf_counter() - start < 60
    # a checkpoint alone (no dataset) reproduces the final evaluation
    from agents.offline.trainer import evaluate_checkpoint

    again = evaluate_checkpoint(cfg, tr.state_dict(), episodes=2, seed=cfg.seed + 1000, metadata=meta)
    assert again["returns"] == pytest.approx(final["returns"])
    assert again["normalised"] == final["normalised"]


def test_dm_loss_is_the_public_codes_weighted_sum():
    """0.9 MSE(action) + 0.05 SmoothL1(next state) + 0.05 SmoothL1(next RTG), recomputed with torch's modules."""
    model = _model("dm")
    b = _batch()
    g = torch.Generator().manual_seed(4)
    b["next_states"] = torch.randn(2, 6, O, generator=g) * 3  # beyond SmoothL1's quadratic zone
    b["next_rtg"] = torch.randn(2, 6, 1, generator=g)
    loss, _ = model.loss(b)
    out = model(b)
    huber, mse = torch.nn.SmoothL1Loss(), torch.nn.MSELoss()
    ref = (0.9 * mse(out["action"], b["actions"]) + 0.05 * huber(out["next_state"], b["next_states"])
           + 0.05 * huber(out["next_rtg"], b["next_rtg"]))
    torch.testing.assert_close(loss, ref)


def test_dm_acts_on_a_window_of_the_last_k_steps_as_it_was_trained():
    """acting="window": the action at step t equals the training forward on steps t-K+1..t from a fresh state;
    acting="recurrent" carries the whole episode and differs once the episode is longer than K."""
    k, steps = 3, 7
    torch.manual_seed(0)
    window = build_model(OfflineConfig(agent="dm", context=k, model=TINY), O, A).eval()
    recurrent = build_model(OfflineConfig(agent="dm", context=k, model=TINY, acting="recurrent"), O, A).eval()
    recurrent.load_state_dict(window.state_dict())
    g = torch.Generator().manual_seed(1)
    seq = {"rtg": torch.randn(2, steps, 1, generator=g), "states": torch.randn(2, steps, O, generator=g),
           "actions": torch.randn(2, steps, A, generator=g).tanh(), "timesteps": torch.arange(steps).expand(2, steps)}
    caches = [window.begin(2), recurrent.begin(2)]
    gaps = []
    with torch.no_grad():
        for t in range(steps):
            first = torch.full((2,), t == 0)
            acts = []
            for i, model in enumerate((window, recurrent)):
                a, caches[i] = model.act(caches[i], seq["rtg"][:, t], seq["states"][:, t], seq["timesteps"][:, t], first)
                caches[i] = model.record_action(caches[i], seq["actions"][:, t], seq["timesteps"][:, t])
                acts.append(a)
            lo = max(0, t - k + 1)
            win = {key: v[:, lo:t + 1].clone() for key, v in seq.items()}
            win["actions"][:, -1] = 0.0  # a_t is not known when acting at s_t
            win["first"] = torch.zeros(2, t + 1 - lo, dtype=torch.bool)
            win["first"][:, 0] = True
            torch.testing.assert_close(acts[0], window(win)["action"][:, -1], atol=1e-5, rtol=1e-4)
            gaps.append(float((acts[0] - acts[1]).abs().max()))
    assert max(gaps[:k]) < 1e-5  # the same while the episode fits in the window
    assert min(gaps[k:]) > 1e-6, gaps  # then the recurrent policy also sees older steps


def test_dm_layer_is_a_mamba_block_without_mlp():
    """As the public code's block: x + mix(coarse(LN x), fine(LN x)) with the shared gate, and nothing after it
    (an earlier version added a feed-forward MLP); checked against the sum written out from the submodules."""
    from agents.offline.decision_mamba import DMLayer

    torch.manual_seed(0)
    layer = DMLayer(TINY).eval()
    assert {name.split(".")[0] for name, _ in layer.named_parameters()} == {"norm", "coarse", "fine", "gate"}
    x = torch.randn(2, 9, TINY.d_model)
    first = torch.zeros(2, 9, dtype=torch.bool)
    first[:, 0] = True
    triplet_first = torch.zeros_like(first)
    triplet_first[:, 0::3] = True
    h = layer.norm(x)
    g = torch.sigmoid(layer.gate(h))
    want = x + g * layer.coarse(h, first=first)[0] + (1 - g) * layer.fine(h, first=triplet_first)[0]
    torch.testing.assert_close(layer(x, first, triplet_first), want)


def test_a_decision_mamba_checkpoint_with_the_old_mlp_is_refused_in_one_line():
    from agents.offline.config import OfflineConfig
    from agents.offline.data import OfflineData

    cfg = OfflineConfig(agent="dm", context=6, model=TINY)
    trainer = OfflineTrainer(cfg, OfflineData(_arrays(), 6))
    state = trainer.state_dict()
    state["model"] = {**state["model"], "layers.0.mlp.0.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="before f2a84c2") as err:
        trainer.load_state_dict(state)
    assert "\n" not in str(err.value)
