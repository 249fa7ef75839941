"""SAC learns a trivial continuous task and its pieces follow their formulas."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from agents.sac.config import SACConfig
from agents.sac.sac import Actor, ReplayBuffer, evaluate_policy, actor_policy, to_env_action, to_unit_action, train_sac


class MatchEnv(gym.Env):
    """One-step toy task: observe x ~ U(-1, 1), reward -(a - x)^2 / 4 for action a in [-2, 2] (scaled space)."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = gym.spaces.Box(-2, 2, (1,), np.float32)
        self._x = np.zeros(1, np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self._x.copy(), {}

    def step(self, action):
        r = -float((action[0] - self._x[0]) ** 2) / 4
        return self._x.copy(), r, True, False, {}


def test_sac_learns_one_step_matching_task():
    cfg = SACConfig(hidden=32, batch_size=64, learning_starts=100, actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3,
                    init_alpha=0.1)
    env = MatchEnv()
    agent, buf, _ = train_sac(env, total_steps=1200, cfg=cfg, seed=0)
    assert buf.size == 1200 and buf.terminals[:buf.size].all() and not buf.timeouts[:buf.size].any()
    learned = evaluate_policy(env, actor_policy(agent.actor, env.action_space, deterministic=True), 50, seed=123)
    rand_rng = np.random.default_rng(0)
    randomp = evaluate_policy(env, lambda o: rand_rng.uniform(-2, 2, size=1).astype(np.float32), 50, seed=123)
    # random actions score about -E[(a-x)^2]/4 = -(4/3 + 1/3)/4 ~ -0.42; matching x scores 0
    assert np.mean(randomp.returns) < -0.25
    assert np.mean(learned.returns) > -0.02, np.mean(learned.returns)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = Actor(3, 2, hidden=8)
    obs = torch.randn(5, 3)
    gen = torch.Generator().manual_seed(1)
    a, logp = actor.sample(obs, gen)
    mean, log_std = actor(obs)
    u = torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6)).double()
    base = torch.distributions.Normal(mean.double(), log_std.exp().double()).log_prob(u).sum(-1)
    ref = base - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(logp.double(), ref, atol=1e-3, rtol=1e-4)


def test_action_rescaling_round_trip_and_buffer_prefix():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    a = np.array([[-1.0, 1.0], [0.5, 0.0]], np.float32)
    env_a = to_env_action(a, space)
    np.testing.assert_allclose(env_a, [[-2.0, 1.0], [1.0, 0.5]])
    np.testing.assert_allclose(to_unit_action(env_a, space), a)
    buf = ReplayBuffer(1, 1, 4)
    for i in range(3):
        buf.add([i], [0.0], float(i), [i + 1], False, i == 2)
    p = buf.prefix(2)
    np.testing.assert_array_equal(p["observations"][:, 0], [0, 1])
    np.testing.assert_array_equal(buf.prefix(10)["timeouts"], [False, False, True])
    assert math.isclose(float(p["rewards"].sum()), 1.0)
