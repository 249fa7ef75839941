"""The Dreamer-style agent: a world model, an imagination actor-critic, their optimisers, and the acting policy.

The training loop draws what an update trains on (``sample_batches``: the replay is read there and nowhere in
the agent) and hands plain tensors to ``update`` (the benchmark times the same three methods):

    train_world_model    (B, L) replay windows -> WorldModel.loss -> clip 1000 -> optimiser step
    imagination_starts   ``imag_starts=replay`` (Drama): observe the imag_batch context windows of imag_context
                         steps (no grad); ``posterior`` (DreamerV3): the world-model pass's own posterior states
                         at the last imag_batch / B steps of each window (no second encoding)
    train_actor_critic   imagine ``horizon`` steps from the starts with the actor -> rewards and continuation
                         probabilities from the heads -> ActorCritic.loss (lambda-returns, percentile return
                         normalisation, slow critic)

Acting is one world-model call per env step (``WorldModel.step(obs, prev_action, first, state)``: ``observe`` on
a length-1 sequence with the carried state), never re-running past frames; the state is zeroed where ``first``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.dreamer.actor_critic import ActorCritic, ActorCriticLearner
from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
from envs.spec import EnvSpec
from ssmrl.optim import build_optimizer, optimizer_step
from ssmrl.replay.buffer import to_torch
from ssmrl.replay.config import ReplayConfig
from ssmrl.world_models import WorldModel, WorldModelState, make_config
from ssmrl.world_models.model import check_action_indices


def replay_config(replay: ReplayConfig, cfg: DreamerConfig, **changes) -> ReplayConfig:
    """The learner's replay settings (``changes`` applied): DFS's imagination divisor defaults to the number of
    imagination starts per world-model window, imag_batch / batch_size (Drama)."""
    divisor = replay.dfs_imagination_divisor or cfg.imag_batch / cfg.batch_size
    return dataclasses.replace(replay, dfs_imagination_divisor=divisor, **changes)


def sample_batches(replay, agent: "DreamerAgent") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """What one update trains on, drawn from ``replay`` and converted by ``agent.to_batch``: the world model's
    (batch_size, seq_len) windows and, with ``imag_starts=replay``, the (imag_batch, imag_context) context windows
    imagination starts from (None with ``posterior`` starts). Training windows are drawn first (DFS's imagination
    scores read the training counts)."""
    cfg = agent.cfg
    batch = agent.to_batch(replay.sample(cfg.batch_size, cfg.seq_len, purpose="train"))
    if cfg.imag_starts == "posterior":
        return batch, None
    return batch, agent.to_batch(replay.sample(cfg.imag_batch, cfg.imag_context, purpose="imagination"))


def check_env_spec(spec: EnvSpec) -> None:
    """What the Dreamer agent needs of an env: observations ``image`` and/or ``vector``, continuous actions in
    [-1, 1]. Raises ValueError naming what differs."""
    unknown = sorted(set(spec.keys) - {"image", "vector"})
    if unknown:
        raise ValueError(f"Dreamer understands observation keys 'image' and 'vector', the env also has {unknown}")
    if not spec.discrete and not (np.allclose(spec.action_low, -1) and np.allclose(spec.action_high, 1)):
        raise ValueError(f"continuous actions must lie in [-1, 1] (got low {spec.action_low}, high "
                         f"{spec.action_high}); rescale the env")


@dataclass
class Starts:
    """Imagination starts: ``state`` of batch N and ``terminal`` bool (N,), whether each start is a terminal step."""

    state: WorldModelState
    terminal: torch.Tensor


class DreamerAgent:
    """World model + actor-critic + optimisers. ``state_dict`` holds everything a resume needs."""

    def __init__(self, wm_section: WorldModelSection, ac_cfg: ActorCriticConfig, cfg: DreamerConfig,
                 spec: EnvSpec, device: torch.device, seed: int):
        check_env_spec(spec)
        self.cfg, self.device, self.spec = cfg, device, spec
        if device.type == "cuda":  # process-wide math mode of this (single-agent) training process
            torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
            torch.backends.cudnn.allow_tf32 = cfg.tf32
        self.wm = WorldModel(make_config(wm_section.preset, wm_section.size, env=spec, **wm_section.overrides),
                             seed=seed).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.ac = ActorCritic(self.wm.feat_dim, spec.action_dim, spec.discrete, ac_cfg).to(device)
        if self.ac.backprop_actor:
            # imagine() runs without gradients (REINFORCE for both action kinds); backprop through the world
            # model would silently train the actor on its entropy term alone.
            raise ValueError("ac.actor_grad_continuous=backprop is not supported by the Dreamer loop; use reinforce")
        self.ac_learner = ActorCriticLearner(self.ac)
        # SSM parameters (A, dt, ...), biases and norms take no weight decay
        # (docs/architecture.md#conventions-every-part-follows).
        self.wm_opt, self.wm_sched = build_optimizer(self.wm.param_groups(cfg.wm_optimizer.weight_decay), cfg.wm_optimizer)
        self.updates = 0

    # --- acting -----------------------------------------------------------------------------------------------
    def policy(self, greedy: bool = False, generator: torch.Generator | None = None) -> "DreamerPolicy":
        return DreamerPolicy(self, greedy, generator)

    # --- learning ---------------------------------------------------------------------------------------------
    def to_batch(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Replay arrays -> tensors on the agent's device (discrete action indices range-checked on the host
        first); with ``life_loss_terminal`` a lost life counts as a terminal step for the learner."""
        if self.spec.discrete and not np.issubdtype(arrays["action"].dtype, np.floating):
            check_action_indices(arrays["action"], self.spec.action_dim)
        batch = to_torch(arrays, self.device)
        if self.cfg.life_loss_terminal and "life_loss" in batch:
            batch["is_terminal"] = batch["is_terminal"] | batch["life_loss"]
        return batch

    def update(self, batch: dict[str, torch.Tensor], context: dict[str, torch.Tensor] | None,
               generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One world-model update on ``batch`` and one actor-critic update from the starts ``imag_starts`` picks
        (``context``: see :func:`sample_batches`). Returns their metrics as 0-d tensors (no host sync here: the
        loop converts them once per log step)."""
        metrics, latents = self.train_world_model(batch, generator)
        starts = self.imagination_starts(batch, latents, context, generator)
        metrics.update(self.train_actor_critic(starts, generator))
        self.updates += 1
        return metrics

    def train_world_model(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One optimiser step of the world model on ``batch`` ((B, L) windows, see ``WorldModel.loss``).

        Returns (metrics ``wm/*`` as 0-d tensors, the pass's latents ``z``/``h``/``post``/``prior`` (B, L, .)
        detached), the latter for ``imag_starts=posterior``."""
        self.wm.train()
        wm_loss, metrics, outputs = self.wm.loss_and_outputs(batch, generator=generator)
        metrics["grad_norm"] = optimizer_step(wm_loss, self.wm.parameters(), self.wm_opt, self.wm_sched,
                                              self.cfg.wm_optimizer.grad_clip)
        latents = {k: v.detach() for k, v in outputs["latents"].items()}
        return {f"wm/{k}": v.detach() for k, v in metrics.items()}, latents

    @torch.no_grad()
    def world_model_losses(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                           ) -> dict[str, float]:
        """``WorldModel.loss``'s metrics on ``batch`` ((B, L) windows) without an optimiser step: what the world
        model scores on data it may never have trained on (fresh evaluation episodes). Floats, keys as in ``wm/*``."""
        training = self.wm.training
        self.wm.eval()
        try:
            _, metrics = self.wm.loss(batch, generator=generator)
        finally:
            self.wm.train(training)
        return {k: float(v) for k, v in metrics.items()}

    def imagination_starts(self, batch: dict[str, torch.Tensor], latents: dict[str, torch.Tensor],
                           context: dict[str, torch.Tensor] | None, generator: torch.Generator | None = None
                           ) -> "Starts":
        """The states imagination starts from, by ``dreamer.imag_starts``:

        - ``posterior``: the world-model batch's posterior states at the last ``imag_batch // batch_size``
          steps of each window (``latents`` from :meth:`train_world_model`; ``context`` is not used);
        - ``replay``: the ``context`` windows ((imag_batch, imag_context), drawn separately by
          :func:`sample_batches`), observed without gradients; the last step of each window is the start.
        """
        cfg = self.cfg
        with torch.no_grad():
            if cfg.imag_starts == "posterior":
                last = cfg.starts_per_window
                state = self.wm.posterior_states(latents, batch["action"], batch["is_first"], last)
                terminal = batch["is_terminal"][:, -last:].transpose(0, 1).reshape(-1)
            else:
                if context is None:
                    raise ValueError("imag_starts=replay needs the context windows (see sample_batches)")
                obs = {k: context[k] for k in ("image", "vector") if k in context}
                _, _, state = self.wm.observe(obs, context["action"], context["is_first"], generator=generator)
                terminal = context["is_terminal"][:, -1]
        return Starts(state=state, terminal=terminal.bool())

    def train_actor_critic(self, starts: "Starts", generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Imagine ``horizon`` steps from ``starts`` with the actor, then one actor-critic optimiser step.
        A start on a terminal step weighs 0 (DreamerV3: the start's continue flag). Returns ``ac/*`` metrics."""
        imagined = self.imagined_trajectories(starts.state, generator)
        metrics = self.ac_learner.train_step(imagined["features"], imagined["actions"], imagined["rewards"],
                                             imagined["continues"], generator=generator,
                                             start_weights=(~starts.terminal).float())
        return {f"ac/{k}": v for k, v in metrics.items()}

    def imagined_trajectories(self, start: WorldModelState, generator: torch.Generator | None = None
                              ) -> dict[str, torch.Tensor]:
        """``horizon`` steps with the actor from ``start``: features (N, H+1, F), actions, rewards and continue
        probabilities (N, H) of the world model's heads. No gradients."""
        with torch.no_grad():
            rollout = self.wm.imagine(lambda f: self.ac.act(f, generator=generator), start, self.cfg.horizon,
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
        """(world-model state, the action last taken (B, A)): the policy carries its previous action itself."""
        wm_state = self.agent.wm.initial_state(batch_size, self.agent.device)
        return wm_state, torch.zeros_like(wm_state.action)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], first: np.ndarray, state) -> tuple[np.ndarray, Any]:
        agent = self.agent
        agent.wm.eval()
        wm_state, prev_action = state
        obs_t = {k: torch.as_tensor(v, device=agent.device) for k, v in obs.items() if k in ("image", "vector")}
        first_t = torch.as_tensor(first, device=agent.device)
        _, features, wm_state = agent.wm.step(obs_t, prev_action, first_t, wm_state, generator=self.generator)
        action = agent.ac.act(features, sample=not self.greedy, generator=self.generator)
        if not agent.spec.discrete:
            action = action.clamp(-1.0, 1.0)  # the env's range; the model sees what the env executes
        if agent.spec.discrete:
            return action.argmax(-1).cpu().numpy(), (wm_state, action)
        return action.cpu().numpy().astype(np.float32), (wm_state, action)
