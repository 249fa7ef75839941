"""Progressive self-evolving regularisation (PSER) of Decision Mamba (Lv et al. 2024).

Training runs in stages. From stage 1 on, a frozen copy of the policy as it was at the end of the previous stage
predicts actions on the same windows, and the action target becomes ``(1 - alpha_k) a_data + alpha_k a_prev``:
noisy behaviour actions are pulled towards the (smoother) earlier policy. ``alpha_k`` ramps linearly over the
stages towards ``alpha_max`` (alpha_T, 0.85 in the paper) and is capped at ``alpha_cap`` (0.5, the public code's
``lower_bound``). With ``schedule="iterations"`` (default, as the public code) a stage is a training iteration of
2,500 updates; with ``"stages"`` the run is cut into ``stages`` equal parts.
(The public code mixes in the *current* model's prediction, and its released loss then sets alpha to 0 after the
cap; this module follows the paper's frozen previous policy: docs/fidelity.md.)
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from agents.offline.config import PSERConfig


def num_stages(total_updates: int, cfg: PSERConfig) -> int:
    """How many stages a run of ``total_updates`` has."""
    if cfg.schedule == "iterations":
        return max(1, -(-total_updates // cfg.iteration_updates))
    return cfg.stages


def stage_of(update: int, total_updates: int, cfg: PSERConfig) -> int:
    """Stage index in ``[0, n)`` of a 0-based update counter."""
    n = num_stages(total_updates, cfg)
    if not cfg.enabled or n <= 1:
        return 0
    if cfg.schedule == "iterations":
        return min(n - 1, update // cfg.iteration_updates)
    return min(n - 1, update * n // max(1, total_updates))


def alpha_of(stage: int, total_updates: int, cfg: PSERConfig) -> float:
    """``alpha_k = min(cap, alpha_max * k / (n - 1))`` for n stages (cap: ``alpha_cap``, else alpha_max); 0 in
    stage 0 (plain behaviour cloning target)."""
    n = num_stages(total_updates, cfg)
    if not cfg.enabled or stage <= 0 or n <= 1:
        return 0.0
    cap = cfg.alpha_max if cfg.alpha_cap is None else min(cfg.alpha_cap, cfg.alpha_max)
    return min(cap, cfg.alpha_max * stage / (n - 1))


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
