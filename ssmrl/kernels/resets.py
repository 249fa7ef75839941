"""The episode-reset patterns every kernel backend is checked with (the tests and ``scripts/gpu_check.py``)."""
from __future__ import annotations

import torch

PATTERNS = ("none", "t0", "consecutive", "every", "random")


def make_first(pattern: str, B: int, L: int, g: torch.Generator) -> torch.Tensor:
    """``first`` (B, L) bool for one of ``PATTERNS`` (on the CPU; move it to the inputs' device)."""
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
    elif pattern != "none":
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    return first
