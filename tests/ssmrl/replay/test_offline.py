"""Offline datasets: D4RL HDF5 and Minari folders into replay records, returns-to-go, writers, rejection."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ssmrl.replay import (
    DatasetError,
    episode_bounds,
    load_d4rl,
    load_minari,
    read_d4rl,
    read_minari,
    returns_to_go,
    write_d4rl,
    write_minari,
)

OBS, ACT = 3, 2


def episodes(seed: int = 0) -> list[dict]:
    """Small synthetic episodes: (observations T+1, actions T, rewards T, terminated, truncated)."""
    rng = np.random.default_rng(seed)
    spec = [(4, True, False), (6, False, True), (1, True, False), (5, False, True), (3, False, False)]
    out = []
    for t, term, trunc in spec:
        out.append({
            "observations": rng.normal(size=(t + 1, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(t, ACT)).astype(np.float32),
            "rewards": rng.normal(size=t).astype(np.float32),
            "terminated": term,
            "truncated": trunc,
        })
    return out


def flat(eps: list[dict]) -> dict[str, np.ndarray]:
    def flags(e, which):
        f = np.zeros(len(e["rewards"]), dtype=bool)
        f[-1] = e[which]
        return f

    return {
        "observations": np.concatenate([e["observations"][:-1] for e in eps]),
        "next_observations": np.concatenate([e["observations"][1:] for e in eps]),
        "actions": np.concatenate([e["actions"] for e in eps]),
        "rewards": np.concatenate([e["rewards"] for e in eps]),
        "terminals": np.concatenate([flags(e, "terminated") for e in eps]),
        "timeouts": np.concatenate([flags(e, "truncated") for e in eps]),
    }


def reference_records(eps: list[dict], discount: float = 1.0) -> dict[str, np.ndarray]:
    """Plain per-episode loop of the step-record convention, plus the returns-to-go of each record's action
    (``returns_to_go``, not a record key: the offline learners compute it) for the returns_to_go checks."""
    rows: dict[str, list] = {k: [] for k in ("vector", "action", "reward", "is_first", "is_last", "is_terminal", "returns_to_go")}
    for e in eps:
        t_len = len(e["rewards"])
        for t in range(t_len + 1):
            rows["vector"].append(e["observations"][t])
            rows["action"].append(e["actions"][t] if t < t_len else np.zeros(ACT, np.float32))
            rows["reward"].append(e["rewards"][t - 1] if t > 0 else 0.0)
            rows["is_first"].append(t == 0)
            rows["is_last"].append(t == t_len)
            rows["is_terminal"].append(t == t_len and e["terminated"])
            rows["returns_to_go"].append(sum(discount ** (k - t) * e["rewards"][k] for k in range(t, t_len)))
    return {k: np.asarray(v) for k, v in rows.items()}


def check_records(buffer, ref) -> None:
    got = buffer.stream_arrays(0)
    ref = {k: v for k, v in ref.items() if k != "returns_to_go"}
    assert set(ref) <= set(got) and "returns_to_go" not in got and "timestep" not in got
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-5, err_msg=k)


def test_d4rl_round_trip_with_metadata_and_infos(tmp_path):
    eps = episodes()
    data = flat(eps)
    data["infos/qpos"] = np.arange(len(data["rewards"]) * 2, dtype=np.float32).reshape(-1, 2)
    meta = {"algorithm": "SAC", "policy": {"level": "medium", "return_mean": 1.5}, "tags": ["a", "b"]}
    path = write_d4rl(tmp_path / "d.hdf5", data, meta)
    read, read_meta = read_d4rl(path)
    for k, v in data.items():
        np.testing.assert_array_equal(read[k], v, err_msg=k)
    assert read_meta == meta
    buffer = load_d4rl(path, verbose=False)
    check_records(buffer, reference_records(eps))
    assert buffer.metadata == meta
    # terminals and timeouts stay apart: a timeout never becomes is_terminal
    assert buffer.stream_arrays(0)["is_terminal"].sum() == 2
    within = load_d4rl(path, verbose=False, within_episode=True, seed=0)
    batch = within.sample(64, 4)
    assert not batch["is_first"][:, 1:].any()  # windows stay in one episode


def test_discounted_returns_to_go():
    eps = episodes(1)
    rec = reference_records(eps)
    # the reward for each record's action: the next record's reward, 0 on an episode's last record
    action_reward = np.where(np.append(rec["is_first"][1:], True), 0.0, np.append(rec["reward"][1:], 0.0))
    np.testing.assert_allclose(returns_to_go(action_reward, rec["is_first"], 0.9), reference_records(eps, 0.9)["returns_to_go"], rtol=1e-5)


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_episode_bounds_and_returns_to_go_equal_a_plain_loop(discount):
    rng = np.random.default_rng(0)
    n = 300
    is_first = rng.random(n) < 0.08
    is_first[0] = False  # index 0 begins an episode flagged or not
    rewards = rng.normal(size=n)
    starts, ends = [0], []
    for t in range(1, n):
        if is_first[t]:
            ends.append(t)
            starts.append(t)
    ends.append(n)
    got_starts, got_ends = episode_bounds(is_first)
    assert got_starts.tolist() == starts and got_ends.tolist() == ends
    want = np.zeros(n)
    for s, e in zip(starts, ends):
        acc = 0.0
        for t in range(e - 1, s - 1, -1):
            acc = rewards[t] + discount * acc
            want[t] = acc
    got = returns_to_go(rewards, is_first, discount)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)  # bit for bit: the same additions in the same order
    assert [a.tolist() for a in episode_bounds(np.zeros(0, bool))] == [[], []]


def test_unflagged_episode_break_is_split_with_a_warning(tmp_path):
    eps = episodes(2)
    eps[1]["truncated"] = False  # episode 1 -> 2 boundary now carries no flag
    with pytest.warns(UserWarning, match="without terminals/timeouts"):
        buffer = load_d4rl(write_d4rl(tmp_path / "d.hdf5", flat(eps)), verbose=False)
    check_records(buffer, reference_records(eps))


def test_minari_round_trip_equals_d4rl(tmp_path):
    eps = episodes(3)
    folder = write_minari(tmp_path, "test/pointenv/medium-v0", flat(eps), {"author": "tests"})
    assert folder == tmp_path / "test" / "pointenv" / "medium-v0"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["total_episodes"] == 5 and meta["total_steps"] == 19
    buffer = load_minari(tmp_path, "test/pointenv/medium-v0", verbose=False)
    check_records(buffer, reference_records(eps))
    data, _ = read_minari(folder)
    ref = flat(eps)
    ref["timeouts"][-1] = True  # the unflagged last episode reads back as cut (timeout), not terminal
    for k, v in ref.items():
        np.testing.assert_array_equal(data[k], v, err_msg=k)


def write_minari_by_hand(folder, eps, dict_obs: bool = False) -> None:
    """A Minari folder written directly with h5py (independent of ssmrl's writer)."""
    (folder / "data").mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"dataset_id": "x/y/z-v0", "total_episodes": len(eps)}))
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        for i, e in enumerate(eps):
            g = f.create_group(f"episode_{i}")
            if dict_obs:
                o = g.create_group("observations")
                o.create_dataset("pos", data=e["observations"][:, :2])
                o.create_dataset("pixels", data=e["pixels"])
            else:
                g.create_dataset("observations", data=e["observations"])
            g.create_dataset("actions", data=e["actions"])
            g.create_dataset("rewards", data=e["rewards"])
            term = np.zeros(len(e["rewards"]), bool)
            term[-1] = e["terminated"]
            trunc = np.zeros(len(e["rewards"]), bool)
            trunc[-1] = e["truncated"]
            g.create_dataset("terminations", data=term)
            g.create_dataset("truncations", data=trunc)


def test_minari_with_dict_observations(tmp_path):
    eps = episodes(4)
    rng = np.random.default_rng(0)
    for e in eps:
        e["pixels"] = rng.integers(0, 256, size=(len(e["observations"]), 5, 5, 3), dtype=np.uint8)
    write_minari_by_hand(tmp_path / "ds", eps, dict_obs=True)
    got = load_minari(tmp_path / "ds", verbose=False).stream_arrays(0)
    ref = reference_records(eps)
    np.testing.assert_array_equal(got["pos"], ref["vector"][:, :2])
    np.testing.assert_array_equal(got["pixels"], np.concatenate([e["pixels"] for e in eps]))
    assert got["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(got["is_first"], ref["is_first"])


def test_bad_d4rl_datasets_are_rejected_naming_key_and_index(tmp_path):
    base = flat(episodes())
    bad = dict(base)
    del bad["timeouts"]
    with pytest.raises(DatasetError, match="timeouts"):
        write_d4rl(tmp_path / "a.hdf5", bad)
    bad = dict(base, actions=base["actions"][:-1])
    with pytest.raises(DatasetError, match=r"'actions' has length 18, expected 19"):
        write_d4rl(tmp_path / "a.hdf5", bad)
    obs = base["observations"].copy()
    obs[7, 1] = np.nan
    with pytest.raises(DatasetError, match=r"'observations' holds a non-finite value at index 7"):
        write_d4rl(tmp_path / "a.hdf5", dict(base, observations=obs))
    # a file written by hand (bypassing the writer) with NaN rewards is rejected by the loader
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        for k, v in base.items():
            f.create_dataset(k, data=v)
        del f["rewards"]
        r = base["rewards"].copy()
        r[12] = np.inf
        f.create_dataset("rewards", data=r)
    with pytest.raises(DatasetError, match=r"b.hdf5: key 'rewards' holds a non-finite value at index 12"):
        load_d4rl(tmp_path / "b.hdf5", verbose=False)


def test_bad_minari_datasets_are_rejected_naming_key_and_index(tmp_path):
    eps = episodes()
    eps[2]["observations"] = eps[2]["observations"][:-1]  # T instead of T+1
    write_minari_by_hand(tmp_path / "a", eps)
    with pytest.raises(DatasetError, match=r"episode_2: key 'observations' has length 1, expected 2"):
        load_minari(tmp_path / "a", verbose=False)
    eps = episodes()
    eps[1]["actions"][3, 0] = np.nan
    write_minari_by_hand(tmp_path / "b", eps)
    with pytest.raises(DatasetError, match=r"episode_1: key 'actions' holds a non-finite value at index 3"):
        load_minari(tmp_path / "b", verbose=False)
    eps = episodes()
    write_minari_by_hand(tmp_path / "c", eps)
    with h5py.File(tmp_path / "c" / "data" / "main_data.hdf5", "r+") as f:
        f["episode_3/terminations"][1] = True
    with pytest.raises(DatasetError, match=r"episode_3: key 'terminations' is set at index 1"):
        load_minari(tmp_path / "c", verbose=False)
    write_minari_by_hand(tmp_path / "d", episodes())
    with h5py.File(tmp_path / "d" / "data" / "main_data.hdf5", "r+") as f:
        del f["episode_4/rewards"]
    with pytest.raises(DatasetError, match=r"episode_4: missing key\(s\) \['rewards'\]"):
        load_minari(tmp_path / "d", verbose=False)
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        load_minari(tmp_path / "nothing", verbose=False)


def test_episode_ends_found_across_comparison_blocks():
    from ssmrl.replay.offline import d4rl_episodes

    n = 9000
    obs = np.arange(n + 1, dtype=np.float32)[:, None].repeat(2, axis=1)
    nxt = obs[1:].copy()
    obs = obs[:-1]
    breaks = [4094, 4095, 8191]  # jumps right at and after the 4096-row block edge
    for b in breaks:
        obs[b + 1 :] += 100.0
        nxt[b + 1 :] += 100.0
    data = {"observations": obs, "next_observations": nxt, "actions": np.zeros((n, 1), np.float32),
            "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    data["terminals"][100] = True
    with pytest.warns(UserWarning, match="3 episode boundaries"):
        ends, term = d4rl_episodes(data)
    np.testing.assert_array_equal(ends, [101, 4095, 4096, 8192, n])
    np.testing.assert_array_equal(term, [True, False, False, False, False])


def test_the_eval_task_is_read_from_d4rl_and_minari_names():
    from agents.offline.io import task_from_path

    assert task_from_path("/data/hopper-medium-v2.hdf5") == "hopper"
    assert task_from_path("walker2d_medium_replay.hdf5") == "walker2d"
    assert task_from_path("/root/.minari/datasets/mujoco/halfcheetah/medium-v0") == "halfcheetah"
    assert task_from_path("/data/antmaze-large-diverse-v0.hdf5") is None  # not one of the MuJoCo locomotion tasks
    assert task_from_path("/data/my-data.hdf5") is None


def test_actions_outside_the_tanh_range_are_refused():
    n = 40
    data = {"observations": np.zeros((n, 3), np.float32), "actions": np.full((n, 2), 2.0, np.float32),
            "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, bool), "timeouts": np.arange(n) % 20 == 19}
    with pytest.raises(ValueError, match=r"dataset actions lie in \[2, 2\], outside the \[-1, 1\]"):
        from agents.offline.data import OfflineData

        OfflineData(data, context=4)
