"""D4RL-format datasets: HDF5 round trip, episode flags, and a tiny end-to-end SAC collection."""
from __future__ import annotations

import numpy as np
import pytest

from agents.offline.io import load_dataset, read_d4rl, write_d4rl
from agents.offline.data import OfflineData
from agents.sac.collect import collect_datasets, episode_returns, pick_snapshots
from agents.sac.config import CollectConfig, SACConfig


def _toy(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(n, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0, 0], bool)[:n],
        "timeouts": np.array([0, 0, 0, 0, 1, 0, 1], bool)[:n],
    }


def test_d4rl_round_trip_identical_arrays_and_metadata(tmp_path):
    data = _toy()
    meta = {"env_id": "Hopper-v5", "seed": 3, "ref_min_score": -1.5, "returns": {"mean": 2.0, "episodes": 3},
            "levels": ["a", "b"], "policy": None}
    path = write_d4rl(str(tmp_path / "x.hdf5"), data, meta)
    back, m = read_d4rl(path)
    assert set(back) == set(data)
    for k in data:
        assert back[k].dtype == data[k].dtype, k
        np.testing.assert_array_equal(back[k], data[k])
    assert m == meta
    # terminals and timeouts stay distinct flags: episode 1 ends by termination, 2 by time limit, 3 cut
    assert back["terminals"].tolist() == [False, False, True, False, False, False, False]
    assert back["timeouts"].tolist() == [False, False, False, False, True, False, True]
    r = data["rewards"].astype(np.float64)
    np.testing.assert_allclose(episode_returns(back), [r[:3].sum(), r[3:5].sum(), r[5:].sum()], rtol=1e-6)


def test_d4rl_write_rejects_bad_input(tmp_path):
    data = _toy()
    del data["timeouts"]
    with pytest.raises(ValueError, match="timeouts"):
        write_d4rl(str(tmp_path / "x.hdf5"), data)
    data = _toy()
    data["actions"] = data["actions"][:-1]
    with pytest.raises(ValueError, match="actions"):
        write_d4rl(str(tmp_path / "x.hdf5"), data)
    with pytest.raises(FileNotFoundError):
        read_d4rl(str(tmp_path / "missing.hdf5"))


def test_pick_snapshots_medium_is_about_a_third_of_expert():
    snaps = [{"step": s, "eval_return": r} for s, r in [(1, 10.0), (2, 250.0), (3, 420.0), (4, 900.0), (5, 700.0)]]
    medium, expert = pick_snapshots(snaps, 1 / 3)
    assert expert["step"] == 4 and medium["step"] == 2  # |250 - 300| < |420 - 300|


def test_collect_tiny_hopper_levels(tmp_path):
    cfg = CollectConfig(env="Hopper", seed=0, train_steps=400, snapshot_every=200, eval_episodes=1, size=150,
                        reference_episodes=2, out_dir=str(tmp_path), minari=True,
                        sac=SACConfig(hidden=16, batch_size=32, learning_starts=200))
    out = collect_datasets(cfg, log=None)
    assert set(out["paths"]) == {"random", "medium", "expert", "medium-replay", "medium-expert"}
    loaded = {lv: read_d4rl(p) for lv, p in out["paths"].items()}
    for lv, (d, m) in loaded.items():
        n = len(d["rewards"])
        assert n == {"medium-expert": 300, "medium-replay": m["sac"]["medium_step"]}.get(lv, 150), lv
        assert (d["terminals"] | d["timeouts"])[-1], lv  # every episode ends with a flag
        assert not (d["terminals"] & d["timeouts"]).any()
        np.testing.assert_allclose(d["observations"][1:][~(d["terminals"] | d["timeouts"])[:-1]],
                                   d["next_observations"][:-1][~(d["terminals"] | d["timeouts"])[:-1]])
        assert m["env_id"] == "Hopper-v5" and m["seed"] == 0 and m["level"] == lv
        # the metadata's returns leave out episodes cut by the dataset size (they were stopped, not finished)
        all_returns = episode_returns(d)
        assert m["returns"]["episodes"] == len(all_returns) - m["cut_episodes"] and m["cut_episodes"] >= 0
        if lv != "medium-expert":  # a single cut, at the end
            assert m["cut_episodes"] <= 1
            finished = all_returns[:len(all_returns) - m["cut_episodes"]]
            if finished:
                assert m["returns"]["mean"] == pytest.approx(np.mean(finished))
        assert m["ref_min_score"] == out["references"]["ref_min_score"]
        assert np.abs(d["actions"]).max() <= 1.0
    me, med, exp = loaded["medium-expert"][0], loaded["medium"][0], loaded["expert"][0]
    np.testing.assert_array_equal(me["observations"], np.concatenate([med["observations"], exp["observations"]]))
    # Hopper falls: a random policy produces true terminations, which must not be confused with timeouts
    assert loaded["random"][0]["terminals"].sum() > 0
    # the Minari copy reads back to the same arrays and episodes
    mdata, mmeta = load_dataset(out["minari_paths"]["medium-replay"])
    hdata = loaded["medium-replay"][0]
    for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations"):
        np.testing.assert_array_equal(mdata[k], hdata[k], err_msg=k)
    assert mmeta["level"] == "medium-replay"
    a, b = OfflineData(mdata, 4), OfflineData(hdata, 4)
    np.testing.assert_array_equal(a.starts, b.starts)
    np.testing.assert_array_equal(a.starts, np.concatenate([[0], np.flatnonzero(hdata["terminals"] | hdata["timeouts"])[:-1] + 1]))


def test_d4rl_files_without_timeouts_or_next_observations_are_completed(tmp_path):
    """D4RL's own loader needs only observations/actions/rewards/terminals (v0, maze2d, antmaze, adroit files):
    timeouts come from a max_episode_steps counter, next observations from observations[t + 1] in an episode."""
    import h5py

    from ssmrl.replay.offline import read_d4rl

    lengths = [5, 5, 5, 1]  # terminal, capped at 5, capped at 5, end of file
    n = sum(lengths)
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)
    terminals = np.zeros(n, bool)
    terminals[4] = True
    path = tmp_path / "v0.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"] = obs, np.zeros((n, 1), np.float32)
        f["rewards"], f["terminals"] = np.ones(n, np.float32), terminals
        f["infos/qpos"] = np.full((n, 1), np.nan, np.float32)  # unused by learners: a warning, not an error
    with pytest.warns(UserWarning) as caught:
        data, _ = read_d4rl(path, max_episode_steps=5)
    messages = " ".join(str(w.message) for w in caught)
    assert "no 'timeouts' key" in messages and "no 'next_observations' key" in messages and "infos/qpos" in messages
    assert np.flatnonzero(data["timeouts"]).tolist() == [9, 14]  # steps 5-9 and 10-14 hit the cap; 4 is terminal
    nxt = data["next_observations"][:, 0]
    assert nxt[:4].tolist() == [1, 2, 3, 4] and nxt[4] == 4  # terminal step: its own observation
    assert nxt[9] == 9 and nxt[14] == 14 and nxt[15] == 15  # episode ends and the file's end
    assert data["next_observation_valid"].tolist() == [not e for e in np.isin(np.arange(n), [4, 9, 14, 15])]


def test_dataset_info_counts_episodes_as_the_loaders_split_them(tmp_path, capsys):
    """An unflagged jump in next_observations ends an episode for the loaders, so info counts it too."""
    import json as json_module

    from ssmrl.cli.main import main

    n = 30
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)
    nxt = obs + 1
    nxt[9] += 100  # a jump at 9 without a flag: two episodes (0-9, 10-29), plus the flagged end at 29
    timeouts = np.zeros(n, bool)
    timeouts[-1] = True
    path = write_d4rl(str(tmp_path / "d.hdf5"), {"observations": obs, "actions": np.zeros((n, 1), np.float32),
                                                 "next_observations": nxt, "rewards": np.ones(n, np.float32),
                                                 "terminals": np.zeros(n, bool), "timeouts": timeouts})
    with pytest.warns(UserWarning):
        assert main(["dataset", "info", str(path)]) == 0
    summary = json_module.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2
