"""agents.dreamer actor-critic, optimiser and config against loops, formulas and tiny learning problems."""

import copy
import math

import numpy as np
import pytest
import torch

from agents.dreamer.actor_critic import (
    ActorCritic,
    ActorCriticLearner,
    PercentileNormalizer,
    continuation_weights,
    lambda_returns,
)
from agents.dreamer.config import ActorCriticConfig, OptimizerConfig
from ssmrl.optim import LaProp, build_optimizer, clip_grad_norm, linear_warmup


def small_cfg(**kw) -> ActorCriticConfig:
    opt = kw.pop("optimizer", OptimizerConfig(lr=1e-3, warmup_updates=0))
    base = dict(actor_layers=2, actor_units=32, critic_layers=2, critic_units=32, optimizer=opt)
    base.update(kw)
    return ActorCriticConfig(**base)


# ----------------------------------------------------------------------------------------------- returns


def loop_lambda_returns(r, c, v, gamma, lam):
    """Plain backward loop over the recursive definition, float64 numpy."""
    b, t = r.shape
    out = np.zeros((b, t))
    for i in range(b):
        nxt = v[i, t]  # R_T = v_T
        for k in reversed(range(t)):
            nxt = r[i, k] + gamma * c[i, k] * ((1 - lam) * v[i, k + 1] + lam * nxt)
            out[i, k] = nxt
    return out


@pytest.mark.parametrize("gamma,lam", [(0.985, 0.95), (0.9, 0.0), (1.0, 1.0), (0.7, 0.5)])
def test_lambda_returns_match_loop(gamma, lam):
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(4, 9)), rng.normal(size=(4, 10))
    c = rng.uniform(size=(4, 9))
    c[1, 3] = 0.0  # a hard termination
    got = lambda_returns(torch.tensor(r), torch.tensor(c), torch.tensor(v), gamma, lam)
    np.testing.assert_allclose(got.numpy(), loop_lambda_returns(r, c, v, gamma, lam), rtol=1e-12, atol=1e-12)


def test_lambda_returns_special_cases():
    rng = np.random.default_rng(1)
    r, v = torch.tensor(rng.normal(size=(2, 5))), torch.tensor(rng.normal(size=(2, 6)))
    ones = torch.ones(2, 5, dtype=torch.float64)
    # lambda = 1, gamma = 1: Monte Carlo sum of the remaining rewards plus the bootstrap value
    mc = torch.flip(torch.cumsum(torch.flip(r, [1]), 1), [1]) + v[:, -1:]
    torch.testing.assert_close(lambda_returns(r, ones, v, 1.0, 1.0), mc)
    # lambda = 0: one-step TD targets
    torch.testing.assert_close(lambda_returns(r, ones, v, 0.9, 0.0), r + 0.9 * v[:, 1:])
    with pytest.raises(ValueError, match="values"):
        lambda_returns(r, ones, v[:, :-1], 0.9, 0.9)


def test_continuation_weights_loop():
    c = torch.tensor([[1.0, 0.5, 0.0, 1.0], [0.9, 0.9, 0.9, 0.9]])
    w = continuation_weights(c)
    ref = torch.ones_like(c)
    for i in range(2):
        for t in range(1, 4):
            ref[i, t] = ref[i, t - 1] * c[i, t - 1]
    torch.testing.assert_close(w, ref)


# -------------------------------------------------------------------------------------- normaliser, EMA


def test_percentile_normalizer_matches_numpy_ema():
    norm = PercentileNormalizer(decay=0.99, low=0.05, high=0.95, floor=1.0)
    rng = np.random.default_rng(2)
    lo = hi = 0.0
    for k in range(5):
        x = rng.normal(loc=k, scale=30.0, size=(16, 15))
        norm.update(torch.tensor(x, dtype=torch.float32))
        lo = 0.99 * lo + 0.01 * np.percentile(x, 5)
        hi = 0.99 * hi + 0.01 * np.percentile(x, 95)
        assert abs(norm.low.item() - lo) < 1e-4 and abs(norm.high.item() - hi) < 1e-4
        assert abs(norm.scale().item() - max(1.0, hi - lo)) < 1e-4
    assert norm.scale().item() > 1.0  # spread of ~100 x 5% accumulated beyond the floor
    tiny = PercentileNormalizer()
    tiny.update(torch.linspace(0, 0.1, 50))
    assert tiny.scale().item() == 1.0  # floor


def test_slow_critic_ema_formula_and_learner_schedule():
    model = ActorCritic(6, 3, True, small_cfg(slow_critic_decay=0.98))
    for a, b in zip(model.critic.parameters(), model.slow_critic.parameters()):
        assert torch.equal(a, b)  # starts as a copy
    with torch.no_grad():
        for p in model.critic.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    old_slow = [p.clone() for p in model.slow_critic.parameters()]
    model.update_slow_critic()
    for s_new, s_old, f in zip(model.slow_critic.parameters(), old_slow, model.critic.parameters()):
        torch.testing.assert_close(s_new, 0.98 * s_old + 0.02 * f)
        assert not s_new.requires_grad
    # the learner steps the slow critic every `slow_critic_every` updates
    model = ActorCritic(6, 3, True, small_cfg(slow_critic_every=2))
    learner = ActorCriticLearner(model)
    batch = synthetic_batch(model, 4, 3, seed=0)
    init_slow = copy.deepcopy(model.slow_critic.state_dict())
    learner.train_step(*batch)
    for k, v in model.slow_critic.state_dict().items():
        assert torch.equal(v, init_slow[k]), k  # not moved at update 1
    before = copy.deepcopy(model.slow_critic.state_dict())
    fast_before = copy.deepcopy(model.critic.state_dict())
    learner.train_step(*batch)
    for k, v in model.slow_critic.state_dict().items():
        torch.testing.assert_close(v, 0.98 * before[k] + 0.02 * model.critic.state_dict()[k])
    assert any(not torch.equal(fast_before[k], v) for k, v in model.critic.state_dict().items())


# --------------------------------------------------------------------------------------------- optimiser


def test_laprop_two_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor(1.0))
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    opt = LaProp([p], lr=lr, betas=(b1, b2), eps=eps)
    grads = [2.0, -1.0]
    v = m = 0.0
    ref = 1.0
    for t, g in enumerate(grads, start=1):
        v = b2 * v + (1 - b2) * g * g
        u = g / (math.sqrt(v / (1 - b2**t)) + eps)
        m = b1 * m + (1 - b1) * u
        ref = ref - lr * m / (1 - b1**t)
        p.grad = torch.tensor(g)
        opt.step()
        assert abs(p.item() - ref) < 1e-6
    # step 1 by hand: v=0.004, vhat=4, u=1, m=0.1, mhat=1 -> 1 - 0.1 = 0.9
    # step 2: v=0.004996, vhat=0.004996/0.001999, u=-1/sqrt(vhat), m=0.09+0.1u, p=0.9-0.1 m/0.19
    vhat2 = 0.004996 / 0.001999
    m2 = 0.09 + 0.1 * (-1 / math.sqrt(vhat2))
    assert abs(p.item() - (0.9 - 0.1 * m2 / 0.19)) < 1e-5
    # differs from Adam on the same gradients (Adam's momentum is on raw gradients)
    q = torch.nn.Parameter(torch.tensor(1.0))
    adam = torch.optim.Adam([q], lr=lr, betas=(b1, b2), eps=eps)
    for g in grads:
        q.grad = torch.tensor(g)
        adam.step()
    assert abs(q.item() - p.item()) > 1e-3


def test_laprop_tiny_eps_first_step_is_sign():
    p = torch.nn.Parameter(torch.tensor([0.5, -2.0, 3.0, 0.0]))
    opt = LaProp([p], lr=0.01, eps=1e-20)
    p.grad = torch.tensor([1e-8, -3.0, 200.0, 0.0])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.49, -1.99, 2.99, 0.0]))


def test_linear_warmup_and_clip():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = LaProp([p], lr=1.0)
    sched = linear_warmup(opt, 4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    p.grad = torch.tensor([3.0, 4.0, 0.0])
    norm = clip_grad_norm([p], 1.0)
    assert abs(norm.item() - 5.0) < 1e-6
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8, 0.0]), rtol=1e-5, atol=1e-6)
    opt2, _ = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerConfig(name="adam"))
    assert isinstance(opt2, torch.optim.Adam) and opt2.param_groups[0]["eps"] == 1e-20


# ----------------------------------------------------------------------------------------- actor-critic


def synthetic_batch(model, b, t, seed, reward=None):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, t + 1, model.feature_dim, generator=g)
    with torch.no_grad():
        actions = model.act(feats[:, :-1], generator=g)
    rewards = torch.randn(b, t, generator=g) if reward is None else torch.full((b, t), float(reward))
    return feats, actions, rewards, torch.ones(b, t)


def test_loss_shapes_and_bad_inputs():
    model = ActorCritic(5, 4, True, small_cfg())
    f, a, r, c = synthetic_batch(model, 3, 6, seed=1)
    assert a.shape == (3, 6, 4) and torch.equal(a.sum(-1), torch.ones(3, 6))
    loss, metrics = model.loss(f, a, r, c)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"actor_loss", "critic_loss", "entropy", "return_scale"} <= set(metrics)
    # indices work like one-hot
    loss_idx, _ = model.loss(f, a.argmax(-1), r, c, update_stats=False)
    loss_oh, _ = model.loss(f, a, r, c, update_stats=False)
    torch.testing.assert_close(loss_idx, loss_oh)
    with pytest.raises(ValueError, match="rewards"):
        model.loss(f, a, r[:, :-1], c)
    with pytest.raises(ValueError, match="continues"):
        model.loss(f, a, r, c[:2])
    with pytest.raises(ValueError, match="actions"):
        model.loss(f, a[..., :3], r, c)
    with pytest.raises(ValueError, match="features"):
        model.loss(f[..., :4], a, r, c)
    with pytest.raises(ValueError, match="features"):
        model.act(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="action_dim"):
        ActorCritic(5, 1, True)


def test_initial_critic_predicts_zero():
    model = ActorCritic(5, 2, False, small_cfg())
    torch.testing.assert_close(model.value(torch.randn(4, 5, generator=torch.Generator().manual_seed(0))), torch.zeros(4))


def test_loss_ignores_everything_after_a_termination():
    model = ActorCritic(5, 3, True, small_cfg())
    f, a, r, c = synthetic_batch(model, 2, 6, seed=2)
    c[:, 2] = 0.0  # s_3 is terminal: steps t >= 3 get zero weight and R_2 does not bootstrap
    base, _ = model.loss(f, a, r, c, update_stats=False)
    f2, r2 = f.clone(), r.clone()
    f2[:, 4:] += 10.0
    r2[:, 3:] -= 5.0
    changed, _ = model.loss(f2, a, r2, c, update_stats=False)
    torch.testing.assert_close(base, changed)
    r3 = r.clone()
    r3[:, 2] += 1.0  # the terminal transition's reward does count
    other, _ = model.loss(f, a, r3, c, update_stats=False)
    assert not torch.allclose(base, other)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_actor_gradient_sign(sign):
    """Positive advantage for the taken action raises its probability after one step; negative lowers it."""
    cfg = small_cfg(entropy_coef=0.0, optimizer=OptimizerConfig(name="adam", lr=1e-2, warmup_updates=0))
    torch.manual_seed(0)  # nn.Linear default init
    model = ActorCritic(4, 3, True, cfg)
    learner = ActorCriticLearner(model)
    g = torch.Generator().manual_seed(3)
    f = torch.randn(8, 2, 4, generator=g)
    a = torch.zeros(8, 1, 3)
    a[..., 1] = 1.0  # always action 1
    r = torch.full((8, 1), sign)  # critic starts at 0, so the advantage has the sign of the reward
    with torch.no_grad():
        p0 = model.actor(f[:, :1]).probs[..., 1]
    learner.train_step(f, a, r, torch.ones(8, 1))
    with torch.no_grad():
        p1 = model.actor(f[:, :1]).probs[..., 1]
    assert ((p1 - p0) * sign > 0).all()


def test_contextual_bandit_learns_best_action():
    """Two actions; the rewarded one is given by the sign of feature 0. Learns in a few hundred updates."""
    cfg = small_cfg(optimizer=OptimizerConfig(lr=1e-3, warmup_updates=10))
    torch.manual_seed(0)
    model = ActorCritic(4, 2, True, cfg)
    learner = ActorCriticLearner(model)
    g = torch.Generator().manual_seed(4)
    for _ in range(300):
        f = torch.randn(64, 2, 4, generator=g)
        with torch.no_grad():
            a = model.act(f[:, :1], generator=g)
        best = (f[:, 0, 0] > 0).long()
        r = (a[:, 0].argmax(-1) == best).float().unsqueeze(1)
        learner.train_step(f, a, r, torch.ones(64, 1))
    test_f = torch.randn(512, 4, generator=g)
    with torch.no_grad():
        greedy = model.act(test_f, sample=False).argmax(-1)
    acc = (greedy == (test_f[:, 0] > 0).long()).float().mean().item()
    assert acc > 0.9, acc


def test_critic_converges_to_bootstrapped_fixed_point():
    """Constant reward 1, never terminating, gamma 0.5: every state's value is 1 / (1 - 0.5) = 2, which the
    critic can only reach by bootstrapping through its own (and the slow critic's) predictions."""
    cfg = small_cfg(gamma=0.5, lam=0.5, optimizer=OptimizerConfig(lr=3e-3, warmup_updates=0))
    torch.manual_seed(4)
    model = ActorCritic(4, 2, True, cfg)
    learner = ActorCriticLearner(model)
    g = torch.Generator().manual_seed(8)
    for _ in range(200):
        learner.train_step(*synthetic_batch(model, 32, 3, seed=int(torch.randint(0, 2**31, (1,), generator=g)), reward=1.0))
    with torch.no_grad():
        v = model.value(torch.randn(256, 4, generator=g))
        slow = model.value(torch.randn(256, 4, generator=g), slow=True)
    assert abs(v.mean().item() - 2.0) < 0.15, v.mean()
    assert abs(slow.mean().item() - 2.0) < 0.3, slow.mean()


@pytest.mark.parametrize("mode", ["reinforce", "backprop"])
def test_continuous_bandit_moves_mean_to_target(mode):
    """Reward -(a - 0.5)^2 per dim: the policy's mode moves to 0.5 with REINFORCE or dynamics backprop.

    max_std is lowered because with std ~ 0.9 the clipped-action objective is truly maximised near a = 1
    (clipping moves all mass beyond 1 onto reward -0.25), which is not what this test is about."""
    cfg = small_cfg(
        actor_grad_continuous=mode, max_std=0.3, min_std=0.05, optimizer=OptimizerConfig(lr=3e-3, warmup_updates=0)
    )
    torch.manual_seed(1)
    model = ActorCritic(3, 2, False, cfg)
    learner = ActorCriticLearner(model)
    g = torch.Generator().manual_seed(5)
    for _ in range(250):
        f = torch.randn(64, 2, 3, generator=g)
        if mode == "backprop":
            a = model.act(f[:, :1], generator=g)  # reparameterised: reward is differentiable in the actor
        else:
            with torch.no_grad():
                a = model.act(f[:, :1], generator=g)
        r = -((a - 0.5) ** 2).sum(-1)
        learner.train_step(f, a, r, torch.ones(64, 1))
    with torch.no_grad():
        mode_a = model.act(torch.randn(256, 3, generator=g), sample=False)
    assert (mode_a.mean(0) - 0.5).abs().max().item() < 0.15, mode_a.mean(0)


def test_backprop_actor_leaves_critic_grads_to_critic_loss():
    """In backprop mode the actor objective must not push gradients into the critic's parameters."""
    cfg = small_cfg(actor_grad_continuous="backprop", slow_reg_scale=0.0)
    torch.manual_seed(2)
    model = ActorCritic(3, 2, False, cfg)
    g = torch.Generator().manual_seed(6)
    f = torch.randn(4, 4, 3, generator=g, requires_grad=True)
    a = model.act(f[:, :-1].detach(), generator=g)
    r = -((a - 0.5) ** 2).sum(-1) + f[:, 1:, 0]
    c = torch.ones(4, 3)
    loss, _ = model.loss(f, a, r, c, update_stats=False)
    loss.backward()
    got = [p.grad.clone() for p in model.critic.parameters()]
    # reference: critic gradient of the critic loss alone (same targets, detached)
    model.zero_grad()
    with torch.no_grad():
        vals = model.value(f)
    returns = lambda_returns(r.detach(), c, vals, cfg.gamma, cfg.lam)
    head = model.critic(f[:, :-1].detach())
    (-(head.log_prob(returns)).mean()).backward()
    for a_, b_ in zip(got, model.critic.parameters()):
        torch.testing.assert_close(a_, b_.grad, rtol=1e-4, atol=1e-6)
    assert f.grad is not None and f.grad.abs().sum() > 0  # the actor objective reached the imagined features


def test_act_is_seeded_and_in_range():
    model = ActorCritic(5, 2, False, small_cfg())
    f = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a1 = model.act(f, generator=torch.Generator().manual_seed(9))
        a2 = model.act(f, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a1, a2) and a1.shape == (7, 2)
    # bounded_normal samples are raw (clipped only at the env, see DreamerPolicy); the mode is in range
    assert model.act(f, sample=False).abs().max() <= 1.0
    tanh_model = ActorCritic(5, 2, False, small_cfg(continuous_dist="tanh_normal"))
    f3, a3, r3, c3 = synthetic_batch(tanh_model, 2, 3, seed=7)
    loss, m = tanh_model.loss(f3, a3, r3, c3, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and torch.isfinite(m["entropy"])


def test_learner_state_dict_resumes_exactly():
    def run(learner, seeds):
        for s in seeds:
            learner.train_step(*synthetic_batch(learner.model, 4, 3, seed=s))

    torch.manual_seed(3)
    cfg = small_cfg(optimizer=OptimizerConfig(lr=1e-3, warmup_updates=5))
    a = ActorCriticLearner(ActorCritic(5, 3, True, cfg))
    run(a, [0, 1, 2])
    state = copy.deepcopy(a.state_dict())
    run(a, [3, 4])
    torch.manual_seed(123)  # a different initialisation, overwritten by the state
    b = ActorCriticLearner(ActorCritic(5, 3, True, cfg))
    b.load_state_dict(state)
    assert b.num_updates == 3 and b.optimizer.param_groups[0]["lr"] == pytest.approx(4e-3 / 5)
    run(b, [3, 4])
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    with pytest.raises(KeyError, match="num_updates"):
        b.load_state_dict({k: v for k, v in state.items() if k != "num_updates"})


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="gamma"):
        ActorCriticConfig(gamma=1.5)
    with pytest.raises(ValueError, match="continuous_dist"):
        ActorCriticConfig(continuous_dist="beta")
    with pytest.raises(ValueError, match="optimizer.name"):
        OptimizerConfig(name="sgd")
    with pytest.raises(ValueError, match="return_norm_low"):
        ActorCriticConfig(return_norm_low=0.9, return_norm_high=0.1)
    cfg = ActorCriticConfig(optimizer={"lr": 1e-4})
    assert isinstance(cfg.optimizer, OptimizerConfig) and cfg.optimizer.lr == 1e-4
    # defaults are Drama's
    d = ActorCriticConfig()
    assert (d.gamma, d.lam, d.entropy_coef, d.slow_critic_decay, d.num_bins) == (0.985, 0.95, 3e-4, 0.98, 255)
    assert (d.optimizer.lr, d.optimizer.eps, d.optimizer.warmup_updates, d.optimizer.grad_clip) == (4e-5, 1e-20, 1000, 100.0)


@pytest.mark.parametrize(
    "slow_reg_target,weighted,slow_target",
    [("return", True, False), ("value", False, False), ("return", False, True), ("value", True, True)],
)
def test_loss_matches_manual_composition(slow_reg_target, weighted, slow_target):
    """The full loss re-derived by hand: numpy returns and percentiles, unimix softmax, explicit two-hot NLL."""
    cfg = small_cfg(slow_reg_target=slow_reg_target, weight_by_continuation=weighted, slow_target=slow_target)
    torch.manual_seed(5)
    model = ActorCritic(4, 3, True, cfg)
    with torch.no_grad():  # make fast and slow critics differ and predict non-zero values
        for p in model.critic.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        model.update_slow_critic(decay=0.5)
        for p in model.critic.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel() + 1)))
    f, a, r, _ = synthetic_batch(model, 5, 4, seed=9)
    r = r * 3.0
    c = torch.rand(5, 4, generator=torch.Generator().manual_seed(10))
    model.return_norm.low.fill_(-3.0)  # earlier statistics, so that the scale is above its floor of 1
    model.return_norm.high.fill_(4.0)
    loss, _ = model.loss(f, a, r, c)

    bins = np.linspace(-20, 20, 255)

    def mean_of(logits):
        p = torch.softmax(logits.double(), -1).numpy()
        x = (p * bins).sum(-1)
        return np.sign(x) * np.expm1(np.abs(x))

    def nll(logits, target):
        logsm = torch.log_softmax(logits.double(), -1).numpy()
        out = np.zeros(target.shape)
        for idx in np.ndindex(target.shape):
            y = float(np.clip(np.sign(target[idx]) * np.log1p(abs(target[idx])), -20, 20))
            k = min(int(np.searchsorted(bins, y, side="right") - 1), 253)
            frac = (y - bins[k]) / (bins[k + 1] - bins[k])
            out[idx] = -((1 - frac) * logsm[idx + (k,)] + frac * logsm[idx + (k + 1,)])
        return out

    with torch.no_grad():
        crit_logits, slow_logits = model.critic.net(f), model.slow_critic.net(f)
        actor_logits = model.actor.net(f[:, :-1])
    rn, cn = r.double().numpy(), c.double().numpy()
    v, vs = mean_of(crit_logits), mean_of(slow_logits)
    ret = loop_lambda_returns(rn, cn, vs if slow_target else v, 0.985, 0.95)
    lo, hi = 0.99 * -3.0 + 0.01 * np.percentile(ret, 5), 0.99 * 4.0 + 0.01 * np.percentile(ret, 95)
    scale = max(1.0, hi - lo)
    sm = torch.softmax(actor_logits.double(), -1).numpy()
    probs = 0.99 * sm + 0.01 / 3
    logp = np.log((probs * a.double().numpy()).sum(-1))
    ent = -(probs * np.log(probs)).sum(-1)
    w = np.ones_like(rn)
    if weighted:
        for t in range(1, 4):
            w[:, t] = w[:, t - 1] * cn[:, t - 1]
    actor = -(w * (logp * (ret - v[:, :-1]) / scale + 3e-4 * ent)).mean()
    reg = loop_lambda_returns(rn, cn, vs, 0.985, 0.95) if slow_reg_target == "return" else vs[:, :-1]
    critic = (w * (nll(crit_logits[:, :-1], ret) + nll(crit_logits[:, :-1], reg))).mean()
    assert scale > 1.0
    assert abs(loss.item() - (actor + critic)) < 1e-5 * max(1.0, abs(actor + critic))


def test_laprop_foreach_equals_the_per_parameter_loop_exactly():
    """The multi-tensor step and the reference loop give the same bits, with weight decay, several shapes,
    a parameter without a gradient and parameters at different step counts."""
    g = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,), (2, 3, 4)]
    models = []
    for foreach in (True, False):
        params = [torch.nn.Parameter(torch.randn(s, generator=torch.Generator().manual_seed(i))) for i, s in enumerate(shapes)]
        idle = torch.nn.Parameter(torch.ones(3))
        opt = LaProp([{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:] + [idle]}], lr=0.01,
                     eps=1e-8, foreach=foreach)
        models.append((params, idle, opt))
    for step in range(6):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for params, _idle, opt in models:
            for i, (p, gr) in enumerate(zip(params, grads)):
                p.grad = None if (i == 1 and step == 2) else gr.clone()  # one parameter skips a step
            opt.step()
    (fast, idle_fast, _), (ref, idle_ref, _) = models
    for a, b in zip(fast, ref):
        assert torch.equal(a, b)
    assert torch.equal(idle_fast, torch.ones(3)) and torch.equal(idle_ref, torch.ones(3))
