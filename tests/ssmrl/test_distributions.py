"""ssmrl.distributions against formulas, numpy loops and torch.distributions."""

import math

import numpy as np
import pytest
import torch

from ssmrl.distributions import (
    BoundedNormal,
    OneHotCategorical,
    TanhNormal,
    TwoHot,
    symexp,
    symlog,
    twohot_encode,
)


def test_symlog_formula_and_symexp_inverse():
    x = torch.tensor([-1e6, -123.4, -1.0, -1e-3, 0.0, 1e-3, 0.5, 7.0, 1e6], dtype=torch.float64)
    expected = np.sign(x.numpy()) * np.log(1.0 + np.abs(x.numpy()))
    np.testing.assert_allclose(symlog(x).numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-10, atol=1e-12)
    y = torch.linspace(-20, 20, 101, dtype=torch.float64)
    torch.testing.assert_close(symlog(symexp(y)), y, rtol=1e-10, atol=1e-12)


def _bins(k=255, low=-20.0, high=20.0):
    return torch.linspace(low, high, k, dtype=torch.float64)


def test_twohot_encode_weights_and_reconstruction():
    bins = _bins()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1000, generator=g, dtype=torch.float64) * 40 - 20)
    w = twohot_encode(x, bins)
    assert w.shape == (1000, 255)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(1000, dtype=torch.float64))
    torch.testing.assert_close((w * bins).sum(-1), x, rtol=0, atol=1e-12)
    # at most two non-zero entries, and they are neighbours bracketing x
    nz = (w > 0).sum(-1)
    assert (nz <= 2).all()
    for i in range(0, 1000, 97):
        idx = torch.nonzero(w[i]).flatten().tolist()
        assert bins[idx[0]] <= x[i] <= bins[idx[-1]]
        assert idx[-1] - idx[0] <= 1


def test_twohot_encode_clips_at_edges_and_hits_bins_exactly():
    bins = _bins(5, -2.0, 2.0)  # -2, -1, 0, 1, 2
    w = twohot_encode(torch.tensor([-100.0, -2.0, -0.25, 1.0, 2.0, 7.0], dtype=torch.float64), bins)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 0.25, 0.75, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(w, expected)


def test_twohot_mean_recovers_encoded_value_and_clips():
    x = torch.tensor([-3000.0, -3.3, -0.01, 0.0, 0.5, 7.0, 12345.0])
    bins = torch.linspace(-20.0, 20.0, 255)
    logits = torch.log(twohot_encode(symlog(x), bins))  # -inf outside the two bins: softmax gives the weights back
    dist = TwoHot(logits)
    torch.testing.assert_close(dist.mean(), x, rtol=1e-5, atol=1e-6)
    # beyond symexp(20) everything collapses onto the last bin
    big = torch.tensor([1e12, -1e12])
    clipped = TwoHot(torch.log(twohot_encode(symlog(big), bins))).mean()
    edge = symexp(torch.tensor(20.0))
    torch.testing.assert_close(clipped, torch.stack([edge, -edge]), rtol=1e-5, atol=0)


def test_twohot_log_prob_is_cross_entropy_against_loop():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 255, generator=g)
    target = torch.randn(3, 4, generator=g) * 50
    lp = TwoHot(logits).log_prob(target)
    bins = np.linspace(-20, 20, 255)
    logsm = torch.log_softmax(logits.double(), -1).numpy()
    for i in range(3):
        for j in range(4):
            t = float(target[i, j])
            y = math.copysign(math.log1p(abs(t)), t)
            k = int(np.searchsorted(bins, y, side="right") - 1)
            frac = (y - bins[k]) / (bins[k + 1] - bins[k])
            ref = (1 - frac) * logsm[i, j, k] + frac * logsm[i, j, k + 1]
            assert abs(lp[i, j].item() - ref) < 1e-4


def test_twohot_rejects_bad_shapes():
    with pytest.raises(ValueError, match="target"):
        TwoHot(torch.zeros(2, 255)).log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="logits"):
        TwoHot(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="bins"):
        twohot_encode(torch.zeros(2), torch.zeros(1))


def test_unimix_probabilities_entropy_and_kl_against_formula():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 6, generator=g) * 3
    d = OneHotCategorical(logits, unimix=0.01)
    z = logits.double().numpy()
    sm = np.exp(z - z.max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    p = 0.99 * sm + 0.01 / 6
    np.testing.assert_allclose(d.probs.double().numpy(), p, rtol=1e-5)
    np.testing.assert_allclose(d.entropy().double().numpy(), -(p * np.log(p)).sum(-1), rtol=1e-5)
    assert (d.probs >= 0.01 / 6 - 1e-7).all()
    other_logits = torch.randn(5, 6, generator=g)
    q_d = OneHotCategorical(other_logits, unimix=0.01)
    zq = other_logits.double().numpy()
    q = np.exp(zq - zq.max(-1, keepdims=True))
    q = 0.99 * q / q.sum(-1, keepdims=True) + 0.01 / 6
    np.testing.assert_allclose(d.kl(q_d).double().numpy(), (p * np.log(p / q)).sum(-1), rtol=1e-4, atol=1e-6)


def test_onehot_log_prob_indices_equal_onehot_and_match_probs():
    g = torch.Generator().manual_seed(3)
    d = OneHotCategorical(torch.randn(4, 7, 5, generator=g), unimix=0.01)
    idx = torch.randint(0, 5, (4, 7), generator=g)
    onehot = torch.nn.functional.one_hot(idx, 5).float()
    torch.testing.assert_close(d.log_prob(idx), d.log_prob(onehot))
    torch.testing.assert_close(d.log_prob(idx).exp(), d.probs.gather(-1, idx.unsqueeze(-1)).squeeze(-1))
    with pytest.raises(ValueError, match="value"):
        d.log_prob(torch.zeros(4, 7, 4))


def test_onehot_sample_frequencies_seeded_and_straight_through():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]], requires_grad=True)
    d = OneHotCategorical(logits.expand(20000, 4), unimix=0.01)
    s1 = d.sample(torch.Generator().manual_seed(4))
    s2 = d.sample(torch.Generator().manual_seed(4))
    assert torch.equal(s1, s2)
    hard = s1.detach()
    assert torch.equal(hard.sum(-1), torch.ones(20000)) and set(hard.unique().tolist()) <= {0.0, 1.0}
    freq = hard.mean(0)
    torch.testing.assert_close(freq, d.probs[0].detach(), atol=0.015, rtol=0)
    # straight-through: the gradient of sample . w equals that of probs . w
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    (s1[:5] * w).sum().backward(retain_graph=True)
    g_sample = logits.grad.clone()
    logits.grad = None
    (d.probs[:5] * w).sum().backward()
    torch.testing.assert_close(g_sample, logits.grad)


def test_onehot_bad_arguments():
    with pytest.raises(ValueError, match="unimix"):
        OneHotCategorical(torch.zeros(3), unimix=1.0)
    with pytest.raises(ValueError, match="logits"):
        OneHotCategorical(torch.zeros(3, 1))


def test_bounded_normal_against_torch_normal():
    g = torch.Generator().manual_seed(5)
    mean, sp = torch.randn(6, 3, generator=g) * 2, torch.randn(6, 3, generator=g) * 3
    d = BoundedNormal(mean, sp, min_std=0.1, max_std=1.0)
    std = 0.9 * torch.sigmoid(sp + 2.0) + 0.1
    ref = torch.distributions.Normal(torch.tanh(mean), std)
    assert (d.std >= 0.1).all() and (d.std <= 1.0).all()
    a = torch.rand(6, 3, generator=g) * 2 - 1
    torch.testing.assert_close(d.log_prob(a), ref.log_prob(a).sum(-1))
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1))
    s = d.sample(torch.Generator().manual_seed(0))
    assert torch.equal(s, d.sample(torch.Generator().manual_seed(0)))
    torch.testing.assert_close(d.mode(), torch.tanh(mean))


def test_bounded_normal_reinforce_gradient_is_unbiased_near_the_bound():
    """E[f(clip(a)) d log pi(a) / d mean] (the REINFORCE estimator with the env clipping the action) equals the
    gradient of E[f(clip(a))], computed independently by quadrature and a finite difference.
    At loc 0.905, std 0.89 a third of the samples fall beyond +1: clipping the sample before scoring it
    (the old behaviour) gave about a quarter of the true gradient."""
    import math

    loc, std = 0.905, 0.89
    mean = torch.tensor([math.atanh(loc)], dtype=torch.float64, requires_grad=True)
    std_param = torch.tensor([math.log((std - 0.1) / (1.0 - std)) - 2.0], dtype=torch.float64)
    f = lambda a: a.clamp(-1.0, 1.0) ** 2 + a.clamp(-1.0, 1.0)  # noqa: E731  (reward of the executed action)

    def expected(mu: float) -> float:  # E[f(clip(a))], a ~ N(mu, std), trapezoid over +-10 std
        a = torch.linspace(mu - 10 * std, mu + 10 * std, 200_001, dtype=torch.float64)
        pdf = torch.exp(-0.5 * ((a - mu) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        return float(torch.trapezoid(f(a) * pdf, a))

    h = 1e-4
    true_dloc = (expected(loc + h) - expected(loc - h)) / (2 * h)
    true_dmean = true_dloc * (1 - loc**2)  # loc = tanh(mean)

    n = 400_000
    d = BoundedNormal(mean.expand(n, 1), std_param.expand(n, 1), min_std=0.1, max_std=1.0)
    a = d.sample(torch.Generator().manual_seed(0))
    weights = f(a[:, 0]).detach()
    logp = d.log_prob(a)
    (grad,) = torch.autograd.grad((weights * logp).mean(), mean)
    # per-sample terms for the standard error (score of mean is linear in the sample)
    score = (a[:, 0] - loc) / std**2 * (1 - loc**2)
    estimate_terms = weights * score
    se = float(estimate_terms.std() / math.sqrt(n))
    assert abs(float(grad) - float(estimate_terms.mean())) < 1e-5  # autograd = the closed-form score
    assert abs(float(grad) - true_dmean) < 4 * se, (float(grad), true_dmean, se)


def test_tanh_normal_against_torch_transformed():
    g = torch.Generator().manual_seed(6)
    mean, sp = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    d = TanhNormal(mean, sp, min_std=0.1)
    std = torch.nn.functional.softplus(sp) + 0.1
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std), [torch.distributions.TanhTransform()]
    )
    a = torch.rand(8, 2, generator=g) * 1.8 - 0.9
    torch.testing.assert_close(d.log_prob(a), ref.log_prob(a).sum(-1), rtol=1e-4, atol=1e-4)
    s = d.sample(torch.Generator().manual_seed(1))
    assert s.abs().max() < 1.0
    # the one-sample entropy estimate averages to -E[log p]
    big = TanhNormal(mean[:1].expand(20000, 2), sp[:1].expand(20000, 2), min_std=0.1)
    est = big.entropy(torch.Generator().manual_seed(2)).mean()
    ref1 = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean[0], std[0]), [torch.distributions.TanhTransform(cache_size=1)]
    )
    u = mean[0] + std[0] * torch.randn(20000, 2, generator=torch.Generator().manual_seed(3))
    ref_ent = -ref1.log_prob(torch.tanh(u)).sum(-1).mean()
    assert abs(est.item() - ref_ent.item()) < 0.05
    assert math.isfinite(est.item())
