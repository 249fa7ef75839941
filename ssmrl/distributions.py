"""Distributions used by world models and actor-critics (DreamerV3 recipe).

- ``symlog`` / ``symexp``: the squashing pair ``symlog(x) = sign(x) log(1 + |x|)`` and its inverse.
- ``twohot_encode`` / ``TwoHot``: a categorical over fixed bins for scalar regression (rewards, values).
  Bins are spaced linearly in *symlog* space on ``[low, high]`` (DreamerV3 v1: 255 bins on [-20, 20]);
  a target x is encoded as the two-hot weights of ``symlog(x)`` and ``mean()`` returns
  ``symexp(sum_i p_i b_i)``.
- ``OneHotCategorical``: categorical over the last dimension with an optional uniform mix
  (``unimix = 0.01`` mixes 1% of the uniform distribution into the probabilities, DreamerV3/Drama) and
  straight-through samples (one-hot forward, gradient of the probabilities backward).
- ``BoundedNormal`` (DreamerV3's continuous actor: ``Normal(tanh(mu), std)``, ``std`` squashed into
  ``[min_std, max_std]``) and ``TanhNormal`` (squashed Gaussian with the log-det correction).

Every ``sample`` takes an optional ``torch.Generator`` so that runs are reproducible.
All distributions treat the *last* axis as the event axis: ``log_prob`` and ``entropy`` return the
leading shape (for ``OneHotCategorical`` of latents shaped ``(B, 32, 32)`` that is ``(B, 32)``; sum it
yourself).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "symlog",
    "symexp",
    "twohot_encode",
    "TwoHot",
    "OneHotCategorical",
    "BoundedNormal",
    "TanhNormal",
]


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``, elementwise."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) * (exp(|x|) - 1)``, elementwise."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def _check_bins(bins: Tensor) -> None:
    if bins.ndim != 1 or bins.numel() < 2:
        raise ValueError(f"bins: expected a 1-D tensor with at least 2 entries, got shape {tuple(bins.shape)}")


def twohot_encode(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot weights of ``x`` on sorted, 1-D ``bins``.

    x: (...,) values in the *same space as the bins* (apply ``symlog`` first for symlog bins).
    Returns (..., K) non-negative weights that sum to 1 with ``sum_i w_i b_i == clip(x, b_0, b_{K-1})``:
    the two bins around x share the mass in inverse proportion to their distance; values outside the
    range put all mass on the nearest edge bin.
    """
    _check_bins(bins)
    bins = bins.to(dtype=x.dtype, device=x.device)
    k = bins.numel()
    x = x.clamp(bins[0], bins[-1])
    # index of the lower neighbour: the last bin <= x, at most K-2 so that "above" exists
    below = (torch.searchsorted(bins, x.contiguous(), right=True) - 1).clamp(0, k - 2)
    above = below + 1
    b_lo, b_hi = bins[below], bins[above]
    w_hi = (x - b_lo) / (b_hi - b_lo)
    w_lo = 1.0 - w_hi
    out = torch.zeros(*x.shape, k, dtype=x.dtype, device=x.device)
    out.scatter_(-1, below.unsqueeze(-1), w_lo.unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


class TwoHot:
    """Categorical over symlog-spaced bins for scalar regression.

    logits: (..., K). ``low``/``high`` are the bin range in symlog space (values up to
    ``symexp(20) ~ 4.9e8`` in magnitude for the default range).
    """

    def __init__(self, logits: Tensor, low: float = -20.0, high: float = 20.0) -> None:
        if logits.ndim < 1 or logits.shape[-1] < 2:
            raise ValueError(f"logits: expected shape (..., K) with K >= 2, got {tuple(logits.shape)}")
        if not high > low:
            raise ValueError(f"high ({high}) must be greater than low ({low})")
        self.logits = logits
        self.bins = torch.linspace(low, high, logits.shape[-1], device=logits.device, dtype=torch.float32)

    @property
    def probs(self) -> Tensor:
        return torch.softmax(self.logits.float(), dim=-1)

    def mean(self) -> Tensor:
        """Expected value, in the original (symexp) space: (...,)."""
        return symexp((self.probs * self.bins).sum(-1))

    def mode(self) -> Tensor:
        return symexp(self.bins[self.logits.argmax(-1)])

    def log_prob(self, target: Tensor) -> Tensor:
        """Cross-entropy form ``sum_i twohot(symlog(target))_i log p_i``: target (...,) -> (...,)."""
        if target.shape != self.logits.shape[:-1]:
            raise ValueError(
                f"target: expected shape {tuple(self.logits.shape[:-1])}, got {tuple(target.shape)}"
            )
        weights = twohot_encode(symlog(target.float()), self.bins)
        return (weights * torch.log_softmax(self.logits.float(), dim=-1)).sum(-1)


class OneHotCategorical:
    """Categorical over the last axis with uniform mix and straight-through samples.

    logits: (..., K). With ``unimix > 0`` the probabilities are ``(1 - unimix) softmax(logits) + unimix / K``
    (this keeps log-probabilities and KL terms bounded). ``logits`` after construction are the log of the
    mixed probabilities.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0) -> None:
        if logits.ndim < 1 or logits.shape[-1] < 2:
            raise ValueError(f"logits: expected shape (..., K) with K >= 2, got {tuple(logits.shape)}")
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"unimix: expected a value in [0, 1), got {unimix}")
        logits = logits.float()
        if unimix > 0.0:
            k = logits.shape[-1]
            probs = (1.0 - unimix) * torch.softmax(logits, -1) + unimix / k
            self.probs = probs
            self.logits = torch.log(probs)
        else:
            self.logits = torch.log_softmax(logits, -1)
            self.probs = torch.exp(self.logits)
        self.unimix = unimix

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]

    def _straight_through(self, onehot: Tensor) -> Tensor:
        # (p - sg(p)) is exactly 0 in the forward pass, so the value stays an exact one-hot
        return onehot + (self.probs - self.probs.detach())

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One-hot sample (..., K) carrying the gradient of the probabilities (straight-through)."""
        flat = self.probs.detach().reshape(-1, self.num_classes)
        idx = torch.multinomial(flat, 1, generator=generator).reshape(self.probs.shape[:-1])
        onehot = F.one_hot(idx, self.num_classes).to(self.probs.dtype)
        return self._straight_through(onehot)

    def mode(self) -> Tensor:
        """One-hot argmax (..., K), straight-through like ``sample``."""
        onehot = F.one_hot(self.probs.argmax(-1), self.num_classes).to(self.probs.dtype)
        return self._straight_through(onehot)

    def log_prob(self, value: Tensor) -> Tensor:
        """value: one-hot (..., K) float or class indices (...,) long -> (...,)."""
        if value.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
            if value.shape != self.logits.shape[:-1]:
                raise ValueError(
                    f"value: expected indices of shape {tuple(self.logits.shape[:-1])}, got {tuple(value.shape)}"
                )
            return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)
        if value.shape != self.logits.shape:
            raise ValueError(f"value: expected one-hot of shape {tuple(self.logits.shape)}, got {tuple(value.shape)}")
        return (value.detach() * self.logits).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)

    def kl(self, other: "OneHotCategorical") -> Tensor:
        """KL(self || other) over the last axis: (...,)."""
        if other.logits.shape != self.logits.shape:
            raise ValueError(f"other: expected logits of shape {tuple(self.logits.shape)}, got {tuple(other.logits.shape)}")
        return (self.probs * (self.logits - other.logits)).sum(-1)


_LOG_2PI = math.log(2.0 * math.pi)


class BoundedNormal:
    """DreamerV3's continuous action distribution: ``Normal(tanh(mean), std)`` per dimension.

    mean, std_param: (..., A) raw network outputs; ``std = (max_std - min_std) sigmoid(std_param + 2) + min_std``.
    Samples are *not* clipped: imagination and the REINFORCE loss use the raw sample and its log-prob, and the
    action is clipped to [-1, 1] only where it reaches an environment (``DreamerPolicy``), as DreamerV3 does.
    (Clipping the sample and scoring the clipped value biases the score-function gradient near the bounds.)
    Log-prob and entropy sum over the action axis.
    """

    def __init__(self, mean: Tensor, std_param: Tensor, min_std: float = 0.1, max_std: float = 1.0) -> None:
        if mean.shape != std_param.shape:
            raise ValueError(f"std_param: expected shape {tuple(mean.shape)}, got {tuple(std_param.shape)}")
        if not 0.0 < min_std < max_std:
            raise ValueError(f"expected 0 < min_std < max_std, got min_std={min_std}, max_std={max_std}")
        self.loc = torch.tanh(mean.float())
        self.std = (max_std - min_std) * torch.sigmoid(std_param.float() + 2.0) + min_std

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + self.std * noise

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.rsample(generator).detach()

    def mode(self) -> Tensor:
        return self.loc

    def log_prob(self, value: Tensor) -> Tensor:
        if value.shape != self.loc.shape:
            raise ValueError(f"value: expected shape {tuple(self.loc.shape)}, got {tuple(value.shape)}")
        z = (value - self.loc) / self.std
        return (-0.5 * z * z - torch.log(self.std) - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * _LOG_2PI + torch.log(self.std)).sum(-1)


class TanhNormal:
    """Squashed Gaussian: ``a = tanh(u)``, ``u ~ Normal(mean, std)``, ``std = softplus(std_param) + min_std``.

    ``log_prob`` includes the change of variables ``- sum log(1 - a^2)``; the entropy has no closed form and
    is estimated from one reparameterised sample (pass the generator for reproducibility).
    """

    _EPS = 1e-6

    def __init__(self, mean: Tensor, std_param: Tensor, min_std: float = 0.1, max_std: float | None = None) -> None:
        if mean.shape != std_param.shape:
            raise ValueError(f"std_param: expected shape {tuple(mean.shape)}, got {tuple(std_param.shape)}")
        if not min_std > 0.0:
            raise ValueError(f"min_std: expected > 0, got {min_std}")
        self.loc = mean.float()
        std = F.softplus(std_param.float()) + min_std
        self.std = std if max_std is None else std.clamp(max=max_std)

    def _log_prob_pre(self, u: Tensor, a: Tensor) -> Tensor:
        z = (u - self.loc) / self.std
        base = -0.5 * z * z - torch.log(self.std) - 0.5 * _LOG_2PI
        return (base - torch.log1p(-a * a + self._EPS)).sum(-1)

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return torch.tanh(self.loc + self.std * noise)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.rsample(generator).detach()

    def mode(self) -> Tensor:
        return torch.tanh(self.loc)

    def log_prob(self, value: Tensor) -> Tensor:
        if value.shape != self.loc.shape:
            raise ValueError(f"value: expected shape {tuple(self.loc.shape)}, got {tuple(value.shape)}")
        a = value.clamp(-1.0 + self._EPS, 1.0 - self._EPS)
        return self._log_prob_pre(torch.atanh(a), a)

    def entropy(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        u = self.loc + self.std * noise
        return -self._log_prob_pre(u, torch.tanh(u))
