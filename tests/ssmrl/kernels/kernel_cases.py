"""What the kernel tests share: the reset patterns every backend is checked with, and a runner for Triton
interpreter checks (Triton fixes interpreter mode when a kernel is first built, so they run in a fresh process)."""
import os
import subprocess
import sys

from ssmrl.kernels.resets import PATTERNS, make_first  # noqa: F401  (re-exported for the kernel tests)
from tests import ROOT


def run_under_triton_interpreter(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` with ``python -c`` from the repository root with TRITON_INTERPRET=1 set from the start."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
