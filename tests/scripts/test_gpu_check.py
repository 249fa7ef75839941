"""scripts/gpu_check.py: its smoke mode runs here with Triton in the CPU interpreter; the full check runs where a
GPU is visible."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _run(*args: str, interpret: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


def test_smoke_mode_on_cpu_passes_every_check():
    proc = _run("--smoke", "--device", "cpu", interpret=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    summary = json.loads(next(line for line in lines if line.startswith("{")))
    assert summary["failed"] == 0 and summary["checks"] >= 26
    for kernel in ("diag_scan real", "diag_scan complex", "selective_scan", "ssd_scan"):
        assert sum(line.startswith(f"PASS {kernel} (") for line in lines) == 5  # one per reset pattern


def test_cpu_without_the_interpreter_is_refused_with_a_message():
    proc = _run("--smoke", "--device", "cpu", interpret=False)
    assert proc.returncode == 2 and "TRITON_INTERPRET=1" in proc.stderr


@pytest.mark.cuda
def test_full_check_on_the_gpu():
    proc = _run("--device", "cuda", interpret=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
