"""Typed configs for the offline learners (Decision Mamba, Decision Transformer, BC) and their training loop.

Defaults follow Decision Mamba (Lv et al., NeurIPS 2024; REFERENCES.md): context K = 20, batch 64, lr 1e-4,
weight decay 1e-5, dropout 0.1, 100k updates, alpha_T = 0.85 for the self-evolving regulariser.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# D4RL evaluation return targets (REFERENCES.md); for locally made data the trainer scales them (see trainer)
D4RL_TARGET_RETURNS = {"hopper": 3600.0, "halfcheetah": 12000.0, "walker2d": 5000.0}


@dataclass
class ModelConfig:
    """Shared sizes of the sequence models; BC uses ``d_model``/``n_layers`` for its MLP."""

    d_model: int = 128
    n_layers: int = 3
    dropout: float = 0.1
    max_timestep: int = 1000  # size of the timestep embedding table (episode length cap)
    # Decision Mamba
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    fine_ssm: str = "mamba"  # SSM run over each (R, s, a) triplet: "mamba" | "s4d" | "s5"
    aux_state_coef: float = 1.0  # next-state head loss weight
    aux_rtg_coef: float = 1.0  # next-RTG head loss weight
    # Decision Transformer
    n_heads: int = 1


@dataclass
class PSERConfig:
    """Progressive self-evolving regularisation: ``stages`` equal stages of training; from stage 1 on the action
    target is ``(1 - alpha_k) a_data + alpha_k a_prev`` with ``a_prev`` from a frozen copy of the previous stage's
    policy and ``alpha_k = min(alpha_max, alpha_max * k / (stages - 1))`` (linear ramp, capped)."""

    enabled: bool = True
    stages: int = 4
    alpha_max: float = 0.85


@dataclass
class OfflineConfig:
    agent: str = "dm"  # "dm" | "dt" | "bc"
    env: str | None = None  # task to evaluate in; None -> dataset metadata "env_id"
    seed: int = 0
    context: int = 20  # K
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 1000  # linear lr warm-up (as DT)
    grad_clip: float = 0.25
    updates: int = 100_000
    rtg_scale: float = 1000.0  # returns-to-go are divided by this before embedding
    target_return: float | None = None  # None -> D4RL target (D4RL data) or scaled to the dataset's expert return
    eval_every: int = 10_000  # updates between evaluations (0: only at the end)
    eval_episodes: int = 5
    max_eval_steps: int | None = None  # cap per evaluation episode; None -> env limit
    # acting: None carries the recurrent state over the whole episode; n > 0 restarts the context every n env
    # steps (treated like an episode start for the sequence state), which matches training on K-windows that
    # begin from a zero state
    act_reset_every: int | None = None
    log_every: int = 1000
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    pser: PSERConfig = field(default_factory=PSERConfig)
