"""Discrete stochastic latents (DreamerV3): ``groups`` categoricals of ``classes`` classes each.

Logits are carried flat as ``(..., groups * classes)``. Probabilities are mixed with ``unimix`` of the
uniform distribution (1%) so that no class has zero probability (keeps the KL finite); samples are one-hot
with straight-through gradients (``sample + probs - probs.detach()``).
KL balancing: dyn = KL(sg(q) || p) trains the prior, rep = KL(q || sg(p)) regularises the posterior; each is
clipped below at ``free_bits`` nats (per step, summed over groups) before weighting.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class CategoricalLatent:
    """Stateless helper bound to a (groups, classes, unimix) shape; all methods act on flat logits."""

    def __init__(self, groups: int, classes: int, unimix: float = 0.01) -> None:
        if groups < 1 or classes < 2:
            raise ValueError(f"latent needs groups >= 1 and classes >= 2, got {groups}x{classes}")
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"unimix must be in [0, 1), got {unimix}")
        self.groups, self.classes, self.unimix = groups, classes, unimix
        self.dim = groups * classes  # length of a flattened sample

    def _split(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.dim:
            raise ValueError(f"latent logits must have last dim {self.dim}, got {tuple(logits.shape)}")
        return logits.reshape(*logits.shape[:-1], self.groups, self.classes)

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., G*K) -> mixed probabilities (..., G, K)."""
        p = torch.softmax(self._split(logits).float(), -1)
        return (1.0 - self.unimix) * p + self.unimix / self.classes

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., G*K) -> log of the mixed probabilities (..., G, K)."""
        return torch.log(self.probs(logits))

    def sample(self, logits: torch.Tensor, sample: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(..., G*K) logits -> one-hot straight-through latent (..., G*K).

        ``sample=False`` takes the mode. Sampling uses the Gumbel-max trick with ``generator`` so that the
        same generator state gives the same latents (draws are laid out by position: a tensor of the same
        shape gets the same noise at the same index).
        """
        probs = self.probs(logits)
        if sample:
            u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
            neg_log_u = (-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20)  # in (0, 46]
            gumbel = -torch.log(neg_log_u)
            index = torch.argmax(torch.log(probs) + gumbel, -1)
        else:
            index = torch.argmax(probs, -1)
        onehot = F.one_hot(index, self.classes).to(probs.dtype)
        st = onehot + probs - probs.detach()
        return st.reshape(*logits.shape[:-1], self.dim)

    def kl(self, lhs_logits: torch.Tensor, rhs_logits: torch.Tensor) -> torch.Tensor:
        """KL(lhs || rhs) summed over groups: (...,)."""
        lp, rp = self.log_probs(lhs_logits), self.log_probs(rhs_logits)
        return (lp.exp() * (lp - rp)).sum(-1).sum(-1)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """Entropy summed over groups: (...,)."""
        lp = self.log_probs(logits)
        return -(lp.exp() * lp).sum(-1).sum(-1)

    def kl_losses(self, post_logits: torch.Tensor, prior_logits: torch.Tensor,
                  free_bits: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (dyn, rep, kl) each (...,): dyn = max(fb, KL(sg(q)||p)), rep = max(fb, KL(q||sg(p))),
        kl = the unclipped KL(q||p) for logging."""
        dyn = self.kl(post_logits.detach(), prior_logits)
        rep = self.kl(post_logits, prior_logits.detach())
        kl = rep.detach()
        return dyn.clamp_min(free_bits), rep.clamp_min(free_bits), kl
