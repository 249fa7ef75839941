"""Progressive self-evolving regularisation (PSER) of Decision Mamba (Lv et al. 2024).

Training runs in stages. From stage 1 on, a frozen copy of the policy as it was at the end of the previous stage
predicts actions on the same windows, and the action target becomes ``(1 - alpha_k) a_data + alpha_k a_prev``:
noisy behaviour actions are pulled towards the (smoother) earlier policy. ``alpha_k`` ramps linearly over the
stages up to ``alpha_max`` (0.85 in the paper) and is capped there.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from agents.offline.config import PSERConfig


def stage_of(update: int, total_updates: int, cfg: PSERConfig) -> int:
    """Stage index in ``[0, stages)`` of a 0-based update counter (equal-length stages)."""
    if not cfg.enabled or cfg.stages <= 1:
        return 0
    return min(cfg.stages - 1, update * cfg.stages // max(1, total_updates))


def alpha_of(stage: int, cfg: PSERConfig) -> float:
    """``alpha_k = min(alpha_max, alpha_max * k / (stages - 1))``; 0 in stage 0 (plain behaviour cloning target)."""
    if not cfg.enabled or stage <= 0 or cfg.stages <= 1:
        return 0.0
    return min(cfg.alpha_max, cfg.alpha_max * stage / (cfg.stages - 1))


def freeze_copy(model: nn.Module) -> nn.Module:
    """A frozen, eval-mode deep copy (the previous stage's policy); later updates of ``model`` do not reach it."""
    prev = copy.deepcopy(model).eval()
    prev.requires_grad_(False)
    return prev


@torch.no_grad()
def pser_target(prev_model: nn.Module | None, batch: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """Refined action target ``(B, K, A)``; the data actions when there is no previous policy or ``alpha == 0``."""
    if prev_model is None or alpha == 0.0:
        return batch["actions"]
    if prev_model.training:
        raise ValueError("pser_target: the previous-stage policy must be frozen in eval mode (use freeze_copy)")
    a_prev = prev_model(batch)["action"]
    return (1.0 - alpha) * batch["actions"] + alpha * a_prev
