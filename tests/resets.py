"""Reset patterns the kernel tests share: none, at t=0, consecutive resets, every step, random."""
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
