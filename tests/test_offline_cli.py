"""``ssmrl offline`` / ``ssmrl eval`` / ``ssmrl dataset info`` on a tiny D4RL-format file written here."""
import json

import numpy as np
import pytest

from agents.offline.io import write_d4rl
from ssmrl.cli.main import main
from ssmrl.runs.checkpoint import Checkpointer


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[49::50] = True
    arrays = {"observations": obs, "actions": np.tanh(obs[:, :3]), "rewards": rng.normal(size=n).astype(np.float32),
              "terminals": np.zeros(n, bool), "timeouts": timeouts,
              "next_observations": np.roll(obs, -1, axis=0)}
    return str(write_d4rl(str(tmp_path / "tiny.hdf5"), arrays, {"env_id": "Hopper-v5", "ref_min_score": -20.0, "ref_max_score": 300.0}))


@pytest.mark.parametrize("agent", ["dm", "bc"])
def test_offline_train_resume_eval(tmp_path, dataset, agent, capsys):
    run = tmp_path / "run"
    words = ["offline", f"agent={agent}", f"dataset={dataset}", "size=debug", "train.eval_every=0", "train.eval_episodes=1",
             "train.log_every=10", "train.checkpoint_every=10", "offline.max_eval_steps=10", "--run-dir", str(run)]
    assert main(words + ["train.steps=20"]) == 0
    assert Checkpointer(run / "checkpoints").read()["objects"]["trainer"]["step"] == 20
    assert main(words + ["train.steps=30"]) == 0  # resumes at update 20
    payload = Checkpointer(run / "checkpoints").read()
    assert payload["step"] == 30 and payload["objects"]["trainer"]["step"] == 30
    scores = [json.loads(l) for l in (run / "scores.jsonl").read_text().splitlines()]
    assert [s["step"] for s in scores] == [20, 30]  # the final evaluation of each invocation
    assert all(s["normalized_reference"] == "dataset" for s in scores)
    out = tmp_path / "eval.json"
    assert main(["eval", str(run), "--episodes", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["step"] == 30 and len(result["returns"]) == 2
    norm = result["normalised"]
    assert norm["reference"] == "dataset" and norm["score"] == pytest.approx(100 * (result["return_mean"] + 20) / 320)


def test_offline_errors_and_dataset_info(tmp_path, dataset, capsys):
    assert main(["offline", "agent=dm", "size=debug", "--run-dir", str(tmp_path / "a")]) == 2
    assert "needs dataset=" in capsys.readouterr().err
    assert main(["offline", "agent=dm", f"dataset={tmp_path / 'missing.hdf5'}", "--run-dir", str(tmp_path / "b")]) == 2
    assert "missing.hdf5" in capsys.readouterr().err
    assert main(["offline", "agent=drama", f"dataset={dataset}", "--run-dir", str(tmp_path / "c")]) == 2
    assert "valid agents" in capsys.readouterr().err
    assert main(["dataset", "info", dataset]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["transitions"] == 300 and info["episodes"] == 6 and info["timeouts"] == 6
