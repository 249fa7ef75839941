"""The Dreamer-style agent: a world model, an imagination actor-critic, their optimisers, and the acting policy.

One update (Drama's recipe, REFERENCES.md):

    world model    sample (B, L) windows from replay -> WorldModel.loss -> clip 1000 -> optimiser step
    actor-critic   sample (B_imag, context) windows -> observe them (no grad) -> imagine ``horizon`` steps from the
                   last posterior state with the actor -> rewards and continuation probabilities from the heads
                   -> ActorCritic.loss (lambda-returns, percentile return normalisation, slow critic)

Acting runs the world model one step per env step (``observe`` on a length-1 sequence with the carried state),
never re-running past frames; the state is zeroed where ``first`` is True.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.dreamer.actor_critic import ActorCritic, ActorCriticLearner
from agents.dreamer.config import ActorCriticConfig, OptimizerConfig
from agents.dreamer.optim import build_optimizer, clip_grad_norm
from ssmrl.replay.buffer import to_torch
from ssmrl.world_models import WorldModel, make_config


def _wm_optimizer() -> OptimizerConfig:
    # Drama: LaProp, lr 4e-5, eps 1e-20, 1k warm-up updates, world-model gradients clipped at 1000.
    return OptimizerConfig(lr=4e-5, eps=1e-20, warmup_updates=1000, grad_clip=1000.0)


@dataclass
class WorldModelSection:
    """Which world model: a preset (drama, s4wm, s5wm, rssm, transformer) at a size (debug, small, drama), plus
    overrides of any WorldModelConfig field (dotted keys allowed: ``{"ssm.d_state": 8}``)."""

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


def space_info(observation_space, action_space) -> dict[str, Any]:
    """What the networks need from the env: image shape, vector size, action size, discrete or not."""
    import gymnasium as gym

    spaces = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else None
    if spaces is None:
        is_image = observation_space.dtype == np.uint8 and len(observation_space.shape) >= 3
        spaces = {"image" if is_image else "vector": observation_space}
    unknown = sorted(set(spaces) - {"image", "vector"})
    if unknown:
        raise ValueError(f"Dreamer understands observation keys 'image' and 'vector', the env also has {unknown}")
    if isinstance(action_space, gym.spaces.Discrete):
        action_dim, discrete = int(action_space.n), True
    elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        if not (np.allclose(action_space.low, -1) and np.allclose(action_space.high, 1)):
            raise ValueError(f"continuous actions must lie in [-1, 1] (got {action_space}); rescale the env")
        action_dim, discrete = int(action_space.shape[0]), False
    else:
        raise ValueError(f"unsupported action space {action_space}")
    return {
        "image_shape": tuple(spaces["image"].shape) if "image" in spaces else None,
        "vector_dim": int(np.prod(spaces["vector"].shape)) if "vector" in spaces else None,
        "action_dim": action_dim,
        "discrete": discrete,
    }


class DreamerAgent:
    """World model + actor-critic + optimisers. ``state_dict`` holds everything a resume needs."""

    def __init__(self, wm_section: WorldModelSection, ac_cfg: ActorCriticConfig, cfg: DreamerConfig,
                 spaces: dict[str, Any], device: torch.device, seed: int):
        self.cfg, self.device, self.spaces = cfg, device, spaces
        wm_cfg = make_config(wm_section.preset, wm_section.size, action_dim=spaces["action_dim"],
                             image_shape=spaces["image_shape"], vector_dim=spaces["vector_dim"],
                             discrete_actions=spaces["discrete"], **wm_section.overrides)
        self.wm = WorldModel(wm_cfg, seed=seed).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.ac = ActorCritic(self.wm.feat_dim, spaces["action_dim"], spaces["discrete"], ac_cfg).to(device)
        if self.ac.backprop_actor:
            # imagine() runs without gradients (REINFORCE for both action kinds); backprop through the world
            # model would silently train the actor on its entropy term alone.
            raise ValueError("ac.actor_grad_continuous=backprop is not supported by the Dreamer loop; use reinforce")
        self.ac_learner = ActorCriticLearner(self.ac)
        # SSM parameters (A, dt, ...), biases and norms take no weight decay (ARCHITECTURE.md).
        self.wm_opt, self.wm_sched = build_optimizer(self.wm.param_groups(cfg.wm_optimizer.weight_decay), cfg.wm_optimizer)
        self.updates = 0

    # --- acting -----------------------------------------------------------------------------------------------
    def policy(self, greedy: bool = False, generator: torch.Generator | None = None) -> "DreamerPolicy":
        return DreamerPolicy(self, greedy, generator)

    # --- learning ---------------------------------------------------------------------------------------------
    def _batch(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        batch = to_torch(arrays, self.device)
        if self.cfg.life_loss_terminal and "life_loss" in batch:
            batch["is_terminal"] = batch["is_terminal"] | batch["life_loss"]
        return batch

    def update(self, replay, generator: torch.Generator) -> dict[str, float]:
        """One world-model update and one actor-critic update; returns their metrics as floats."""
        cfg = self.cfg
        self.wm.train()
        batch = self._batch(replay.sample(cfg.batch_size, cfg.seq_len, purpose="train"))
        wm_loss, metrics = self.wm.loss(batch, generator=generator)
        self.wm_opt.zero_grad(set_to_none=True)
        wm_loss.backward()
        metrics["grad_norm"] = clip_grad_norm(self.wm.parameters(), cfg.wm_optimizer.grad_clip)
        self.wm_opt.step()
        self.wm_sched.step()
        out = {f"wm/{k}": float(v) for k, v in metrics.items()}

        starts = self._batch(replay.sample(cfg.imag_batch, cfg.imag_context, purpose="imagination"))
        imagined = self.imagine(starts, generator)
        ac_metrics = self.ac_learner.train_step(imagined["features"], imagined["actions"], imagined["rewards"],
                                                imagined["continues"], generator=generator)
        out.update({f"ac/{k}": float(v) for k, v in ac_metrics.items()})
        self.updates += 1
        return out

    def imagine(self, starts: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Observe real context windows, then imagine ``horizon`` steps from each last posterior state."""
        obs = {k: starts[k] for k in ("image", "vector") if k in starts}
        with torch.no_grad():
            _, _, state = self.wm.observe(obs, starts["action"], starts["is_first"], generator=generator)
            rollout = self.wm.imagine(lambda f: self.ac.act(f, generator=generator), state, self.cfg.horizon,
                                      generator=generator)
            features = rollout["features"]
            rewards = self.wm.reward(features[:, 1:])
            continues = self.wm.cont(features[:, 1:])
        return {"features": features, "actions": rollout["actions"], "rewards": rewards, "continues": continues}

    # --- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"wm": self.wm.state_dict(), "wm_opt": self.wm_opt.state_dict(), "wm_sched": self.wm_sched.state_dict(),
                "ac": self.ac_learner.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wm.load_state_dict(state["wm"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.wm_sched.load_state_dict(state["wm_sched"])
        self.ac_learner.load_state_dict(state["ac"])
        self.updates = int(state["updates"])


class DreamerPolicy:
    """``act(obs, first, state) -> (action, state)`` for the rollout engine: one world-model step per env step."""

    def __init__(self, agent: DreamerAgent, greedy: bool, generator: torch.Generator | None):
        self.agent, self.greedy, self.generator = agent, greedy, generator

    def initial_state(self, batch_size: int):
        return self.agent.wm.initial_state(batch_size, self.agent.device)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], first: np.ndarray, state) -> tuple[np.ndarray, Any]:
        agent = self.agent
        agent.wm.eval()
        obs_t = {k: torch.as_tensor(v, device=agent.device) for k, v in obs.items() if k in ("image", "vector")}
        first_t = torch.as_tensor(first, device=agent.device)
        _, features, state = agent.wm.observe_step(obs_t, first_t, state, generator=self.generator)
        action = agent.ac.act(features, sample=not self.greedy, generator=self.generator)
        state = agent.wm.with_action(state, action)
        if agent.spaces["discrete"]:
            return action.argmax(-1).cpu().numpy(), state
        return action.cpu().numpy().astype(np.float32), state
