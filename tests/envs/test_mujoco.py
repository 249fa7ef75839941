"""Gymnasium MuJoCo suite: check_env, agreement with the raw env, seed determinism, time limit, scores."""
import json

import gymnasium as gym
import numpy as np
import pytest

mj = pytest.importorskip("envs.mujoco", reason="mujoco is not installed (pip install 'ssmrl[mujoco]')")
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402


def test_check_env_and_settings():
    env = envs.make("mujoco/Hopper", seed=0)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs["vector"].dtype == np.float32 and obs["vector"].shape == (11,)
    s = info["settings"]
    assert s["gym_id"] == "Hopper-v5" and s["max_episode_steps"] == 1000 and s["observation_dim"] == 11
    assert s["frame_skip"] == 4 and s["dt"] == pytest.approx(0.008)
    json.dumps(s)  # the run writes settings to run.json


def test_matches_raw_gymnasium_env():
    raw = gym.make("Walker2d-v5")
    env = mj.make("Walker2d", flat_obs=True)
    o_raw, _ = raw.reset(seed=5)
    o, _ = env.reset(seed=5)
    assert isinstance(env.observation_space, gym.spaces.Box) and o.dtype == np.float32
    check_env(mj.make("Walker2d", flat_obs=True), skip_render_check=True)
    np.testing.assert_array_equal(o, o_raw.astype(np.float32))
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, 6).astype(np.float32)
        o_raw, r_raw, t_raw, tr_raw, info_raw = raw.step(a)
        o, r, t, tr, info = env.step(a)
        np.testing.assert_array_equal(o, o_raw.astype(np.float32))
        assert (r, t, tr) == (r_raw, t_raw, tr_raw) and info["x_position"] == info_raw["x_position"]


def _trajectory(env, seed, steps=30):
    obs, _ = env.reset(seed=seed)
    out = [obs["vector"]]
    rng = np.random.default_rng(123)  # same actions in every call
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        out.append(obs["vector"])
    return np.stack(out)


def test_seed_determinism():
    env = mj.make("HalfCheetah")
    a, b = _trajectory(env, 3), _trajectory(mj.make("HalfCheetah"), 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _trajectory(env, 4))


def test_time_limit_and_ant_obs():
    env = mj.make("Ant", max_episode_steps=5)
    obs, info = env.reset(seed=0)
    assert obs["vector"].shape == (105,) and info["settings"]["observation_dim"] == 105
    flags = [env.step(np.zeros(8, np.float32))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_names():
    assert mj.ids() == ["HalfCheetah", "Hopper", "Walker2d", "Ant"]
    with pytest.raises(ValueError, match="valid ids"):
        envs.make("mujoco/Hopperr")
    with pytest.raises(TypeError, match="unknown mujoco setting"):
        mj.make("Hopper", horizon=5)


def test_offline_tasks_are_made_here_with_flat_observations():
    """``make_task`` (SAC collection and offline evaluation): D4RL names -> this suite's v5 envs, flat float32."""
    assert mj.gym_id("hopper") == mj.gym_id("mujoco/Hopper") == mj.gym_id("Hopper") == "Hopper-v5"
    assert mj.gym_id("Hopper-v4") == "Hopper-v4" and mj.task_key("mujoco/Walker2d") == "walker2d"
    with pytest.raises(ValueError, match="unknown MuJoCo task 'Cheetah'"):
        mj.gym_id("Cheetah")
    env = mj.make_task("halfcheetah", seed=3, max_episode_steps=7)
    assert isinstance(env.unwrapped, mj.MujocoEnv) and env.observation_space.shape == (17,)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and info["settings"]["max_episode_steps"] == 7
    np.testing.assert_array_equal(obs, mj.make("HalfCheetah", flat_obs=True).reset(seed=3)[0])
    assert env.action_space.sample().tolist() == mj.make_task("halfcheetah", seed=3).action_space.sample().tolist()
