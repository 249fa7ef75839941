"""World models: causality, resets, observe->imagine vs. parallel pass, training signal, checkpoints.

Every preset runs at ``size="debug"`` on 8x8 images plus a 3-d vector, so both encoders/decoders are covered.
"""
from __future__ import annotations

import io

import pytest
import torch

from ssmrl.world_models import PRESETS, WorldModel, config_from_dict, config_to_dict, make_config

A = 3  # actions
IMG = (8, 8, 3)
VEC = 3


def build(preset: str, seed: int = 0, **over) -> WorldModel:
    cfg = make_config(preset, "debug", action_dim=A, image_shape=IMG, vector_dim=VEC, **over)
    model = WorldModel(cfg, seed=seed)
    # The reward head starts at exactly zero (DreamerV3 init); give it random output weights so that the
    # tests below can see every input that reaches it.
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        out = model.reward_head.net.out
        out.weight.copy_(torch.randn(out.weight.shape, generator=g) * 0.05)
    return model.eval()


def make_inputs(b: int, l: int, seed: int, first: torch.Tensor | None = None):
    g = torch.Generator().manual_seed(seed)
    obs = {"image": torch.randint(0, 256, (b, l, *IMG), generator=g, dtype=torch.uint8),
           "vector": torch.randn(b, l, VEC, generator=g)}
    action = torch.nn.functional.one_hot(torch.randint(0, A, (b, l), generator=g), A).float()
    if first is None:
        first = torch.zeros(b, l, dtype=torch.bool)
    return obs, action, first


def outputs(model: WorldModel, obs, action, first, state=None, seed: int = 7):
    """All per-step outputs of an observe pass with fixed sampling noise."""
    g = torch.Generator().manual_seed(seed)
    lat, feat, st = model.observe(obs, action, first, state, generator=g)
    dec = model.decoder(model.decoder_input(feat))
    return dict(h=lat["h"], prior=lat["prior"], post=lat["post"], z=lat["z"], reward=model.reward(feat),
                cont=model.cont(feat), image=dec["image"], vector=dec["vector"]), st


def perturb(obs, action, t_obs: int, t_act: int, seed: int = 99):
    """Copies with observations at steps >= t_obs and actions at steps >= t_act replaced by random ones."""
    g = torch.Generator().manual_seed(seed)
    obs2 = {k: v.clone() for k, v in obs.items()}
    obs2["image"][:, t_obs:] = torch.randint(0, 256, obs2["image"][:, t_obs:].shape, generator=g, dtype=torch.uint8)
    obs2["vector"][:, t_obs:] = torch.randn(obs2["vector"][:, t_obs:].shape, generator=g) * 3
    action2 = action.clone()
    action2[:, t_act:] = 1.0 - action2[:, t_act:]  # every action changes (multi-hot is fine as model input)
    return obs2, action2


def same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    return torch.allclose(a, b, atol=atol, rtol=0)


@pytest.fixture(scope="module", params=PRESETS)
def preset_model(request):
    return request.param, build(request.param)


# ------------------------------------------------------------------------------------------ causality


def test_causality(preset_model):
    """h_t and the prior at t see x_{<t}, a_{<t}; heads/decoder at t see x_{<=t}, a_{<t} ([h, z] input) or
    only x_{<t}, a_{<t} (drama: heads on h); nothing sees a_t or later."""
    preset, model = preset_model
    b, l, t = 2, 8, 4
    obs, action, first = make_inputs(b, l, seed=1)
    with torch.no_grad():
        ref, _ = outputs(model, obs, action, first)
        # (1) perturb x_{>=t} and a_{>=t}: h, prior unchanged at steps <= t; posterior-based outputs at < t.
        o2, a2 = perturb(obs, action, t, t)
        out, _ = outputs(model, o2, a2, first)
        for key in ("h", "prior"):
            assert same(out[key][:, : t + 1], ref[key][:, : t + 1]), f"{preset}: {key} at <= t saw x_t or a_t"
            assert not same(out[key][:, t + 1], ref[key][:, t + 1]), f"{preset}: {key} at t+1 ignores step t"
        for key in ("post", "z", "reward", "cont", "image", "vector"):
            assert same(out[key][:, :t], ref[key][:, :t]), f"{preset}: {key} before t saw step t"
        heads_on_h = model.cfg.head_input == "h"
        if heads_on_h:  # drama's heads read h_t only: unchanged at t even though x_t changed
            for key in ("reward", "cont"):
                assert same(out[key][:, t], ref[key][:, t]), f"{preset}: {key} at t saw x_t"
        assert not same(out["post"][:, t], ref["post"][:, t])  # the posterior does read x_t
        # (2) perturb x_{>t} and a_{>=t}: everything at <= t unchanged (a_t enters only at t+1).
        o3, a3 = perturb(obs, action, t + 1, t)
        out, _ = outputs(model, o3, a3, first)
        for key, v in ref.items():
            assert same(out[key][:, : t + 1], v[:, : t + 1]), f"{preset}: {key} at <= t saw a_t or x_{{t+1}}"


def test_reset_makes_future_independent_of_past(preset_model):
    """With first[:, r] set, outputs at >= r do not depend on inputs before r nor on the carried state, and
    equal a fresh pass over the steps from r on."""
    preset, model = preset_model
    b, l, r = 2, 9, 4
    first = torch.zeros(b, l, dtype=torch.bool)
    first[:, r] = True
    first[1, 7] = True  # a second reset in one row
    obs, action, _ = make_inputs(b, l, seed=2)
    with torch.no_grad():
        ref, _ = outputs(model, obs, action, first)
        o2, a2 = perturb(obs, action, 0, 0)
        for k in obs:
            o2[k][:, r:] = obs[k][:, r:]
        a2[:, r:] = action[:, r:]
        _, _, carried = model.observe(*make_inputs(b, 5, seed=3)[:2], None)  # a non-zero carried state
        out, _ = outputs(model, o2, a2, first, state=carried)
        fresh_first = first[:, r:].clone()
        fresh = model.observe({k: v[:, r:] for k, v in obs.items()}, action[:, r:], fresh_first, None,
                              sample=False)[0]
        modes = model.observe(obs, action, first, None, sample=False)[0]
        for key, v in ref.items():
            assert same(out[key][:, r:], v[:, r:], atol=1e-5), f"{preset}: {key} after the reset saw the past"
            assert not same(out[key][:, :r], v[:, :r]), f"{preset}: {key} before the reset should differ"
        for key in ("h", "prior", "post", "z"):
            assert same(fresh[key], modes[key][:, r:], atol=1e-5), f"{preset}: {key} != fresh pass"


# ------------------------------------------------------------------------------------------ imagination


@pytest.mark.parametrize("ctx_reset", [False, True])
def test_observe_then_imagine_equals_parallel(preset_model, ctx_reset):
    """observe(context) + imagine(recorded actions, posterior latents fed back) == one parallel observe."""
    preset, model = preset_model
    b, l, c = 2, 10, 6
    first = torch.zeros(b, l, dtype=torch.bool)
    if ctx_reset:
        first[0, 2] = True
        first[1, 0] = True
    obs, action, _ = make_inputs(b, l, seed=4)
    with torch.no_grad():
        full, feat, _ = model.observe(obs, action, first, None, sample=False)
        _, ctx_feat, st = model.observe({k: v[:, :c] for k, v in obs.items()}, action[:, :c], first[:, :c], None,
                                        sample=False)
        assert same(ctx_feat, feat[:, :c], atol=1e-5)
        im = model.imagine(None, st, l - c, actions=action[:, c - 1: l - 1], latents=full["z"][:, c:])
    assert im["features"].shape == (b, l - c + 1, model.feat_dim)
    assert same(im["features"][:, 0], feat[:, c - 1], atol=1e-5)
    assert same(im["h"][:, 1:], full["h"][:, c:], atol=1e-4), f"{preset}: stepped h != parallel h"
    assert same(im["prior"], full["prior"][:, c:], atol=1e-4), f"{preset}: stepped prior != parallel prior"
    r_im, r_par = model.reward(im["features"][:, 1:]), model.reward(feat[:, c:])
    assert torch.allclose(r_im, r_par, atol=1e-4, rtol=1e-4)


def test_imagine_with_policy_matches_open_loop(preset_model):
    """A closed-loop policy's rollout equals the open-loop rollout of the actions it chose (same noise)."""
    preset, model = preset_model
    b, h = 3, 5
    obs, action, first = make_inputs(b, 4, seed=5)
    proj = torch.randn(model.feat_dim, A, generator=torch.Generator().manual_seed(0))

    def policy(feat):
        return torch.nn.functional.one_hot((feat @ proj).argmax(-1), A).float()

    with torch.no_grad():
        _, _, st = model.observe(obs, action, first, None)
        closed = model.imagine(policy, st, h, generator=torch.Generator().manual_seed(1))
        opened = model.imagine(None, st, h, actions=closed["actions"], generator=torch.Generator().manual_seed(1))
    assert closed["actions"].shape == (b, h, A)
    for k in range(h):  # each action is the policy's choice on the features it was taken at
        assert same(closed["actions"][:, k], policy(closed["features"][:, k]))
    assert same(closed["features"], opened["features"])
    # sampled prior latents are one-hot per group
    z = closed["z"][:, 1:].reshape(b, h, model.cfg.latent.groups, model.cfg.latent.classes)
    assert same(z.sum(-1), torch.ones_like(z.sum(-1)))
    assert torch.equal((z > 0.5).sum(-1), torch.ones_like(z.sum(-1), dtype=torch.long))


# ------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip(preset_model):
    preset, model = preset_model
    batch_obs, action, first = make_inputs(2, 6, seed=6)
    batch = dict(**batch_obs, action=action.argmax(-1), reward=torch.randn(2, 6), is_first=first,
                 is_terminal=torch.zeros(2, 6, dtype=torch.bool))
    buf = io.BytesIO()
    torch.save({"config": config_to_dict(model.cfg), "model": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    other = WorldModel(config_from_dict(ckpt["config"]), seed=123).eval()
    with torch.no_grad():
        before, _ = other.loss(batch, generator=torch.Generator().manual_seed(0))
        other.load_state_dict(ckpt["model"])
        l1, m1 = model.loss(batch, generator=torch.Generator().manual_seed(0))
        l2, m2 = other.loss(batch, generator=torch.Generator().manual_seed(0))
    assert other.cfg == model.cfg
    assert not torch.equal(before, l1)  # a different init really gives different outputs
    assert torch.equal(l1, l2)
    assert all(torch.equal(m1[k], m2[k]) for k in m1)


# ------------------------------------------------------------------------------------------ training


def _ring_batch(g: torch.Generator, b: int, l: int, n: int = 4):
    """A deterministic ring of n cells: action 0 stays, 1 moves right, 2 moves left; the observation is the
    one-hot cell (vector) and a bright pixel column (image); reward 1 on entering cell 0; episodes of 8 steps."""
    pos = torch.randint(0, n, (b,), generator=g)
    acts = torch.randint(0, A, (b, l), generator=g)
    cells, rewards, firsts = [], [], []
    for t in range(l):
        is_first = t % 8 == 0
        if is_first:
            pos = torch.randint(0, n, (b,), generator=g)
            rew = torch.zeros(b)
        else:
            prev = pos
            pos = (pos + torch.tensor([0, 1, -1])[acts[:, t - 1]]) % n
            rew = ((pos == 0) & (prev != 0)).float()
        cells.append(pos.clone()), rewards.append(rew), firsts.append(torch.full((b,), is_first))
    cells = torch.stack(cells, 1)
    image = torch.zeros(b, l, *IMG, dtype=torch.uint8)
    for c in range(n):
        image[..., 2 * c: 2 * c + 2, :][cells == c] = 255
    vector = torch.nn.functional.one_hot(cells, VEC + 1)[..., :VEC].float()
    return dict(image=image, vector=vector, action=acts, reward=torch.stack(rewards, 1),
                is_first=torch.stack(firsts, 1), is_terminal=torch.zeros(b, l, dtype=torch.bool))


@pytest.mark.parametrize("preset,image", [("drama", True), ("rssm", False), ("s4wm", False), ("s5wm", False),
                                          ("transformer", False)])
def test_loss_decreases_on_tiny_env(preset, image):
    """100 Adam updates on 4x16 batches of the ring env (about 1-2 s of CPU) cut the loss by more than half."""
    model = WorldModel(make_config(preset, "debug", action_dim=A, image_shape=IMG if image else None,
                                   vector_dim=VEC), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    sg = torch.Generator().manual_seed(1)

    def batch(gen, b):
        out = _ring_batch(gen, b, 16)
        if not image:
            out.pop("image")
        return out

    eval_batch = batch(torch.Generator().manual_seed(42), 16)

    def evaluate():
        with torch.no_grad():
            return model.loss(eval_batch, generator=torch.Generator().manual_seed(5))[1]

    start = evaluate()
    for _ in range(100):
        loss, _ = model.loss(batch(g, 4), generator=sg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = evaluate()
    assert end["loss"] < 0.5 * start["loss"], (start["loss"], end["loss"])
    assert end["recon"] < 0.3 * start["recon"], (start["recon"], end["recon"])
    assert end["reward_loss"] < 0.3 * start["reward_loss"], (start["reward_loss"], end["reward_loss"])


def test_acting_step_by_step_equals_observe(preset_model):
    """step(obs_t, a_{t-1}, first_t, state) per step (as an acting loop does) equals one observe pass."""
    preset, model = preset_model
    b, l = 2, 6
    first = torch.zeros(b, l, dtype=torch.bool)
    first[:, 0] = True
    first[1, 3] = True
    obs, action, _ = make_inputs(b, l, seed=8)
    with torch.no_grad():
        lat, feat, _ = model.observe(obs, action, first, None, sample=False)
        st, feats = None, []
        for t in range(l):
            prev = action[:, t - 1].argmax(-1) if t else None
            _, f_t, st = model.step({k: v[:, t] for k, v in obs.items()}, prev, first[:, t], st, sample=False)
            feats.append(f_t)
    assert same(torch.stack(feats, 1), feat, atol=1e-5), preset


def test_transformer_acting_deep_into_an_episode_equals_the_training_forward_on_the_window():
    """Relative (ALiBi) positions: the features at step 1,000 of an episode, computed with the carried KV cache
    as when acting, equal a fresh training forward over just the tokens they can see (n_layers * (window - 1)
    back). With absolute positions the window would start at position 0 and disagree."""
    from ssmrl.world_models.backbones import TransformerBackbone
    from ssmrl.world_models.config import TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(n_layers=2, n_heads=2, window=8, mlp_ratio=2)
    net = TransformerBackbone(cfg, 16).eval()
    u = torch.randn(2, 1001, 16, generator=torch.Generator().manual_seed(1))
    first = torch.zeros(2, 1001, dtype=torch.bool)
    first[:, 0] = True
    with torch.no_grad():
        state, outs = None, []
        for lo in range(0, 1001, 50):  # forward with a carried cache == step token by token
            h, state = net(u[:, lo:lo + 50], first[:, lo:lo + 50], state)
            outs.append(h)
        acting = torch.cat(outs, 1)[:, 1000]
        reach = cfg.n_layers * (cfg.window - 1) + 1
        window = net(u[:, 1001 - reach:], None, None)[0][:, -1]
        shorter = net(u[:, 1001 - reach + 4:], None, None)[0][:, -1]
    torch.testing.assert_close(acting, window, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(acting, shorter, atol=1e-4)  # the test sees the whole receptive field
