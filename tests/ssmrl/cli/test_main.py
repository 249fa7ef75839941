"""The ``ssmrl`` command line: help texts in a subprocess, errors for bad words and unavailable pieces."""
import subprocess
import sys

import pytest

from ssmrl.cli.main import main

SUBCOMMANDS = ["train", "eval", "imagine", "offline", "config", "dataset", "bench"]


def _ssmrl(*args):
    return subprocess.run([sys.executable, "-m", "ssmrl.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_every_subcommand():
    out = _ssmrl("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name):
    out = _ssmrl(name, "--help")
    assert out.returncode == 0 and out.stdout.startswith(f"usage: ssmrl {name}")


def test_bad_words_fail_with_the_key_named(tmp_path, capsys):
    assert main(["train", "train.stepz=3", "--run-dir", str(tmp_path / "r")]) == 2
    assert "train.stepz" in capsys.readouterr().err
    assert main(["train", "agent=nonexistent", "--run-dir", str(tmp_path / "r2")]) == 2
    assert "unknown agent preset 'nonexistent'" in capsys.readouterr().err
    assert main(["train", "justaword", "--run-dir", str(tmp_path / "r3")]) == 2
    assert "justaword" in capsys.readouterr().err


def test_train_resume_and_eval_end_to_end(tmp_path):
    """The random agent through the CLI: train, resume with a larger budget, evaluate (writes JSON)."""
    import json

    run = tmp_path / "run"
    words = ["train", "agent=random", "env=memory/doors-keys-3", "size=debug", "--run-dir", str(run)]
    assert main(words + ["train.steps=100", "train.checkpoint_every=50"]) == 0
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 100
    assert main(words + ["train.steps=150"]) == 0  # resumes: continues from 100, not from 0
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 150
    info = json.loads((run / "run.json").read_text())
    assert info["resumes"][-1]["changes"] == {"train.steps": 150}
    assert info["env_settings"]  # the env's full settings recorded
    out = tmp_path / "eval.json"
    assert main(["eval", str(run), "--episodes", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["step"] == 150 and len(result["per_episode"]) == 2
    assert result["mean"] == sum(e["return"] for e in result["per_episode"]) / 2
    assert main(["eval", str(tmp_path / "missing")]) == 2
