"""Compact soft actor-critic for continuous control: twin Q, Polyak target critics, learned temperature.

Used to make behaviour policies for the D4RL-style datasets (``agents/sac/collect.py``). Actions live in
[-1, 1] inside the agent and are rescaled to the env's Box bounds by :func:`to_env_action`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.sac.config import SACConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(inp: int, out: int, hidden: int, layers: int) -> nn.Sequential:
    # not the world model's mlp_layers: SAC's MLP has biases, ReLU and no normalisation (the SAC paper's networks)
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out))
    return nn.Sequential(*mods)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy. ``obs: (B, obs_dim) -> action (B, act_dim)`` in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.trunk = mlp(obs_dim, 2 * act_dim, hidden, layers)
        self.act_dim = act_dim

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        # soft clamp keeps gradients alive at the bounds
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its log-probability ``(B,)`` with the tanh change of variables."""
        mean, log_std = self(obs)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + std * noise
        a = torch.tanh(u)
        logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) computed stably
        logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return a, logp

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self(obs)[0])
        return self.sample(obs, generator)[0]


class TwinQ(nn.Module):
    """Two independent critics. ``(obs (B, O), act (B, A)) -> (q1 (B,), q2 (B,))``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, 1, hidden, layers)
        self.q2 = mlp(obs_dim + act_dim, 1, hidden, layers)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class ReplayBuffer:
    """Flat numpy transition store in insertion order (kept whole: medium-replay is a prefix of it).

    Stores what D4RL stores: obs, action (env units), reward, next_obs, terminal (true termination) and
    timeout (truncation). When full it overwrites the oldest entries.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, act_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminals = np.zeros(capacity, bool)
        self.timeouts = np.zeros(capacity, bool)
        self.size = 0
        self.pos = 0

    def add(self, obs, action, reward, next_obs, terminal: bool, timeout: bool) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminals[i], self.timeouts[i] = next_obs, terminal, timeout
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "obs": self.obs[idx], "actions": self.actions[idx], "rewards": self.rewards[idx],
            "next_obs": self.next_obs[idx], "terminals": self.terminals[idx],
        }

    def prefix(self, n: int) -> dict[str, np.ndarray]:
        """The first ``n`` transitions in insertion order (only valid before the buffer wrapped)."""
        if self.size == self.capacity and self.pos != 0 and n > self.pos:
            raise ValueError("buffer wrapped: its prefix is no longer in insertion order; raise buffer_size")
        n = min(n, self.size)
        return {
            "observations": self.obs[:n].copy(), "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(), "next_observations": self.next_obs[:n].copy(),
            "terminals": self.terminals[:n].copy(), "timeouts": self.timeouts[:n].copy(),
        }


def action_scale(space: gym.spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(space, gym.spaces.Box) or not np.all(np.isfinite(space.low)) or not np.all(np.isfinite(space.high)):
        raise ValueError(f"SAC needs a bounded Box action space, got {space}")
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return (high - low) / 2, (high + low) / 2


def to_env_action(a: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """Map a [-1, 1] action to the env's Box bounds."""
    scale, bias = action_scale(space)
    return a * scale + bias


def to_unit_action(a: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    scale, bias = action_scale(space)
    return (a - bias) / scale


class SAC(nn.Module):
    """Actor, twin critics, target critics and log-temperature, with their optimisers.

    All state (networks, optimisers, counters) is in :meth:`state_dict`/``load_state_dict`` of this module plus
    :meth:`optim_state_dict`.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SACConfig()
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def optim_state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in ("actor_opt", "critic_opt", "alpha_opt")}

    def load_optim_state_dict(self, sd: dict) -> None:
        for k, v in sd.items():
            getattr(self, k).load_state_dict(v)

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, float]:
        """One critic update (and actor/temperature updates every ``policy_frequency``). Actions in [-1, 1]."""
        cfg = self.cfg
        obs, act, rew = batch["obs"], batch["actions"], batch["rewards"]
        nxt, term = batch["next_obs"], batch["terminals"].float()
        with torch.no_grad():
            na, nlogp = self.actor.sample(nxt, generator)
            tq1, tq2 = self.critic_target(nxt, na)
            # truncations bootstrap (only true terminals cut the return)
            target = rew + cfg.gamma * (1 - term) * (torch.min(tq1, tq2) - self.alpha * nlogp)
        q1, q2 = self.critic(obs, act)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {"critic_loss": critic_loss.item(), "q": q1.mean().item()}

        if int(self.updates) % cfg.policy_frequency == 0:
            for _ in range(cfg.policy_frequency):
                a, logp = self.actor.sample(obs, generator)
                q = torch.min(*self.critic(obs, a))
                actor_loss = (self.alpha * logp - q).mean()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_opt.step()
                if cfg.autotune:
                    alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                    self.alpha_opt.zero_grad(set_to_none=True)
                    alpha_loss.backward()
                    self.alpha_opt.step()
            out.update(actor_loss=actor_loss.item(), alpha=self.alpha.item(), entropy=-logp.mean().item())

        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters()):
                tp.lerp_(p, cfg.tau)
        self.updates += 1
        return out


@dataclass
class EpisodeStats:
    returns: list[float]
    lengths: list[int]

    def summary(self) -> dict[str, float]:
        r = np.asarray(self.returns, np.float64)
        return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()),
                "episodes": len(r), "mean_length": float(np.mean(self.lengths))}


def evaluate_policy(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int) -> EpisodeStats:
    """Run ``episodes`` full episodes; ``policy`` maps one observation to one env action."""
    returns, lengths = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, ret, n = False, 0.0, 0
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            ret += float(r)
            n += 1
            done = term or trunc
        returns.append(ret)
        lengths.append(n)
    return EpisodeStats(returns, lengths)


def actor_policy(actor: Actor, space: gym.spaces.Box, deterministic: bool, generator: torch.Generator | None = None):
    """Wrap an actor as ``obs -> env action`` (numpy in, numpy out)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(np.asarray(obs, np.float32), device=next(actor.parameters()).device).unsqueeze(0)
        a = actor.act(o, deterministic=deterministic, generator=generator)[0].cpu().numpy()
        return to_env_action(a, space)

    return policy


def train_sac(
    env: gym.Env,
    total_steps: int,
    cfg: SACConfig | None = None,
    seed: int = 0,
    callback: Callable[[int, SAC, ReplayBuffer], None] | None = None,
    callback_every: int = 0,
    agent: SAC | None = None,
    log_every: int = 0,
) -> tuple[SAC, ReplayBuffer, EpisodeStats]:
    """Train SAC for ``total_steps`` env steps (one update per step after ``learning_starts``).

    ``callback(step, agent, buffer)`` runs every ``callback_every`` env steps (and at the end) -- used for
    policy snapshots. The buffer keeps env-unit actions plus terminal/timeout flags (what D4RL stores).
    Returns the agent, the buffer and the training-episode statistics.
    """
    cfg = cfg or SACConfig()
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    obs_dim = int(np.prod(env.observation_space.shape))
    space = env.action_space
    act_dim = int(np.prod(space.shape))
    torch.manual_seed(seed)  # network init; sampling uses the generator below
    device = torch.device(cfg.device)
    agent = (agent or SAC(obs_dim, act_dim, cfg)).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    space.seed(seed)
    buf = ReplayBuffer(obs_dim, act_dim, min(cfg.buffer_size, total_steps))
    obs, _ = env.reset(seed=seed)
    ep_ret, ep_len, stats = 0.0, 0, EpisodeStats([], [])
    for step in range(1, total_steps + 1):
        if step <= cfg.learning_starts:
            a_env = space.sample()
        else:
            a_env = actor_policy(agent.actor, space, deterministic=False, generator=gen)(obs)
        nobs, r, term, trunc, _ = env.step(a_env)
        buf.add(obs, a_env, r, nobs, bool(term), bool(trunc))
        ep_ret += float(r)
        ep_len += 1
        obs = nobs
        if term or trunc:
            stats.returns.append(ep_ret)
            stats.lengths.append(ep_len)
            obs, _ = env.reset()
            ep_ret, ep_len = 0.0, 0
        if step > cfg.learning_starts and buf.size >= cfg.batch_size:
            b = buf.sample(cfg.batch_size, rng)
            batch = {k: torch.as_tensor(v, device=device) for k, v in b.items()}
            batch["actions"] = torch.as_tensor(to_unit_action(b["actions"], space), device=device)
            agent.update(batch, gen)
        if log_every and step % log_every == 0 and stats.returns:
            print(f"[sac] step {step} recent return {np.mean(stats.returns[-5:]):.1f}", flush=True)
        if callback is not None and callback_every and (step % callback_every == 0 or step == total_steps):
            callback(step, agent, buf)
    return agent, buf, stats
