"""Rollout engine on scripted envs: first/state reset placement, replay records, returns and lengths."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ssmrl.replay import ReplayBuffer, ReplayConfig
from ssmrl.rollout import RandomPolicy, RolloutConfig, RolloutEngine, obs_to_dict, reset_where


class ScriptedEnv(gym.Env):
    """Episode k lasts lengths[k % len] steps, ends by termination when k is even, else by truncation.

    obs: image uint8 (4, 4, 3) filled with t, vector [env, k, t]; reward of step t -> t+1 is 10 k + t + 1;
    info["life_loss"] at t == 2. Every received action is logged with (episode, t)."""

    def __init__(self, env_id: int, lengths: list[int]):
        self.env_id, self.lengths = env_id, lengths
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
            "vector": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        })
        self.action_space = gym.spaces.Discrete(1000)
        self.episode, self.t, self.log = -1, 0, []

    def _obs(self):
        return {"image": np.full((4, 4, 3), self.t, np.uint8),
                "vector": np.array([self.env_id, self.episode, self.t], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.log.append((self.episode, self.t, int(action)))
        reward = 10 * self.episode + self.t + 1
        self.t += 1
        n = self.lengths[self.episode % len(self.lengths)]
        done = self.t == n
        return self._obs(), float(reward), done and self.episode % 2 == 0, done and self.episode % 2 == 1, {"life_loss": self.t == 2}


class CounterPolicy:
    """Recurrent state = observations consumed since the last reset; action = that count before this step."""

    def __init__(self):
        self.firsts = []

    def initial_state(self, n):
        return np.full(n, 777, dtype=np.int64)  # garbage: must be reset by first before use

    def act(self, obs, first, state):
        self.firsts.append(first.copy())
        state = reset_where(state, first)
        return state.copy(), state + 1


LENGTHS = {0: [3, 1, 4, 2, 5], 1: [2, 6, 1]}


def expected_records(env: int, count: int) -> dict[str, np.ndarray]:
    """Plain loop over the script: the first ``count`` records of the env's stream."""
    rows = {k: [] for k in ("vector", "reward", "is_first", "is_last", "is_terminal", "action", "life_loss")}
    k = 0
    while len(rows["vector"]) < count:
        n = LENGTHS[env][k % len(LENGTHS[env])]
        for t in range(n + 1):
            rows["vector"].append([env, k, t])
            rows["reward"].append(0.0 if t == 0 else 10 * k + t)
            rows["is_first"].append(t == 0)
            rows["is_last"].append(t == n)
            rows["is_terminal"].append(t == n and k % 2 == 0)
            rows["action"].append(t if t < n else 0)
            rows["life_loss"].append(t == 2)
        k += 1
    return {key: np.asarray(v[:count]) for key, v in rows.items()}


def test_state_reset_at_first_records_and_episode_stats():
    envs = [ScriptedEnv(i, LENGTHS[i]) for i in range(2)]
    replay = ReplayBuffer(ReplayConfig(capacity=400, num_streams=2, verbose=False))
    engine = RolloutEngine(envs, replay, RolloutConfig(seed=0))
    policy = CounterPolicy()
    steps = 25
    finished = engine.run(policy, steps)
    assert engine.policy_calls == steps and engine.env_steps == steps * 2
    # the policy's state was reset exactly where the env started an episode: action == t everywhere
    for env in envs:
        assert all(action == t for _, t, action in env.log)
    firsts = np.stack(policy.firsts)  # (steps, N)
    for i, env in enumerate(envs):
        np.testing.assert_array_equal(firsts[:, i], [t == 0 for _, t, _ in env.log])
    # finished episodes: returns and lengths from the script
    for i in range(2):
        mine = [e for e in finished if e.env == i]
        for k, ep in enumerate(mine):
            n = LENGTHS[i][k % len(LENGTHS[i])]
            assert ep.length == n
            assert ep.episode_return == pytest.approx(sum(10 * k + t + 1 for t in range(n)))
            assert ep.terminated == (k % 2 == 0) and ep.truncated == (k % 2 == 1)
            assert ep.life_losses == (1 if n >= 2 else 0)
        # every env step made one record, every finished episode one extra final record
        assert replay.totals[i] == steps + len(mine)
        got = replay.stream_arrays(i)
        ref = expected_records(i, int(replay.totals[i]))
        for key, v in ref.items():
            np.testing.assert_array_equal(got[key], v.astype(got[key].dtype), err_msg=f"env {i} {key}")
        np.testing.assert_array_equal(got["image"][:, 0, 0, 0], ref["vector"][:, 2])


def test_torch_state_and_torch_actions():
    envs = [ScriptedEnv(i, LENGTHS[i]) for i in range(2)]

    def act(obs, first, state):
        state = reset_where(state if state is not None else torch.zeros(2, 3), first)
        return torch.as_tensor(state[:, 0].to(torch.int64)), state + 1

    RolloutEngine(envs).run(act, 12)
    for env in envs:
        assert all(action == t for _, t, action in env.log)


class ArrayEnv(gym.Env):
    def __init__(self, image: bool):
        shape, dtype = ((8, 8, 3), np.uint8) if image else ((5,), np.float64)
        self.observation_space = gym.spaces.Box(0, 255, shape, dtype)
        self.action_space = gym.spaces.Box(-2.0, 3.0, (2,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        self.t += 1
        return self.observation_space.sample(), 1.0, False, self.t == 4, {}


def test_plain_array_observations_and_random_policy():
    assert set(obs_to_dict(np.zeros((8, 8, 3), np.uint8))) == {"image"}
    assert obs_to_dict(np.zeros(5))["vector"].dtype == np.float32
    for image in (True, False):
        envs = [ArrayEnv(image) for _ in range(3)]
        replay = ReplayBuffer(ReplayConfig(capacity=300, num_streams=3, verbose=False))
        engine = RolloutEngine(envs, replay, RolloutConfig(seed=1, life_loss_key=None))
        finished = engine.run(RandomPolicy(engine.action_spaces, seed=0), 9)
        key = "image" if image else "vector"
        assert set(replay.spec) == {key, "action", "reward", "is_first", "is_last", "is_terminal"}
        assert replay.spec[key][1] == (np.uint8 if image else np.float32)
        assert len(finished) == 3 * 2 and all(e.length == 4 and e.episode_return == 4.0 for e in finished)
        assert not replay.stream_arrays(0)["is_terminal"].any()  # time limits are not terminals
    spaces = [gym.spaces.Box(-2.0, 3.0, (2,), np.float32), gym.spaces.Discrete(5, start=2)]
    a = [RandomPolicy([s] * 4, seed=7).act({}, np.ones(4, bool))[0] for s in spaces for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])  # same seed, same actions
    assert (a[0] >= -2).all() and (a[0] <= 3).all() and set(a[2].tolist()) <= {2, 3, 4, 5, 6}


def test_replay_stream_count_must_match_envs():
    with pytest.raises(ValueError, match="streams"):
        RolloutEngine([ArrayEnv(False)], ReplayBuffer(ReplayConfig(capacity=10, num_streams=2, verbose=False)))


def test_atari_rollout_is_reproducible_from_the_seed():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    runs = []
    for _ in range(2):
        replay = ReplayBuffer(ReplayConfig(capacity=200, num_streams=2, verbose=False))
        engine = RolloutEngine.from_env_id("atari100k/Pong", 2, replay, RolloutConfig(seed=3))
        engine.run(RandomPolicy(engine.action_spaces, seed=3), 15)
        engine.close()
        runs.append([replay.stream_arrays(i) for i in range(2)])
    assert runs[0][0]["image"].shape == (15, 64, 64, 3) and runs[0][0]["is_first"][0]
    for a, b in zip(*runs):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(runs[0][0]["action"], runs[0][1]["action"])  # envs/streams differ
