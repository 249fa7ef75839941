"""scripts/wm_gap.py: recomputes a checkpoint's wm_eval metrics exactly as the run logged them, writing nothing."""
from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest

from ssmrl.cli.main import main as cli

from tests import ROOT

_spec = importlib.util.spec_from_file_location("wm_gap", ROOT / "scripts" / "wm_gap.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


def _digest(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_recomputes_the_logged_evaluation_of_the_last_checkpoint_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["train", "agent=drama", "env=memory/four-rooms", "env.options.max_steps=40", "env.options.image_size=16",
                "size=debug", "train.steps=80", "train.eval_every=40", "train.checkpoint_every=40",
                "train.eval_episodes=2", "dreamer.warmup_steps=40", "--run-dir", str(run)]) == 0
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = next(m for m in reversed(logged) if "wm_eval/fresh/loss" in m)
    assert logged["step"] == 80
    before = _digest(run)
    capsys.readouterr()
    assert script.main([str(run), "--episodes", "2", "--windows", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["step"] == 80 and _digest(run) == before
    assert result["metrics"] == {k: v for k, v in logged.items() if k.startswith("wm_eval/")}
    assert result["summary"]["mean"] == logged["eval/mean"]


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(tmp_path)])
    assert exit_info.value.code == 2 and "not a run directory" in capsys.readouterr().err
