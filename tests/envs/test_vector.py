"""make_vector: the batched-worker async vector behaves exactly like Gymnasium's SyncVectorEnv (SAME_STEP)."""
from __future__ import annotations

import numpy as np
import pytest

import envs

# 40 agent steps per game (160 frames / repeat 4): episodes end, and reset, many times within the test.
SHORT = {"max_frames": 160}


def _compare_infos(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], dict):
            _compare_infos(a[key], b[key])
        elif key == "final_obs":  # object array of per-env observations (None where no episode ended)
            for x, y in zip(a[key], b[key]):
                assert (x is None and y is None) or np.array_equal(x, y)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_batched_async_vector_matches_sync_vector_step_by_step():
    sync = envs.make_vector("atari100k/Breakout", 5, seed=3, **SHORT)
    batched = envs.make_vector("atari100k/Breakout", 5, seed=3, asynchronous=True, num_workers=2, **SHORT)
    try:
        assert batched.observation_space == sync.observation_space and batched.action_space == sync.action_space
        obs_s, info_s = sync.reset(seed=[10, 11, 12, 13, 14])
        obs_b, info_b = batched.reset(seed=[10, 11, 12, 13, 14])
        np.testing.assert_array_equal(obs_s, obs_b)
        _compare_infos(info_s, info_b)
        actions = np.random.default_rng(0).integers(0, sync.single_action_space.n, (90, 5))
        ends = 0
        for a in actions:
            out_s, out_b = sync.step(a), batched.step(a)
            for x, y in zip(out_s[:4], out_b[:4]):
                np.testing.assert_array_equal(x, y)
            _compare_infos(out_s[4], out_b[4])
            ends += int(np.sum(out_s[2] | out_s[3]))
        assert ends >= 5  # every env went through at least one reset inside step
    finally:
        sync.close()
        batched.close()


def test_batched_async_vector_reports_bad_actions_and_worker_errors():
    vec = envs.make_vector("atari100k/Pong", 2, seed=0, asynchronous=True, num_workers=2, **SHORT)
    try:
        vec.reset(seed=0)
        with pytest.raises(ValueError, match="needs 2 actions"):
            vec.step([0])
        with pytest.raises(RuntimeError, match="worker failed"):
            vec.step([0, 99])  # out of the action set: the env raises inside the worker
    finally:
        vec.close()


def test_batched_async_vector_dict_observations_are_copies():
    """Dict observation spaces (the memory suites): each step returns its own arrays, equal to the sync vector's."""
    sync = envs.make_vector("memory/four-rooms", 3, seed=1)
    batched = envs.make_vector("memory/four-rooms", 3, seed=1, asynchronous=True, num_workers=2)
    try:
        obs_s, _ = sync.reset(seed=5)
        obs_b, _ = batched.reset(seed=5)
        kept = {k: v for k, v in obs_b.items()}
        snapshot = {k: v.copy() for k, v in obs_b.items()}
        for a in np.random.default_rng(1).integers(0, sync.single_action_space.n, (20, 3)):
            obs_s, *_ = sync.step(a)
            obs_b, *_ = batched.step(a)
            for key in obs_s:
                np.testing.assert_array_equal(obs_s[key], obs_b[key])
        for key in kept:  # the first reset's arrays were not overwritten by later steps
            np.testing.assert_array_equal(kept[key], snapshot[key])
    finally:
        sync.close()
        batched.close()
