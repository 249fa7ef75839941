"""What the kernel tests share: the reset patterns every backend is checked with, and a runner for Triton
interpreter checks (Triton fixes interpreter mode when a kernel is first built, so they run in a fresh process)."""
import os
import subprocess
import sys

import torch

PATTERNS = ("none", "t0", "consecutive", "every", "random")


def make_first(pattern: str, B: int, L: int, g: torch.Generator) -> torch.Tensor:
    """``first`` (B, L) bool for one of ``PATTERNS``."""
    first = torch.zeros(B, L, dtype=torch.bool)
    if pattern == "t0":
        first[:, 0] = True
    elif pattern == "consecutive":
        first[0, 2:5] = True
        first[-1, L - 2 :] = True
    elif pattern == "every":
        first[:] = True
    elif pattern == "random":
        first = torch.rand(B, L, generator=g) < 0.3
    return first


def run_under_triton_interpreter(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` with ``python -c`` from the repository root with TRITON_INTERPRET=1 set from the start."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TRITON_INTERPRET="1")
    return subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=300)
