"""The ``ssmrl`` command line: help texts in a subprocess, errors for bad words and unavailable pieces."""
import subprocess
import sys

import pytest

from ssmrl.cli.main import main

SUBCOMMANDS = ["train", "eval", "imagine", "offline", "dataset", "bench"]


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
