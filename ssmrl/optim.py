"""LaProp optimiser, linear warm-up, the optimiser config and factory shared by every learner (Dreamer's world
model and actor-critic, the world-model trainer).

LaProp (Ziyin et al. 2020) swaps Adam's order of operations: the gradient is first divided by the root of
the (bias-corrected) EMA of squared gradients, and momentum is applied to that normalised update. Per step:

    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    u_t = g_t / (sqrt(v_t / (1 - beta2^t)) + eps)
    m_t = beta1 m_{t-1} + (1 - beta1) u_t
    p_t = p_{t-1} - lr_t (m_t / (1 - beta1^t) + weight_decay p_{t-1})

The learning rate multiplies the bias-corrected momentum at the end (so a warm-up schedule scales each
step, not the contents of the momentum buffer). DreamerV3 and Drama use eps = 1e-20, which makes the first
update exactly sign(g).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["OptimizerConfig", "LaProp", "linear_warmup", "clip_grad_norm", "build_optimizer", "optimizer_step"]

_OPTIMIZERS = ("laprop", "adam")


@dataclass
class OptimizerConfig:
    """Optimiser shared by actor and critic (one instance, two parameter groups clipped separately)."""

    name: str = "laprop"  # Drama: LaProp (or Adam)
    lr: float = 4e-5  # Drama: 4e-5 for both models
    eps: float = 1e-20  # Drama/DreamerV3
    betas: tuple[float, float] = (0.9, 0.999)  # DreamerV3 default
    weight_decay: float = 0.0
    warmup_updates: int = 1000  # Drama: 1k linear warm-up updates
    grad_clip: float = 100.0  # Drama: 100 for the actor-critic (global norm, per network)

    def __post_init__(self) -> None:
        if self.name not in _OPTIMIZERS:
            raise ValueError(f"optimizer.name: expected one of {_OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr: expected > 0, got {self.lr}")
        if not self.eps >= 0:
            raise ValueError(f"optimizer.eps: expected >= 0, got {self.eps}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optimizer.betas: expected two values in [0, 1), got {self.betas}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.warmup_updates < 0:
            raise ValueError(f"optimizer.warmup_updates: expected >= 0, got {self.warmup_updates}")
        if not self.grad_clip > 0:
            raise ValueError(f"optimizer.grad_clip: expected > 0 (use a large value to disable), got {self.grad_clip}")



class LaProp(Optimizer):
    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        weight_decay: float = 0.0,
        foreach: bool = True,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"lr: expected >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas: expected two values in [0, 1), got {betas}")
        if not eps >= 0.0:
            raise ValueError(f"eps: expected >= 0, got {eps}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay: expected >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        # foreach: one multi-tensor op per formula line for all parameters with the same step count (the same
        # arithmetic as the per-parameter loop kept below as the reference; a test checks they agree exactly)
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.foreach:
            self._step_foreach()
        else:
            self._step_loop()
        return loss

    def _advance(self, p: Tensor) -> dict:
        """``p``'s state (created at its first step) with the step count advanced to this step."""
        if p.grad.is_sparse:
            raise RuntimeError("LaProp does not support sparse gradients")
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        return state

    def _step_foreach(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            by_step: dict[int, tuple[list, list, list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._advance(p)
                ps, gs, ms, vs = by_step.setdefault(state["step"], ([], [], [], []))
                ps.append(p), gs.append(p.grad), ms.append(state["exp_avg"]), vs.append(state["exp_avg_sq"])
            for t, (ps, gs, ms, vs) in by_step.items():
                torch._foreach_mul_(vs, beta2)
                torch._foreach_addcmul_(vs, gs, gs, value=1.0 - beta2)
                denom = torch._foreach_div(vs, 1.0 - beta2**t)
                torch._foreach_sqrt_(denom)
                torch._foreach_add_(denom, eps)
                torch._foreach_mul_(ms, beta1)
                torch._foreach_add_(ms, torch._foreach_div(gs, denom), alpha=1.0 - beta1)
                if wd != 0.0:
                    torch._foreach_add_(ps, ps, alpha=-lr * wd)
                torch._foreach_add_(ps, ms, alpha=-lr / (1.0 - beta1**t))

    def _step_loop(self) -> None:
        """The reference: one parameter at a time, the formulas of the module docstring line by line."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._advance(p)
                t = state["step"]
                g = p.grad
                m, v = state["exp_avg"], state["exp_avg_sq"]
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                denom = (v / (1.0 - beta2**t)).sqrt_().add_(eps)
                m.mul_(beta1).add_(g / denom, alpha=1.0 - beta1)
                if wd != 0.0:
                    p.add_(p, alpha=-lr * wd)
                p.add_(m, alpha=-lr / (1.0 - beta1**t))


def linear_warmup(optimizer: Optimizer, warmup_updates: int) -> LambdaLR:
    """Scale every group's lr by ``min(1, (k + 1) / warmup_updates)`` at update k (k = 0, 1, ...).

    The first update already uses ``lr / warmup_updates`` (not 0); ``warmup_updates = 0`` disables it.
    Call ``scheduler.step()`` after each ``optimizer.step()``.
    """
    if warmup_updates < 0:
        raise ValueError(f"warmup_updates: expected >= 0, got {warmup_updates}")
    if warmup_updates == 0:
        return LambdaLR(optimizer, lambda k: 1.0)
    return LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / warmup_updates))


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """Clip the global L2 norm of the gradients of ``params`` to ``max_norm``; returns the norm before clipping."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(())
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def build_optimizer(param_groups: Iterable[Tensor] | Iterable[dict], cfg: OptimizerConfig) -> tuple[Optimizer, LambdaLR]:
    """The optimiser named by ``cfg.name`` ("laprop" or "adam") with its warm-up schedule."""
    if cfg.name == "laprop":
        opt: Optimizer = LaProp(param_groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    elif cfg.name == "adam":
        # plain Adam (Drama's alternative); with eps=1e-20 its first step is also ~lr * sign(g)
        opt = torch.optim.Adam(param_groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    else:  # pragma: no cover - OptimizerConfig validates the name
        raise ValueError(f"optimizer.name: expected 'laprop' or 'adam', got {cfg.name!r}")
    return opt, linear_warmup(opt, cfg.warmup_updates)


def optimizer_step(loss: Tensor, parameters: Iterable[Tensor], optimizer: Optimizer, scheduler: LambdaLR | None,
                   grad_clip: float) -> Tensor:
    """zero_grad -> backward -> clip the global gradient norm -> step -> scheduler step (none when ``scheduler`` is
    None). Returns the norm before clipping (a 0-d tensor: no host sync)."""
    params = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = clip_grad_norm(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return norm
