"""Fault injection on run directories: signals mid-run, a second trainer on the same directory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssmrl.runs.checkpoint import Checkpointer

WORDS = ["agent=drama", "env=memory/four-rooms", "env.options.max_steps=40", "env.options.image_size=16", "size=debug",
         "train.log_every=10", "train.checkpoint_every=100000"]


def _start(run_dir: Path, steps: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "ssmrl.cli.main", "train", *WORDS, f"train.steps={steps}",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _wait_for_metrics(run_dir: Path, proc: subprocess.Popen, rows: int, timeout: float = 120.0) -> None:
    path, t0 = run_dir / "metrics.jsonl", time.time()
    while time.time() - t0 < timeout:
        if path.is_file() and len(path.read_text().splitlines()) >= rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise TimeoutError("the trainer logged nothing")


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_at_the_next_safe_point_and_the_resume_continues(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, steps=100_000)
    _wait_for_metrics(run_dir, proc, rows=3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "checkpoint" in err
    payload = Checkpointer(run_dir / "checkpoints").read()
    stopped_at = int(payload["step"])
    assert stopped_at > 0 and stopped_at == int(payload["objects"]["counters"]["env_steps"])
    # the resume continues from the interrupt step: metrics rows stay unique and ordered
    proc = _start(run_dir, steps=stopped_at + 40)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    steps = _steps(run_dir)
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] >= stopped_at + 30


def test_a_second_trainer_on_a_live_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = _start(run_dir, steps=100_000)
    _wait_for_metrics(run_dir, first, rows=1)
    second = _start(run_dir, steps=100_000)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and f"pid {first.pid}" in err and "in use" in err
    assert first.poll() is None  # the first one is unaffected
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM


def test_a_missing_index_is_rebuilt_and_a_truncated_checkpoint_recovered_explicitly(tmp_path, capsys):
    """Deleting latest.json never restarts a run from step 0; after a truncated newest checkpoint (a clear error)
    --from-checkpoint resumes from the previous one and the logs continue from there."""
    from ssmrl.cli.main import main

    run_dir = tmp_path / "run"
    words = ["train", *WORDS[:-1], "train.checkpoint_every=40", "--run-dir", str(run_dir)]
    assert main([*words, "train.steps=120"]) == 0
    ckpts = Checkpointer(run_dir / "checkpoints")
    assert [p.name for p in ckpts.all()] == ["ckpt-000000080.pt", "ckpt-000000120.pt"]
    (run_dir / "checkpoints" / "latest.json").unlink()
    assert main([*words, "train.steps=160"]) == 0  # rebuilt from ckpt 120, continued to 160
    err = capsys.readouterr().err
    assert "now points at ckpt-000000120.pt" in err
    assert Checkpointer(run_dir / "checkpoints").read()["step"] == 160
    steps = _steps(run_dir)
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[0] < 40  # not restarted

    newest = run_dir / "checkpoints" / "ckpt-000000160.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    assert main([*words, "train.steps=200"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    previous = run_dir / "checkpoints" / "ckpt-000000120.pt"
    assert main([*words, "train.steps=200", "--from-checkpoint", str(previous)]) == 0
    assert (run_dir / "checkpoints" / "ckpt-000000160.pt.rejected").is_file()
    assert Checkpointer(run_dir / "checkpoints").read()["step"] == 200
    steps = _steps(run_dir)
    assert steps == sorted(steps) and len(steps) == len(set(steps))


@pytest.mark.parametrize("words, message", [
    (["env=atari100k/Pongg"], "env.id='atari100k/Pongg'"),
    (["train.steps=0"], "steps: expected > 0"),
    (["train.checkpoint_every=0"], "checkpoint_every: expected > 0"),
    (["train.log_every=-5"], "log_every: expected > 0"),
    (["device=cuda"], "device:"),
    (["agent=dm"], "agent: unknown agent 'dm' for ssmrl train"),
    (["dreamer.imag_starts=sideways"], "imag_starts"),
    (["wm.overrides.ssm.d_statee=8"], "wm: unknown world-model config key 'ssm.d_statee'"),
    (["wm.overrides.d_model=0"], "wm: WorldModelConfig.d_model must be a positive int"),
    (["env.num_envs=0"], "env.num_envs: expected >= 1"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, words, message):
    import torch

    from ssmrl.cli.main import main

    if words == ["device=cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run_dir = tmp_path / "new"
    assert main(["train", "agent=drama", "size=debug", *words, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssmrl train: error:") and message in err and "Traceback" not in err
    assert not run_dir.exists()


def test_offline_without_a_dataset_file_creates_nothing(tmp_path, capsys):
    from ssmrl.cli.main import main

    run_dir = tmp_path / "off"
    assert main(["offline", "agent=dm", f"dataset={tmp_path / 'missing.hdf5'}", "--run-dir", str(run_dir)]) == 2
    assert "missing.hdf5 does not exist" in capsys.readouterr().err and not run_dir.exists()


def test_budgets_accept_integral_floats_and_refuse_going_below_the_progress(tmp_path, capsys):
    from ssmrl.cli.main import main
    from ssmrl.runs.run import Run
    from ssmrl.cli.config import Config

    run_dir = tmp_path / "run"
    words = ["train", *WORDS[:-1], "train.checkpoint_every=40", "--run-dir", str(run_dir)]
    assert main([*words, "train.steps=8e1"]) == 0  # 8e1 means 80
    assert Run.load(run_dir, Config).config.train.steps == 80
    assert main([*words, "train.steps=40"]) == 2
    assert "train.steps=40 is below the run's progress (80" in capsys.readouterr().err
    assert Run.load(run_dir, Config).config.train.steps == 80  # nothing rewritten
    file_dir = tmp_path / "afile"
    file_dir.write_text("x")
    assert main(["train", "size=debug", "--run-dir", str(file_dir)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_full_disk_mid_run_is_a_one_line_error_and_the_last_checkpoint_survives(tmp_path):
    """Writes past a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) fail like a full disk: exit status 1 with a
    message, no traceback; the checkpoint written before the limit still loads."""
    import resource

    run_dir = tmp_path / "run"
    from ssmrl.cli.main import main

    words = ["train", *WORDS[:-1], "train.checkpoint_every=40", "--run-dir", str(run_dir)]
    assert main([*words, "train.steps=40"]) == 0
    size = max(p.stat().st_size for p in (run_dir / "checkpoints").glob("ckpt-*.pt"))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "ssmrl.cli.main", *words, "train.steps=120"], capture_output=True,
                          text=True, env=env, preexec_fn=limit, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ssmrl train: error:" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert Checkpointer(run_dir / "checkpoints").read()["step"] == 40


def test_eval_refuses_an_unwritable_output_before_playing(tmp_path, capsys, monkeypatch):
    from ssmrl.cli.main import main

    run_dir = tmp_path / "run"
    assert main(["train", *WORDS[:-1], "train.steps=40", "train.checkpoint_every=40", "--run-dir", str(run_dir)]) == 0
    assert main(["eval", str(run_dir), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 2
    assert "pass --out FILE" in capsys.readouterr().err


def test_other_commands_refuse_bad_input_in_one_line(tmp_path, capsys):
    import torch

    from ssmrl.cli.main import main

    assert main(["dataset", "collect", "env=mujoco/Hopperr", "--out", str(tmp_path / "d")]) == 2
    assert "env: unknown MuJoCo task" in capsys.readouterr().err and not (tmp_path / "d").exists()
    empty = tmp_path / "empty.hdf5"
    empty.write_bytes(b"")
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    for path, message in ((empty, "the file is empty"), (text, "not a readable HDF5 file")):
        assert main(["dataset", "info", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and message in err and "Traceback" not in err
    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, "-m", "ssmrl.cli.main", "bench", "scan", "--quick", "--device", "cuda"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; needs a normal user")
def test_a_read_only_parent_is_a_one_line_error_and_creates_nothing(tmp_path, capsys):
    from ssmrl.cli.main import main

    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert main(["train", "agent=drama", "size=debug", "--run-dir", str(parent / "run")]) == 2
        assert "cannot create run directory" in capsys.readouterr().err
        assert not (parent / "run").exists()
    finally:
        parent.chmod(0o700)
