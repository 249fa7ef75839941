"""Imagination actor-critic (DreamerV3 recipe with Drama's constants).

It consumes plain tensors from any world model's ``imagine``; nothing here knows about the world model.

Layout (batch first, as everywhere in the project), for an imagined trajectory of horizon T:

    features  (B, T+1, F)   concat(z, h) of the start state s_0 and the T imagined states s_1..s_T
    actions   (B, T, ...)   a_t taken in s_t (t < T): one-hot (B, T, K) float or indices (B, T) long for
                            discrete actions, (B, T, A) in [-1, 1] for continuous ones
    rewards   (B, T)        rewards[:, t] = reward of the transition s_t -> s_{t+1} (the reward head on s_{t+1})
    continues (B, T)        continues[:, t] = probability that s_{t+1} is not terminal (the continue head on
                            s_{t+1}, or 1 - termination); may be soft

Lambda-returns (bootstrapped with the critic's value v_T of the last state):

    R_T = v_T,   R_t = rewards_t + gamma continues_t ((1 - lambda) v_{t+1} + lambda R_{t+1})

Losses, each averaged over (B, T) with the stop-gradient weights w_t = prod_{k<t} continues_k (the chance that
s_t is reached before a termination; w_0 = 1; ``weight_by_continuation=False`` uses w_t = 1 like Drama):

- critic: two-hot NLL of R_t under the critic at s_t, plus ``slow_reg_scale`` x the NLL of a slow-critic
  target: with ``slow_reg_target="return"`` (default, Drama/STORM) the lambda-return bootstrapped with the
  slow (EMA) critic's values, with ``"value"`` (DreamerV3) the slow critic's mean at s_t. R_t comes from the
  fast critic's values (stop-gradient) or, with ``slow_target=True``, from the slow critic's.
  (Drama's public ``calc_lambda_return`` bootstraps with v_t instead of v_{t+1}; this module follows the
  definition above.)
- actor, discrete (and continuous by default): REINFORCE, ``-(log pi(a_t|s_t) sg((R_t - v_t) / S))`` with
  ``S = max(1, EMA(P95(R)) - EMA(P5(R)))``, minus ``entropy_coef`` x entropy.
- actor, continuous with ``actor_grad_continuous="backprop"``: ``-R_t / S`` with R_t differentiable through
  the imagined rewards/continues/features (the world model must keep the graph and sample actions with
  ``act(..., sample=True)``, which reparameterises); the critic used inside R_t is evaluated with frozen
  parameters so the actor loss never moves it. Default is REINFORCE for both action kinds (final DreamerV3),
  because it works with any world model without backpropagating through the imagination.

The slow critic is updated by :meth:`ActorCritic.update_slow_critic` (``slow = d slow + (1 - d) fast``,
d = 0.98), which :class:`ActorCriticLearner` calls every ``slow_critic_every`` optimiser steps.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ssmrl.distributions import BoundedNormal, OneHotCategorical, TanhNormal, TwoHot

from .config import ActorCriticConfig
from ssmrl.optim import build_optimizer, clip_grad_norm
from ssmrl.world_models.networks import mlp_layers

__all__ = [
    "mlp",
    "lambda_returns",
    "continuation_weights",
    "PercentileNormalizer",
    "Actor",
    "Critic",
    "ActorCritic",
    "ActorCriticLearner",
]


def mlp(in_dim: int, units: int, layers: int, out_dim: int) -> nn.Sequential:
    """``layers`` x (Linear -> LayerNorm -> SiLU), then a Linear to ``out_dim`` (DreamerV3's MLP): the world
    model's stack (:func:`mlp_layers`) with torch's default LayerNorm eps (1e-5, where the world model uses
    1e-6), flat in one ``nn.Sequential`` (parameter names ``0.weight``, ``1.weight``, ...)."""
    return nn.Sequential(*mlp_layers(in_dim, units, layers, nn.LayerNorm), nn.Linear(units if layers else in_dim, out_dim))


def lambda_returns(rewards: Tensor, continues: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns. rewards, continues: (B, T); values: (B, T+1) -> returns (B, T).

    ``R_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam R_{t+1})`` with ``R_T = v_T``.
    """
    if rewards.ndim != 2:
        raise ValueError(f"rewards: expected shape (B, T), got {tuple(rewards.shape)}")
    if continues.shape != rewards.shape:
        raise ValueError(f"continues: expected shape {tuple(rewards.shape)}, got {tuple(continues.shape)}")
    b, t = rewards.shape
    if values.shape != (b, t + 1):
        raise ValueError(f"values: expected shape {(b, t + 1)}, got {tuple(values.shape)}")
    disc = gamma * continues
    # the part of each target that does not depend on R_{t+1}; unbind keeps backward cheap (no indexing)
    base = rewards + disc * (1.0 - lam) * values[:, 1:]
    out = []
    ret = values[:, -1]
    for base_t, disc_t in zip(reversed(base.unbind(1)), reversed(disc.unbind(1))):
        ret = base_t + disc_t * lam * ret
        out.append(ret)
    return torch.stack(out[::-1], dim=1)


def continuation_weights(continues: Tensor) -> Tensor:
    """continues (B, T) -> weights (B, T) with w_0 = 1 and w_t = prod_{k<t} continues_k (no gradient)."""
    c = continues.detach()
    ones = torch.ones_like(c[:, :1])
    return torch.cumprod(torch.cat([ones, c[:, :-1]], dim=1), dim=1)


class PercentileNormalizer(nn.Module):
    """EMA of the low/high percentiles of a batch of returns; ``scale() = max(floor, high - low)``.

    Both EMAs start at 0 and are not bias-corrected (DreamerV3/Drama): ``low <- d low + (1 - d) P_low(x)``.
    The statistics are buffers, so they travel with ``state_dict`` (exact resume).
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, floor: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a value in [0, 1), got {decay}")
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"expected 0 <= low < high <= 1, got low={low}, high={high}")
        self.decay, self.q_low, self.q_high, self.floor = decay, low, high, floor
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        # the quantile levels live on the module's device (no host-to-device copy per update); not saved
        self.register_buffer("levels", torch.tensor([low, high]), persistent=False)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """x: any shape; the percentiles are taken over all its elements (linear interpolation, numpy's default)."""
        flat = x.detach().reshape(-1).float()
        if flat.numel() == 0:
            raise ValueError("x: expected at least one element")
        q = torch.quantile(flat, self.levels.to(flat.dtype))
        self.low.mul_(self.decay).add_((1.0 - self.decay) * q[0])
        self.high.mul_(self.decay).add_((1.0 - self.decay) * q[1])

    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=self.floor)


class Actor(nn.Module):
    """Policy head. features (..., F) -> a distribution over actions with leading shape (...)."""

    def __init__(self, feature_dim: int, action_dim: int, discrete: bool, cfg: ActorCriticConfig) -> None:
        super().__init__()
        self.discrete, self.action_dim, self.cfg = discrete, action_dim, cfg
        out = action_dim if discrete else 2 * action_dim
        self.net = mlp(feature_dim, cfg.actor_units, cfg.actor_layers, out)
        # tiny output layer (Drama initialises it with std 1e-3): the first policy is ~uniform / ~N(0, 0.89)
        with torch.no_grad():
            self.net[-1].weight.mul_(1e-2)
            self.net[-1].bias.zero_()

    def forward(self, features: Tensor) -> OneHotCategorical | BoundedNormal | TanhNormal:
        out = self.net(features)
        if self.discrete:
            return OneHotCategorical(out, unimix=self.cfg.unimix)
        mean, std_param = out.chunk(2, dim=-1)
        if self.cfg.continuous_dist == "bounded_normal":
            return BoundedNormal(mean, std_param, self.cfg.min_std, self.cfg.max_std)
        return TanhNormal(mean, std_param, self.cfg.min_std, self.cfg.max_std)


class Critic(nn.Module):
    """Value head. features (..., F) -> TwoHot over ``num_bins`` symlog bins; output layer zero-initialised
    (DreamerV3) so the first predictions are exactly 0."""

    def __init__(self, feature_dim: int, cfg: ActorCriticConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = mlp(feature_dim, cfg.critic_units, cfg.critic_layers, cfg.num_bins)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: Tensor) -> TwoHot:
        return TwoHot(self.net(features), self.cfg.bins_low, self.cfg.bins_high)


class ActorCritic(nn.Module):
    """Actor, critic, slow EMA critic and the return normaliser.

    feature_dim: F of concat(z, h); action_dim: number of actions (discrete) or action dimensions (continuous).
    """

    def __init__(
        self, feature_dim: int, action_dim: int, discrete: bool, cfg: ActorCriticConfig | None = None
    ) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else ActorCriticConfig()
        if feature_dim < 1:
            raise ValueError(f"feature_dim: expected >= 1, got {feature_dim}")
        if action_dim < (2 if discrete else 1):
            raise ValueError(f"action_dim: expected >= {2 if discrete else 1} for discrete={discrete}, got {action_dim}")
        self.cfg, self.feature_dim, self.action_dim, self.discrete = cfg, feature_dim, action_dim, discrete
        self.actor = Actor(feature_dim, action_dim, discrete, cfg)
        self.critic = Critic(feature_dim, cfg)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_norm = PercentileNormalizer(
            cfg.return_norm_decay, cfg.return_norm_low, cfg.return_norm_high, cfg.return_norm_max
        )

    @property
    def backprop_actor(self) -> bool:
        return (not self.discrete) and self.cfg.actor_grad_continuous == "backprop"

    def act(self, features: Tensor, sample: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """features (..., F) -> action (..., K) one-hot float (discrete; take ``argmax(-1)`` for the env) or
        (..., A) in [-1, 1] (continuous). ``sample=False`` gives the mode. Keeps the autograd graph (straight-
        through / reparameterised) for backprop through imagination: wrap in ``torch.no_grad()`` to act in an env."""
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"features: expected last dim {self.feature_dim}, got shape {tuple(features.shape)}")
        dist = self.actor(features)
        if not sample:
            return dist.mode()
        return dist.sample(generator) if self.discrete else dist.rsample(generator)

    def value(self, features: Tensor, slow: bool = False) -> Tensor:
        """features (..., F) -> expected return (...,) of the fast (or slow) critic."""
        return (self.slow_critic if slow else self.critic)(features).mean()

    @torch.no_grad()
    def update_slow_critic(self, decay: float | None = None) -> None:
        """slow <- decay * slow + (1 - decay) * fast, for every parameter and floating buffer."""
        d = self.cfg.slow_critic_decay if decay is None else decay
        fast = dict(self.critic.named_parameters()) | dict(self.critic.named_buffers())
        for name, t in list(self.slow_critic.named_parameters()) + list(self.slow_critic.named_buffers()):
            if t.is_floating_point():
                t.lerp_(fast[name], 1.0 - d)
            else:
                t.copy_(fast[name])

    def _check_inputs(self, features: Tensor, actions: Tensor, rewards: Tensor, continues: Tensor) -> None:
        if features.ndim != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"features: expected shape (B, T+1, {self.feature_dim}), got {tuple(features.shape)}")
        b, t1, _ = features.shape
        if t1 < 2:
            raise ValueError(f"features: expected at least 2 time steps (T+1 with T >= 1), got {t1}")
        t = t1 - 1
        if rewards.shape != (b, t):
            raise ValueError(f"rewards: expected shape {(b, t)} (B, T), got {tuple(rewards.shape)}")
        if continues.shape != (b, t):
            raise ValueError(f"continues: expected shape {(b, t)} (B, T), got {tuple(continues.shape)}")
        if self.discrete:
            ok = actions.shape == (b, t, self.action_dim) or (actions.shape == (b, t) and not actions.is_floating_point())
            want = f"one-hot {(b, t, self.action_dim)} or long indices {(b, t)}"
        else:
            ok = actions.shape == (b, t, self.action_dim)
            want = f"{(b, t, self.action_dim)}"
        if not ok:
            raise ValueError(f"actions: expected {want}, got {tuple(actions.shape)} ({actions.dtype})")

    def loss(
        self,
        features: Tensor,
        actions: Tensor,
        rewards: Tensor,
        continues: Tensor,
        update_stats: bool = True,
        generator: torch.Generator | None = None,
        start_weights: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Actor + critic loss on one imagined batch (shapes in the module docstring).

        update_stats: advance the return-percentile EMA with this batch's returns (before normalising, as
        DreamerV3). generator: only used for the sampled entropy estimate of ``tanh_normal``.
        start_weights: (B,) multiplies every step's weight of a trajectory (DreamerV3 weights step 0 by the
        start state's continue flag, so a start on a terminal step counts 0); None: all 1.
        Returns (scalar loss, metrics of detached scalar tensors; call ``.item()`` when logging).
        """
        self._check_inputs(features, actions, rewards, continues)
        cfg = self.cfg
        feats = features.detach()
        crit_logits = self.critic.net(feats)  # (B, T+1, K)
        values = TwoHot(crit_logits, cfg.bins_low, cfg.bins_high).mean()  # (B, T+1)
        with torch.no_grad():
            slow_values = self.slow_critic(feats).mean()
        weights = continuation_weights(continues) if cfg.weight_by_continuation else torch.ones_like(rewards)
        if start_weights is not None:
            if start_weights.shape != rewards.shape[:1]:
                raise ValueError(f"start_weights: expected shape {tuple(rewards.shape[:1])} (B,), "
                                 f"got {tuple(start_weights.shape)}")
            weights = weights * start_weights.detach().to(weights.dtype).unsqueeze(1)

        if self.backprop_actor:
            # critic evaluated on the differentiable features but with frozen parameters
            if cfg.slow_target:
                boot = self.slow_critic(features).mean()
            else:
                frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
                boot = functional_call(self.critic, frozen, (features,)).mean()
            returns = lambda_returns(rewards, continues, boot, cfg.gamma, cfg.lam)
        else:
            boot = slow_values if cfg.slow_target else values.detach()
            returns = lambda_returns(rewards.detach(), continues.detach(), boot, cfg.gamma, cfg.lam)
        returns_sg = returns.detach()

        if update_stats:
            self.return_norm.update(returns_sg)
        scale = self.return_norm.scale()

        dist = self.actor(feats[:, :-1])
        if isinstance(dist, TanhNormal):
            entropy = dist.entropy(generator)
        else:
            entropy = dist.entropy()
        advantage = (returns_sg - values[:, :-1].detach()) / scale
        if self.backprop_actor:
            objective = returns / scale
            logp = dist.log_prob(actions.detach()).detach()
        else:
            logp = dist.log_prob(actions.detach())
            objective = logp * advantage
        actor_loss = -(weights * (objective + cfg.entropy_coef * entropy)).mean()

        head = TwoHot(crit_logits[:, :-1], cfg.bins_low, cfg.bins_high)
        return_nll = -head.log_prob(returns_sg)
        if cfg.slow_reg_target == "return":
            reg_target = lambda_returns(rewards.detach(), continues.detach(), slow_values, cfg.gamma, cfg.lam)
        else:
            reg_target = slow_values[:, :-1]
        slow_nll = -head.log_prob(reg_target)
        critic_loss = (weights * (return_nll + cfg.slow_reg_scale * slow_nll)).mean()

        loss = actor_loss + critic_loss
        metrics = {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "critic_return_nll": return_nll.mean().detach(),
            "critic_slow_nll": slow_nll.mean().detach(),
            "entropy": entropy.mean().detach(),
            "logp": logp.mean().detach(),
            "return_mean": returns_sg.mean(),
            "return_std": returns_sg.std() if returns_sg.numel() > 1 else torch.zeros(()),
            "value_mean": values.mean().detach(),
            "slow_value_mean": slow_values.mean(),
            "advantage_mean": advantage.mean(),
            "advantage_abs": advantage.abs().mean(),
            "return_scale": scale.detach().clone(),
            "return_low": self.return_norm.low.detach().clone(),
            "return_high": self.return_norm.high.detach().clone(),
            "weight_mean": weights.mean(),
        }
        return loss, metrics


class ActorCriticLearner:
    """Optimiser, warm-up schedule, per-network gradient clipping and slow-critic updates around
    an :class:`ActorCritic`.

    One optimiser with two parameter groups (actor, critic); each network's gradient is clipped to
    ``cfg.optimizer.grad_clip`` separately, as DreamerV3 does with its two optimisers. Only the actor-critic's
    own parameters are stepped: gradients that ``loss.backward()`` leaves on world-model parameters (backprop
    mode) are the world model's business (zero them before its own update).
    """

    def __init__(self, model: ActorCritic) -> None:
        self.model = model
        self.cfg = model.cfg
        groups = [
            {"params": list(model.actor.parameters()), "name": "actor"},
            {"params": list(model.critic.parameters()), "name": "critic"},
        ]
        self.optimizer, self.scheduler = build_optimizer(groups, self.cfg.optimizer)
        self.num_updates = 0

    def train_step(
        self,
        features: Tensor,
        actions: Tensor,
        rewards: Tensor,
        continues: Tensor,
        generator: torch.Generator | None = None,
        start_weights: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One update on an imagined batch; returns the metrics of :meth:`ActorCritic.loss` plus grad norms and
        lr (0-d tensors and a float; no host sync). ``start_weights``: see :meth:`ActorCritic.loss`."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.model.loss(features, actions, rewards, continues, generator=generator,
                                        start_weights=start_weights)
        loss.backward()
        clip = self.cfg.optimizer.grad_clip
        metrics["actor_grad_norm"] = clip_grad_norm(self.model.actor.parameters(), clip).detach()
        metrics["critic_grad_norm"] = clip_grad_norm(self.model.critic.parameters(), clip).detach()
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])  # a host value already: no device copy
        self.optimizer.step()
        self.scheduler.step()
        self.num_updates += 1
        if self.num_updates % self.cfg.slow_critic_every == 0:
            self.model.update_slow_critic()
        metrics["loss"] = loss.detach()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"model", "optimizer", "scheduler", "num_updates"} - set(state)
        if missing:
            raise KeyError(f"actor-critic state: missing keys {sorted(missing)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.num_updates = int(state["num_updates"])
