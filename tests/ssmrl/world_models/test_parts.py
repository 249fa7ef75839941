"""World-model parts: symlog/two-hot, latents and KL balancing, codecs, backbones, configs, input errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ssmrl.world_models import (
    CategoricalLatent,
    GRUBackbone,
    ImageDecoder,
    ImageEncoder,
    RewardHead,
    SSMBackbone,
    TransformerBackbone,
    WorldModel,
    config_from_dict,
    config_to_dict,
    make_config,
    symexp,
    symlog,
)
from ssmrl.distributions import twohot_encode as twohot  # the reward head's encoder (one for the suite)
from ssmrl.world_models.config import GRUConfig, SSMConfig, TransformerConfig
from ssmrl.world_models.networks import ChannelNorm


# ------------------------------------------------------------------------------------------ symlog, two-hot


def test_symlog_symexp():
    x = torch.tensor([-100.0, -math.e + 1, -0.5, 0.0, 0.5, math.e - 1, 1e4])
    assert torch.allclose(symlog(x)[[1, 5]], torch.tensor([-1.0, 1.0]))
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_twohot_reproduces_value():
    bins = torch.linspace(-20, 20, 255)
    y = torch.tensor([-25.0, -20.0, -3.3, 0.0, 0.07, 5.5, 20.0, 31.0])
    enc = twohot(y, bins)
    assert torch.allclose(enc.sum(-1), torch.ones(8))
    assert ((enc > 0).sum(-1) <= 2).all()
    assert torch.allclose((enc * bins).sum(-1), y.clamp(-20, 20), atol=1e-5)
    assert torch.isclose(enc[3, 127], torch.tensor(1.0))  # 0 is the middle bin


def test_reward_head_starts_at_zero_and_fits_a_value():
    torch.manual_seed(0)
    head = RewardHead(4, 8, 1, bins=255)
    feat = torch.randn(5, 4)
    assert torch.allclose(head.mean(head(feat)), torch.zeros(5), atol=1e-6)  # zero-initialised output
    # loss = CE against two-hot of symlog(r), computed independently
    logits = torch.randn(5, 255)
    r = torch.tensor([0.0, 1.0, -7.0, 300.0, 0.3])
    t = twohot(symlog(r), head.bins)
    assert torch.allclose(head.loss(logits, r), -(t * torch.log_softmax(logits, -1)).sum(-1))
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    target = torch.full((5,), 7.3)
    for _ in range(200):
        loss = head.loss(head(feat), target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(head.mean(head(feat)), target, rtol=0.05)


# ------------------------------------------------------------------------------------------ latents


def test_latent_unimix_and_sampling_frequencies():
    lat = CategoricalLatent(2, 4, unimix=0.01)
    logits = torch.tensor([[20.0, 0.0, 0.0, -20.0, 0.5, 0.2, 0.1, 0.0]])
    p = lat.probs(logits)
    assert torch.allclose(p.sum(-1), torch.ones(1, 2))
    assert p.min() >= 0.01 / 4 - 1e-7  # unimix floor
    raw = torch.softmax(logits.reshape(2, 4), -1)
    assert torch.allclose(p[0], 0.99 * raw + 0.0025)
    z = lat.sample(logits.expand(40000, 8), generator=torch.Generator().manual_seed(0))
    freq = z.reshape(-1, 2, 4).mean(0)
    assert torch.allclose(freq, p[0], atol=0.01)  # 4 sigma of a 40k-sample frequency is < 0.01
    mode = lat.sample(logits, sample=False).reshape(2, 4)
    assert torch.equal(mode.argmax(-1), torch.tensor([0, 0]))


def test_latent_straight_through_gradient():
    lat = CategoricalLatent(3, 5)
    logits = torch.randn(2, 15, requires_grad=True)
    w = torch.randn(2, 15)
    (lat.sample(logits, generator=torch.Generator().manual_seed(1)) * w).sum().backward()
    g_st = logits.grad.clone()
    logits.grad = None
    (lat.probs(logits).reshape(2, 15) * w).sum().backward()
    assert torch.allclose(g_st, logits.grad)


def test_kl_balancing_and_free_bits():
    lat = CategoricalLatent(2, 3, unimix=0.0)
    post = torch.randn(4, 6, requires_grad=True)
    prior = torch.randn(4, 6, requires_grad=True)
    qp = torch.softmax(post.detach().reshape(4, 2, 3), -1)
    pp = torch.softmax(prior.detach().reshape(4, 2, 3), -1)
    expected = (qp * (qp.log() - pp.log())).sum((-1, -2))
    dyn, rep, kl = lat.kl_losses(post, prior, free_bits=0.0)
    assert torch.allclose(kl, expected, atol=1e-6) and torch.allclose(dyn, expected, atol=1e-6)
    dyn.sum().backward()
    assert post.grad is None and prior.grad.abs().sum() > 0  # dyn trains the prior only
    prior.grad = None
    rep.sum().backward()
    assert prior.grad is None and post.grad.abs().sum() > 0  # rep trains the posterior only
    fb = float(expected.max()) + 0.5
    dyn, rep, _ = lat.kl_losses(post, prior, free_bits=fb)
    assert torch.allclose(dyn, torch.full((4,), fb)) and torch.allclose(rep, torch.full((4,), fb))


# ------------------------------------------------------------------------------------------ codecs


def test_drama_image_codec_shapes():
    enc = ImageEncoder((64, 64, 3), (16, 32, 48, 64, 64), 5)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 48, 64, 64]
    assert [c.stride[0] for c in convs] == [1, 2, 2, 2, 2] and all(c.kernel_size == (5, 5) for c in convs)
    x = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    e = enc(x)
    assert enc.out_shape == (64, 4, 4) and e.shape == (2, 3, 1024)
    dec = ImageDecoder(1024, (64, 64, 3), (16, 32, 48, 64, 64), 5)
    assert dec(e).shape == (2, 3, 64, 64, 3)
    with pytest.raises(ValueError, match="image must end in shape"):
        enc(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))


def test_image_codec_first_stride_two_and_channels_last_match_plain_convs():
    torch.manual_seed(0)
    enc = ImageEncoder((64, 64, 3), (8, 16, 16, 16), 5, first_stride=2)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2] and enc.out_shape == (16, 4, 4)
    x = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    # Reference: the same weights applied with plain NCHW convs and a per-pixel channel LayerNorm.
    h = x.float().div(255).sub(0.5).permute(0, 3, 1, 2).contiguous()
    for conv, norm in zip(convs, [m for m in enc.modules() if isinstance(m, ChannelNorm)]):
        h = F.conv2d(h, conv.weight.contiguous(), stride=conv.stride, padding=conv.padding)
        h = F.layer_norm(h.permute(0, 2, 3, 1), (h.shape[1],), norm.norm.weight, norm.norm.bias, 1e-6)
        h = F.silu(h.permute(0, 3, 1, 2))
    assert torch.allclose(enc(x), h.reshape(3, -1), atol=1e-5)
    dec = ImageDecoder(256, (64, 64, 3), (8, 16, 16, 16), 5, first_stride=2)
    out = dec(torch.randn(2, 5, 256))
    assert out.shape == (2, 5, 64, 64, 3) and out.is_contiguous()
    with pytest.raises(ValueError, match="first_stride must be 1 or 2"):
        make_config("drama", "debug", action_dim=3, image_shape=(64, 64, 3), image={"first_stride": 3})
    with pytest.raises(ValueError, match="divisible by 16"):
        make_config("drama", "debug", action_dim=3, image_shape=(24, 24, 3), image={"first_stride": 2,
                                                                                     "channels": (4, 8, 8, 8)})


def test_drama_parameter_count():
    model = WorldModel(make_config("drama", "drama", action_dim=18), seed=0)
    counts = model.parameter_counts()
    print(f"drama world model, 18 actions: {model.num_parameters():,} parameters; parts {counts}")
    assert 6.8e6 < model.num_parameters() < 7.6e6  # Drama: ~7.2M
    assert 3.4e6 < counts["input_layer"] + counts["backbone"] < 4.0e6  # Drama: sequence model ~3.7M


# ------------------------------------------------------------------------------------------ backbones


class LoopDiag(nn.Module):
    """Stand-in SSM layer: h_t = sigmoid(a) * (1 - first_t) * h_{t-1} + b * x_t, y_t = c * h_t + x_t."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.a, self.b, self.c = (nn.Parameter(torch.randn(d)) for _ in range(3))
        self.d = d

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size, self.d, device=device)

    def step(self, x_t, first_t, state):
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t.device)
        if first_t is not None:
            state = state * (~first_t.bool()).float().unsqueeze(-1)
        h = torch.sigmoid(self.a) * state + self.b * x_t
        return self.c * h + x_t, h

    def forward(self, x, first=None, state=None):
        ys = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], None if first is None else first[:, t], state)
            ys.append(y)
        return torch.stack(ys, 1), state


def _backbones(d: int = 16):
    torch.manual_seed(0)
    out = {
        "standin-prenorm": SSMBackbone(SSMConfig(block="prenorm", n_layers=2), d, make_layer=lambda: LoopDiag(d)),
        "standin-s4wm": SSMBackbone(SSMConfig(block="s4wm", n_layers=1), d, make_layer=lambda: LoopDiag(d)),
        "gru": GRUBackbone(GRUConfig(), d),
        "transformer": TransformerBackbone(TransformerConfig(n_layers=2, n_heads=2, window=5, mlp_ratio=2), d),
    }
    small = dict(d_state=4, headdim=8, chunk_size=4)
    for layer, block in (("mamba2", "prenorm"), ("s4d", "s4wm"), ("s5", "s4wm"), ("mamba", "prenorm")):
        out[layer] = SSMBackbone(SSMConfig(layer=layer, block=block, n_layers=1, **small), d)
    return out


BACKBONES = _backbones()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_forward_equals_step_and_chunks(name):
    bb = BACKBONES[name].eval()
    b, l, d = 2, 12, 16
    g = torch.Generator().manual_seed(1)
    u = torch.randn(b, l, d, generator=g)
    first = torch.zeros(b, l, dtype=torch.bool)
    first[0, 0] = first[0, 5] = first[1, 9] = first[1, 10] = True
    with torch.no_grad():
        y, _ = bb(u, first, None)
        st, ys = None, []
        for t in range(l):
            y_t, st = bb.step(u[:, t], first[:, t], st)
            ys.append(y_t)
        assert torch.allclose(torch.stack(ys, 1), y, atol=1e-5), "step != forward"
        st, parts = None, []
        for lo, hi in ((0, 3), (3, 4), (4, 11), (11, 12)):
            y_c, st = bb(u[:, lo:hi], first[:, lo:hi], st)
            parts.append(y_c)
        assert torch.allclose(torch.cat(parts, 1), y, atol=1e-5), "chunked forward != forward"
        # a reset: steps from 5 on in row 0 equal a fresh run of those steps
        y_fresh, _ = bb(u[:1, 5:9], None, None)
        assert torch.allclose(y_fresh, y[:1, 5:9], atol=1e-5)


def test_ssm_layers_get_exactly_their_options_and_an_unknown_option_is_an_error(monkeypatch):
    """Each layer kind is built with its own SSMConfig fields, all of them reaching the layer; an option its class
    does not take is an error naming it (it used to be dropped silently)."""
    from ssmrl.world_models import backbones

    cfg = dict(d_state=4, expand=3, headdim=8, d_conv=3, chunk_size=5, backend="torch")
    expect = {"mamba2": ("d_state", "expand", "headdim", "d_conv", "chunk_size", "backend"),
              "mamba": ("d_state", "expand", "d_conv", "backend"), "s4d": ("d_state", "backend"),
              "s5": ("d_state", "backend")}
    for layer, names in expect.items():
        assert backbones.ssm_layer_options(SSMConfig(layer=layer, **cfg)) == {k: cfg[k] for k in names}
        built = backbones.ssm_layer_factory(SSMConfig(layer=layer, **cfg), 24)()
        assert built.d_state == 4 and built.backend == "torch"
    mamba2 = backbones.ssm_layer_factory(SSMConfig(layer="mamba2", **cfg), 24)()
    assert (mamba2.d_inner, mamba2.headdim, mamba2.d_conv, mamba2.chunk_size) == (72, 8, 3, 5)
    monkeypatch.setitem(backbones._SSM_LAYERS, "s4d", ("ssmrl.ssm.s4d", "S4D", ("d_state", "headdim")))
    with pytest.raises(TypeError, match="headdim"):
        SSMBackbone(SSMConfig(layer="s4d", block="s4wm", n_layers=1, **cfg), 24)
    with pytest.raises(ValueError, match="ssm.layer must be one of"):
        backbones.ssm_layer_options(SSMConfig(layer="lstm"))


def test_standin_prenorm_stack_matches_hand_composition():
    bb = BACKBONES["standin-prenorm"]
    u = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(2))
    x = u
    with torch.no_grad():
        for blk in bb.stack.blocks:
            x = x + blk.layer(blk.norm(x))[0]
        ref = bb.stack.norm(x)
        y, _ = bb(u)
    assert torch.allclose(y, ref, atol=1e-6)


def test_transformer_window_and_episode_mask():
    torch.manual_seed(0)
    bb = TransformerBackbone(TransformerConfig(n_layers=1, n_heads=2, window=5, mlp_ratio=2), 16).eval()
    g = torch.Generator().manual_seed(3)
    u = torch.randn(1, 12, 16, generator=g)
    with torch.no_grad():
        y, _ = bb(u)
        u2 = u.clone()
        u2[:, 3] = torch.randn(16, generator=g)  # one layer, window 5: token 3 is seen by tokens 3..7 only
        y2, _ = bb(u2)
        assert torch.allclose(y[:, :3], y2[:, :3]) and torch.allclose(y[:, 8:], y2[:, 8:], atol=1e-6)
        assert not torch.allclose(y[:, 7], y2[:, 7], atol=1e-4)
        first = torch.zeros(1, 12, dtype=torch.bool)
        first[0, 6] = True
        y3, _ = bb(u2, first)
        y4, _ = bb(u, first)
        assert torch.allclose(y3[:, 6:], y4[:, 6:], atol=1e-6)  # the reset hides token 3 from tokens 6, 7
        assert not torch.allclose(y3[:, 4:6], y4[:, 4:6], atol=1e-4)


# ------------------------------------------------------------------------------------------ configs and errors


def test_config_presets_overrides_round_trip():
    cfg = make_config("s5wm", "debug", action_dim=4, image_shape=None, vector_dim=7, **{"ssm.d_state": 8})
    assert cfg.ssm.layer == "s5" and cfg.ssm.block == "s4wm" and cfg.ssm.d_state == 8
    assert cfg.decoder_input == "hz" and cfg.posterior_input == "embed"
    assert config_from_dict(config_to_dict(cfg)) == cfg
    drama = make_config("drama", "drama", action_dim=18)
    assert (drama.d_model, drama.ssm.layer, drama.ssm.d_state, drama.ssm.headdim, drama.ssm.chunk_size) == (
        512, "mamba2", 16, 64, 256)
    assert (drama.latent.groups, drama.latent.classes, drama.heads.reward_bins) == (32, 32, 255)
    assert make_config("rssm", "debug", action_dim=2).backbone == "gru"
    with pytest.raises(ValueError, match="preset must be one of"):
        make_config("dreamer", "debug", action_dim=2)
    with pytest.raises(ValueError, match="size must be one of"):
        make_config("drama", "huge", action_dim=2)
    with pytest.raises(KeyError, match="ssm.d_stat"):
        make_config("drama", "debug", action_dim=2, **{"ssm.d_stat": 3})
    with pytest.raises(ValueError, match="image_shape"):
        make_config("drama", "debug", action_dim=2, image_shape=(10, 10, 3))
    with pytest.raises(ValueError, match="embed_h"):
        make_config("drama", "debug", action_dim=2, posterior_input="embed_h")


def test_bad_inputs_raise_clear_errors():
    model = WorldModel(make_config("rssm", "debug", action_dim=3, image_shape=None, vector_dim=2), seed=0)
    obs = {"vector": torch.zeros(2, 4, 2)}
    with pytest.raises(ValueError, match="action_dim=3"):
        model.observe(obs, torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 3\)"):
        model.observe(obs, torch.full((2, 4), 3))
    with pytest.raises(KeyError, match="'vector'"):
        model.observe({"image": torch.zeros(2, 4, 8, 8, 3)}, torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="first must have shape"):
        model.observe(obs, torch.zeros(2, 4, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(KeyError, match="'is_terminal'"):
        model.loss(dict(vector=obs["vector"], action=torch.zeros(2, 4, 3), reward=torch.zeros(2, 4),
                        is_first=torch.zeros(2, 4, dtype=torch.bool)))
    st = model.initial_state(2)
    with pytest.raises(ValueError, match="needs a policy or an actions"):
        model.imagine(None, st, 3)
    with pytest.raises(ValueError, match="policy must return"):
        model.imagine(lambda f: torch.zeros(2, 4), st, 3)
    with pytest.raises(ValueError, match="actions must have shape"):
        model.imagine(None, st, 3, actions=torch.zeros(2, 2, 3))


def test_decode_gives_uint8_images():
    model = WorldModel(make_config("s4wm", "debug", action_dim=2), seed=0)
    feat = torch.randn(2, 3, model.feat_dim)
    out = model.decode(feat)
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (2, 3, 16, 16, 3)
    raw = model.decoder(model.decoder_input(feat))["image"]
    assert torch.equal(out["image"], ((raw + 0.5).clamp(0, 1) * 255).round().to(torch.uint8))


def test_param_groups_exclude_ssm_parameters_from_weight_decay():
    model = WorldModel(make_config("drama", "debug", action_dim=2), seed=0)
    decay, no_decay = model.param_groups(1e-4)
    ids = {id(p) for p in no_decay["params"]}
    mamba = model.backbone.stack.blocks[0].layer
    assert {id(getattr(mamba, n)) for n in mamba.no_weight_decay()} <= ids
    assert id(mamba.in_proj.weight) in {id(p) for p in decay["params"]}
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_parameters()
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
