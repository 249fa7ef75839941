"""Typed configs for the offline learners (Decision Mamba, Decision Transformer, BC) and their training loop.

Defaults follow Decision Mamba (Lv et al., NeurIPS 2024; docs/references.md#decision-mamba): context K = 20,
batch 64, lr 1e-4, weight decay 1e-5, dropout 0.1, 100k updates, alpha_T = 0.85 for the self-evolving regulariser.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ACTING_MODES = ("window", "recurrent")  # how Decision Mamba uses its context when acting (OfflineConfig.acting)
# D4RL evaluation return targets (docs/references.md#decision-mamba); for locally made data the trainer scales them
# (see trainer)
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
    # Loss (Decision Mamba's public code): 0.9 MSE(action) + 0.05 SmoothL1(next state) + 0.05 SmoothL1(next RTG);
    # aux_loss="mse" with all weights 1 was this project's first version.
    action_coef: float = 0.9
    aux_state_coef: float = 0.05  # next-state head loss weight
    aux_rtg_coef: float = 0.05  # next-RTG head loss weight
    aux_loss: str = "smooth_l1"  # "smooth_l1" | "mse" for the two auxiliary heads
    # Decision Transformer
    n_heads: int = 1


@dataclass
class PSERConfig:
    """Progressive self-evolving regularisation. Training runs in stages; from stage 1 on the action target is
    ``(1 - alpha_k) a_data + alpha_k a_prev`` with ``a_prev`` from a frozen copy of the previous stage's policy and
    ``alpha_k = min(alpha_cap, alpha_max * k / (n - 1))`` for n stages.

    ``schedule="iterations"`` (Decision Mamba's public code): a stage is one training iteration of
    ``iteration_updates`` (2,500) updates, and alpha is capped at ``alpha_cap`` = 0.5 (its ``lower_bound``).
    ``schedule="stages"``: ``stages`` equal stages over the run, capped at alpha_max (this project's first version).
    """

    enabled: bool = True
    schedule: str = "iterations"  # "iterations" | "stages"
    iteration_updates: int = 2500
    stages: int = 4  # schedule="stages" only
    alpha_max: float = 0.85  # alpha_T of the paper
    alpha_cap: float | None = 0.5  # None: no cap below alpha_max

    def __post_init__(self) -> None:
        if self.schedule not in ("iterations", "stages"):
            raise ValueError(f"schedule: expected 'iterations' or 'stages', got {self.schedule!r}")
        if self.iteration_updates < 1 or self.stages < 1:
            raise ValueError("iteration_updates and stages must be >= 1")
        if not 0.0 <= self.alpha_max <= 1.0 or (self.alpha_cap is not None and not 0.0 <= self.alpha_cap <= 1.0):
            raise ValueError(f"alpha_max and alpha_cap must lie in [0, 1], got {self.alpha_max}, {self.alpha_cap}")


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
    # Decision Mamba's acting: "window" re-runs the last K steps from a fresh state at every env step, as training
    # windows and the reference code do (Decision Transformer always acts this way); "recurrent" carries the state
    # over the whole episode, optionally restarting it every ``act_reset_every`` env steps.
    acting: str = "window"
    # apply D4RL's reference scores to returns from another env version than D4RL's (gym v2/v3), e.g. Gymnasium v5
    d4rl_reference_any_version: bool = False
    act_reset_every: int | None = None
    log_every: int = 1000
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    pser: PSERConfig = field(default_factory=PSERConfig)

    def __post_init__(self) -> None:
        if self.acting not in ACTING_MODES:
            raise ValueError(f"acting: expected one of {ACTING_MODES}, got {self.acting!r}")
