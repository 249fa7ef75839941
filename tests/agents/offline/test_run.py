"""``ssmrl offline`` / ``ssmrl eval`` / ``ssmrl dataset info`` on a tiny D4RL-format file (``write_tiny_d4rl``)."""
import json

import numpy as np
import pytest

from agents.offline.io import write_d4rl
from ssmrl.cli.main import main
from ssmrl.runs.checkpoint import Checkpointer

from tests.agents.offline import write_tiny_d4rl


@pytest.fixture
def dataset(tmp_path):
    return write_tiny_d4rl(tmp_path / "tiny.hdf5")


@pytest.mark.parametrize("agent", ["dm", "bc"])
def test_offline_train_resume_eval(tmp_path, dataset, agent, capsys):
    run = tmp_path / "run"
    words = ["offline", f"agent={agent}", f"dataset={dataset}", "size=debug", "train.eval_every=0", "train.eval_episodes=1",
             "train.log_every=10", "train.checkpoint_every=10", "offline.max_eval_steps=10", "--run-dir", str(run)]
    capsys.readouterr()
    assert main(words + ["train.steps=20"]) == 0
    assert Checkpointer(run / "checkpoints").read()["objects"]["trainer"]["step"] == 20
    assert f"{agent} tiny.hdf5: 20/20 update (100.0%)" in capsys.readouterr().err  # progress, also off a terminal
    assert main(words + ["train.steps=30"]) == 0  # resumes at update 20
    assert f"{agent} tiny.hdf5: 30/30 update (100.0%), " in capsys.readouterr().err
    payload = Checkpointer(run / "checkpoints").read()
    assert payload["step"] == 30 and payload["objects"]["trainer"]["step"] == 30
    scores = [json.loads(l) for l in (run / "scores.jsonl").read_text().splitlines()]
    assert [s["step"] for s in scores] == [20, 30]  # the final evaluation of each invocation
    assert all(s["normalised_reference"] == "dataset" for s in scores)
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


def test_a_dataset_that_names_no_env_is_refused_before_training(tmp_path, capsys):
    """A real D4RL file carries no env metadata: its name says the task, or the run is refused (not trained
    without evaluation and then failing at `ssmrl eval`)."""
    from agents.offline.io import read_d4rl

    data, _ = read_d4rl(_tiny(tmp_path))
    anonymous = write_d4rl(str(tmp_path / "data.hdf5"), data, {})
    run_dir = tmp_path / "run"
    assert main(["offline", "agent=bc", f"dataset={anonymous}", "--run-dir", str(run_dir)]) == 2
    assert "offline.env: no evaluation env is known" in capsys.readouterr().err and not run_dir.exists()
    named = write_d4rl(str(tmp_path / "hopper-medium-v2.hdf5"), data, {})
    assert main(["offline", "agent=bc", f"dataset={named}", "train.steps=2", "train.eval_every=0",
                 "train.eval_episodes=1", "offline.max_eval_steps=5", "offline.batch_size=4",
                 "--run-dir", str(run_dir)]) == 0
    result = json.loads((run_dir / "offline_result.json").read_text())
    assert result["task"] == "hopper"
    # no dataset references, and D4RL's belong to gym v2/v3: the score is refused, naming the env it came from
    assert result["final"]["normalised"] is None and "Hopper-v5" in result["final"]["normalised_refused"]


def _tiny(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    arrays = {"observations": rng.normal(size=(n, 11)).astype(np.float32), "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
              "next_observations": rng.normal(size=(n, 11)).astype(np.float32), "rewards": rng.normal(size=n).astype(np.float32),
              "terminals": np.zeros(n, bool), "timeouts": (np.arange(n) % 20 == 19)}
    return str(write_d4rl(str(tmp_path / "tiny-src.hdf5"), arrays, {}))


def test_an_offline_run_reads_its_dataset_once(tmp_path, dataset, monkeypatch):
    """The pre-run check reads and validates the whole file; the trainer gets those arrays instead of reading
    the file a second time (also on resume)."""
    import agents.offline.io as io
    import agents.offline.run as offline_run

    reads = []
    original = io.load_dataset

    def counted(path, *args, **kwargs):
        reads.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(io, "load_dataset", counted)
    monkeypatch.setattr(offline_run, "load_dataset", counted)
    words = ["offline", "agent=bc", f"dataset={dataset}", "size=debug", "train.eval_every=0", "train.eval_episodes=0",
             "--run-dir", str(tmp_path / "run")]
    assert main(words + ["train.steps=5"]) == 0
    assert len(reads) == 1
    assert main(words + ["train.steps=8"]) == 0  # resume
    assert len(reads) == 2


def test_checkpoints_follow_checkpoint_every_whatever_the_log_interval(tmp_path, dataset):
    run = tmp_path / "run"
    assert main(["offline", "agent=bc", f"dataset={dataset}", "size=debug", "train.eval_every=0", "train.eval_episodes=1",
                 "train.log_every=10", "train.checkpoint_every=15", "offline.max_eval_steps=10", "train.steps=20",
                 "--run-dir", str(run)]) == 0
    steps = sorted(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("ckpt-*.pt"))
    assert steps == [15, 20]  # 15 is no log step: checkpoints came only at multiples of both intervals before
