"""Run directories: layout, run.json, resume rules for command-line overrides, log continuation."""
import json

import pytest
import yaml

from ssmrl.runs.config import ConfigError
from ssmrl.runs.run import Run
from ssmrl.cli.config import Config


def test_new_run_writes_layout_config_and_run_json(tmp_path):
    run = Run.open(tmp_path / "r", ["size=debug", "seed=7", "train.log_every=3"], Config)
    assert not run.resumed
    for sub in ("checkpoints", "videos", "tb"):
        assert (run.directory / sub).is_dir()
    config = yaml.safe_load((run.directory / "config.yaml").read_text())
    assert config["seed"] == 7 and config["train"]["log_every"] == 3 and config["size"] == "debug"
    info = json.loads((run.directory / "run.json").read_text())
    assert info["seed"] == 7
    assert info["packages"]["torch"] and info["packages"]["numpy"]
    assert {"commit", "dirty"} <= set(info["git"])
    assert info["machine"]["cpu_count"] >= 1
    run.log_metrics(5, {"loss": 1.5, "nan": float("nan")})
    run.close()
    row = json.loads((run.directory / "metrics.jsonl").read_text().splitlines()[0])
    assert row == {"step": 5, "loss": 1.5, "nan": "nan"}
    assert list((run.directory / "tb").iterdir())  # TensorBoard event file written


def test_resume_applies_allowed_overrides_and_rejects_others(tmp_path):
    Run.open(tmp_path / "r", ["size=debug", "seed=1"], Config).close()
    # Same words again: nothing changes.
    run = Run.open(tmp_path / "r", ["size=debug", "seed=1"], Config)
    assert run.resumed and run.config.seed == 1
    run.close()  # releases the directory's lock
    # A budget change is applied and written back.
    run = Run.open(tmp_path / "r", ["train.steps=999"], Config)
    assert run.config.train.steps == 999
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]["steps"] == 999
    assert run.info()["resumes"][-1]["changes"] == {"train.steps": 999}
    run.close()
    # A change that would alter the learner is refused, naming the key and both values.
    with pytest.raises(ConfigError, match=r"cannot change seed .*run has 1.*says 2"):
        Run.open(tmp_path / "r", ["seed=2"], Config)
    with pytest.raises(ConfigError, match="cannot change env.id"):
        Run.open(tmp_path / "r", ["env.id=memory/doors-keys-3"], Config)


def test_non_run_directory_is_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        Run.open(tmp_path / "r", [], Config)


def test_resume_from_drops_log_lines_after_the_checkpoint(tmp_path):
    run = Run.open(tmp_path / "r", [], Config)
    for step in (10, 20, 30):
        run.log_score(step, episode_return=float(step))
    with open(run.directory / "scores.jsonl", "a") as f:
        f.write('{"step": 40, "episo')  # torn line from a crash
    run.resume_from(20)
    steps = [json.loads(l)["step"] for l in (run.directory / "scores.jsonl").read_text().splitlines()]
    assert steps == [10, 20]


def test_a_second_process_cannot_open_a_run_directory_in_use(tmp_path):
    """The lock is a flock on an open file: a second opener (here the same process, another open file) is refused
    with the holder named; after close (or the holder's death) the directory opens again."""
    import os
    import subprocess
    import sys

    from ssmrl.runs.run import RunLockedError

    first = Run.open(tmp_path / "r", ["size=debug", "seed=1"], Config)
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        Run.open(tmp_path / "r", [], Config)
    first.close()
    Run.open(tmp_path / "r", [], Config).close()
    # a process that dies holding the lock leaves nothing stale behind
    code = ("import os, sys; from ssmrl.runs.run import Run; from ssmrl.cli.config import Config; "
            f"Run.open({str(tmp_path / 'r')!r}, [], Config); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    Run.open(tmp_path / "r", [], Config).close()


def test_a_bad_config_creates_no_run_directory(tmp_path):
    from ssmrl.runs.config import ConfigError

    with pytest.raises(ConfigError, match="imag_starts"):
        Run.open(tmp_path / "new", ["agent=drama", "dreamer.imag_starts=sideways"], Config)
    assert not (tmp_path / "new").exists()
