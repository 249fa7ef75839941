"""Typed configuration of the imagination actor-critic (DreamerV3 recipe with Drama's constants).

Constants are Drama's (``docs/references.md#drama-training``) unless marked as DreamerV3 defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssmrl.optim import OptimizerConfig

_CONT_DISTS = ("bounded_normal", "tanh_normal")
_ACTOR_GRADS = ("reinforce", "backprop")
_SLOW_REG_TARGETS = ("return", "value")
IMAG_STARTS = ("replay", "posterior")


@dataclass
class ActorCriticConfig:
    # networks (Drama: actor 3x256, critic 3x512; Linear -> LayerNorm -> SiLU per layer as in DreamerV3)
    actor_layers: int = 3
    actor_units: int = 256
    critic_layers: int = 3
    critic_units: int = 512
    # returns
    gamma: float = 0.985  # Drama
    lam: float = 0.95  # Drama
    # actor
    entropy_coef: float = 3e-4  # Drama / DreamerV3
    unimix: float = 0.01  # 1% uniform mix in the discrete policy (DreamerV3)
    continuous_dist: str = "bounded_normal"  # DreamerV3's Normal(tanh(mu), std in [min_std, max_std])
    min_std: float = 0.1  # DreamerV3
    max_std: float = 1.0  # DreamerV3
    # "reinforce" (default for both action kinds, as final DreamerV3) or "backprop" (continuous only:
    # maximise the lambda-return through differentiable imagined dynamics)
    actor_grad_continuous: str = "reinforce"
    # critic: 255-bin symlog two-hot on [-20, 20] (Drama), slow EMA critic 0.98 (Drama)
    num_bins: int = 255
    bins_low: float = -20.0
    bins_high: float = 20.0
    slow_critic_decay: float = 0.98
    slow_critic_every: int = 1  # updates between EMA steps of the slow critic
    slow_reg_scale: float = 1.0  # weight of the "stay close to the slow critic" term (Drama, DreamerV3)
    # what the regulariser pulls the critic towards: "return" = lambda-returns bootstrapped with the slow
    # critic (Drama, STORM), "value" = the slow critic's own prediction at s_t (DreamerV3)
    slow_reg_target: str = "return"
    slow_target: bool = False  # compute lambda-returns from the slow critic instead of the fast one
    # return normalisation: advantages / max(1, EMA(P95) - EMA(P5)) of the lambda-returns (Drama, DreamerV3)
    return_norm_decay: float = 0.99
    return_norm_low: float = 0.05
    return_norm_high: float = 0.95
    return_norm_max: float = 1.0  # the floor of the scale: max(return_norm_max, P95 - P5)
    # weight step t of both losses by prod_{k<t} continues_k (DreamerV3). Drama averages all steps
    # uniformly (termination only enters the returns); False reproduces that.
    weight_by_continuation: bool = True
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, dict):
            self.optimizer = OptimizerConfig(**self.optimizer)
        checks = [  # (holds, message)
            (self.actor_layers >= 1, f"actor_layers: expected >= 1, got {self.actor_layers}"),
            (self.critic_layers >= 1, f"critic_layers: expected >= 1, got {self.critic_layers}"),
            (self.actor_units >= 1, f"actor_units: expected >= 1, got {self.actor_units}"),
            (self.critic_units >= 1, f"critic_units: expected >= 1, got {self.critic_units}"),
            (0.0 < self.gamma <= 1.0, f"gamma: expected a value in (0, 1], got {self.gamma}"),
            (0.0 <= self.lam <= 1.0, f"lam: expected a value in [0, 1], got {self.lam}"),
            (self.entropy_coef >= 0, f"entropy_coef: expected >= 0, got {self.entropy_coef}"),
            (0.0 <= self.unimix < 1.0, f"unimix: expected a value in [0, 1), got {self.unimix}"),
            (self.continuous_dist in _CONT_DISTS,
             f"continuous_dist: expected one of {_CONT_DISTS}, got {self.continuous_dist!r}"),
            (0.0 < self.min_std < self.max_std,
             f"expected 0 < min_std < max_std, got min_std={self.min_std}, max_std={self.max_std}"),
            (self.actor_grad_continuous in _ACTOR_GRADS,
             f"actor_grad_continuous: expected one of {_ACTOR_GRADS}, got {self.actor_grad_continuous!r}"),
            (self.num_bins >= 2, f"num_bins: expected >= 2, got {self.num_bins}"),
            (self.bins_high > self.bins_low, f"bins_high ({self.bins_high}) must exceed bins_low ({self.bins_low})"),
            (0.0 <= self.slow_critic_decay < 1.0,
             f"slow_critic_decay: expected a value in [0, 1), got {self.slow_critic_decay}"),
            (self.slow_critic_every >= 1, f"slow_critic_every: expected >= 1, got {self.slow_critic_every}"),
            (self.slow_reg_scale >= 0, f"slow_reg_scale: expected >= 0, got {self.slow_reg_scale}"),
            (self.slow_reg_target in _SLOW_REG_TARGETS,
             f"slow_reg_target: expected one of {_SLOW_REG_TARGETS}, got {self.slow_reg_target!r}"),
            (0.0 <= self.return_norm_decay < 1.0,
             f"return_norm_decay: expected a value in [0, 1), got {self.return_norm_decay}"),
            (0.0 <= self.return_norm_low < self.return_norm_high <= 1.0,
             "expected 0 <= return_norm_low < return_norm_high <= 1, got "
             f"{self.return_norm_low}, {self.return_norm_high}"),
            (self.return_norm_max > 0, f"return_norm_max: expected > 0, got {self.return_norm_max}"),
        ]
        for holds, message in checks:
            if not holds:
                raise ValueError(message)


def _wm_optimizer() -> OptimizerConfig:
    # Drama: LaProp, lr 4e-5, eps 1e-20, 1k warm-up updates, world-model gradients clipped at 1000.
    return OptimizerConfig(lr=4e-5, eps=1e-20, warmup_updates=1000, grad_clip=1000.0)


@dataclass
class WorldModelSection:
    """Which world model: a preset (drama, s4wm, s5wm, rssm, transformer) at a size (debug, small, drama), whose
    values are in ``configs/world_models.yaml``, plus overrides of any WorldModelConfig field (dotted keys allowed:
    ``{"ssm.d_state": 8}``; an unknown key is an error naming it)."""

    preset: str = "drama"
    size: str = "drama"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class DreamerConfig:
    """Training-loop settings (Drama's Atari100k values as defaults)."""

    batch_size: int = 16  # world-model batch: 16 x 128 (Drama)
    seq_len: int = 128
    imag_batch: int = 1024  # imagination starts (Drama)
    imag_context: int = 8  # real steps observed before imagining (Drama)
    horizon: int = 16  # imagined steps (Drama)
    warmup_steps: int = 1032  # random-policy env steps before learning starts (Drama)
    train_ratio: float = 1.0  # updates (1 WM + 1 AC) per env step after warm-up (Drama)
    life_loss_terminal: bool = False  # Atari: a lost life ends the learner's episode (continue target 0)
    wm_optimizer: OptimizerConfig = field(default_factory=_wm_optimizer)
    greedy_eval: bool = False  # periodic evaluation takes the mode action
    # Where imagination starts (docs/architecture.md, "Imagination starts"):
    #   "replay"    (Drama) a separate sample of imag_batch windows of imag_context steps, observed again;
    #   "posterior" (DreamerV3) the detached posterior states the world-model batch already computed, at the
    #               last imag_batch // batch_size steps of every window: nothing is encoded twice.
    imag_starts: str = "replay"
    # CUDA only: let float32 matmuls and convs use TF32 tensor cores (~10 mantissa bits; the codec's bf16 option is
    # the stronger form). Sets torch's process-wide flags when the agent is built on a GPU.
    tf32: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.wm_optimizer, dict):
            self.wm_optimizer = OptimizerConfig(**self.wm_optimizer)
        if self.imag_starts not in IMAG_STARTS:
            raise ValueError(f"imag_starts: expected one of {IMAG_STARTS}, got {self.imag_starts!r}")
        for name in ("batch_size", "seq_len", "imag_batch", "imag_context", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.imag_starts == "posterior":
            per_window, rest = divmod(self.imag_batch, self.batch_size)
            if rest or not 1 <= per_window <= self.seq_len:
                raise ValueError(
                    f"imag_starts=posterior takes imag_batch // batch_size starts from each world-model window: "
                    f"imag_batch ({self.imag_batch}) must be a multiple of batch_size ({self.batch_size}) "
                    f"and at most batch_size * seq_len ({self.batch_size * self.seq_len})")

    @property
    def starts_per_window(self) -> int:
        """imag_starts=posterior: imagination starts taken from the last steps of each world-model window."""
        return self.imag_batch // self.batch_size


