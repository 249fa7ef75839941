"""The world model: one class, structure and backbone chosen by :class:`WorldModelConfig`.

Time convention (replay): step t holds observation x_t, the action a_t taken after seeing x_t, the reward r_t
received on arriving at x_t, ``is_first`` and ``is_terminal`` of x_t. At step t every structure computes

    u_t = In([z_{t-1}, a_{t-1}])            (zeros for z_{t-1}, a_{t-1} where first_t; In = Linear -> norm -> SiLU)
    h_t = backbone(u_{<=t})                 (state zeroed before step t where first_t)
    prior      p(z_t | h_t)
    posterior  q(z_t | x_t)                 (drama, s4wm: image/vector only, so all steps run in parallel)
               q(z_t | h_t, x_t)            (rssm: sequential)
    features   f_t = [h_t, z_t]
    decoder    x_t from z_t (drama) or from [h_t, z_t] (s4wm, rssm)
    heads      r_t, cont_t from h_t (drama) or from [h_t, z_t] (s4wm, rssm)

So h_t and the prior at step t see x_{<t} and a_{<t} only; heads on h_t (drama) see the same; heads and the
decoder on [h_t, z_t] also see x_t through the posterior (never a_t or anything later). Drama's original
formulation (h_t from (z_t, a_t) predicts z_{t+1}, r_{t+1}) is the same computation with the index shifted.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from .backbones import make_backbone
from .config import WorldModelConfig
from .heads import ContinueHead, RewardHead
from .latents import CategoricalLatent
from .networks import MLP, MultiDecoder, MultiEncoder, image_to_float, make_norm, symexp, symlog


@dataclass
class WorldModelState:
    """What the model carries between calls. ``backbone``: the backbone's state after the last step (None:
    fresh); ``h`` (B, d_model) and ``z`` (B, Z): features of the last step; ``action`` (B, A): the action
    taken at the last step, consumed by the next step (for acting, set it with
    ``dataclasses.replace(state, action=a_t)`` once the policy has chosen)."""

    backbone: Any
    h: torch.Tensor
    z: torch.Tensor
    action: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        """(B, d_model + Z): features of the last consumed step."""
        return torch.cat([self.h, self.z], -1)


def check_action_indices(action, action_dim: int) -> None:
    """Host-side range check of discrete action indices (a numpy array or CPU tensor) before they reach the
    device: raises ValueError naming the range."""
    if action.size and (action.min() < 0 or action.max() >= action_dim):
        raise ValueError(f"discrete action indices must be in [0, {action_dim}), got range "
                         f"[{int(action.min())}, {int(action.max())}]")


def cat_states(states: list[Any]) -> Any:
    """Concatenate backbone states of one structure along their batch dimension.

    Tensors are joined on dim 0; lists, tuples, named tuples and dataclasses field by field; a state type
    whose batch is not its leading dimension (the transformer's KV cache) provides a ``cat`` classmethod.
    """
    head = states[0]
    if head is None:
        return None
    if isinstance(head, torch.Tensor):
        return torch.cat(states, 0)
    if hasattr(type(head), "cat"):
        return type(head).cat(states)
    if dataclasses.is_dataclass(head):
        return dataclasses.replace(head, **{f.name: cat_states([getattr(s, f.name) for s in states])
                                            for f in dataclasses.fields(head)})
    if isinstance(head, tuple) and hasattr(head, "_fields"):
        return type(head)(*(cat_states(list(parts)) for parts in zip(*states)))
    if isinstance(head, (list, tuple)):
        return type(head)(cat_states(list(parts)) for parts in zip(*states))
    raise TypeError(f"cannot concatenate backbone states of type {type(head).__name__}")


class WorldModel(nn.Module):
    """Encoder, latent nets, sequence backbone, decoder and heads. See the module docstring for the maths.

    Args:
        cfg: the configuration (``make_config(preset, size, action_dim=...)``).
        seed: when given, parameters are initialised from this seed without touching the global RNG.
        make_layer: optional constructor of the SSM layer (overrides ``cfg.ssm.layer``; used by tests).
    """

    def __init__(self, cfg: WorldModelConfig, seed: int | None = None,
                 make_layer: Callable[[], nn.Module] | None = None) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ctx = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            self._build(make_layer)

    def _build(self, make_layer) -> None:
        cfg = self.cfg
        d, a = cfg.d_model, cfg.action_dim
        self.latent = CategoricalLatent(cfg.latent.groups, cfg.latent.classes, cfg.latent.unimix)
        zdim = self.latent.dim
        self.z_dim, self.feat_dim = zdim, d + zdim
        self.encoder = MultiEncoder(cfg.image_shape, cfg.vector_dim, cfg.image, cfg.vector)
        post_in = self.encoder.out_dim + (d if cfg.posterior_input == "embed_h" else 0)
        self.posterior_net = MLP(post_in, d, cfg.heads.latent_layers, out_dim=zdim)
        self.prior_net = MLP(d, d, cfg.heads.latent_layers, out_dim=zdim)
        self.input_layer = nn.Sequential(nn.Linear(zdim + a, d, bias=False), make_norm(cfg.input_norm, d), nn.SiLU())
        self.backbone = make_backbone(cfg.backbone, d, cfg.ssm, cfg.gru, cfg.transformer, make_layer)
        dec_in = zdim if cfg.decoder_input == "z" else d + zdim
        self.decoder = MultiDecoder(dec_in, cfg.image_shape, cfg.vector_dim, cfg.image, cfg.vector)
        head_in = d if cfg.head_input == "h" else d + zdim
        self.reward_head = RewardHead(head_in, cfg.heads.hidden, cfg.heads.layers, cfg.heads.reward_bins,
                                      cfg.heads.reward_low, cfg.heads.reward_high)
        self.cont_head = ContinueHead(head_in, cfg.heads.hidden, cfg.heads.layers)

    # ------------------------------------------------------------------ helpers

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part (encoder, posterior_net, prior_net, input_layer, backbone, decoder, heads)."""
        parts = {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_children()}
        parts["total"] = self.num_parameters(trainable_only=False)
        return parts

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: weight decay on weight matrices/kernels only; none on biases, norm gains and
        the SSM parameters each layer lists in ``no_weight_decay()`` (A, dt, D, ...;
        docs/architecture.md#conventions-every-part-follows)."""
        skip: set[int] = set()
        for module in self.modules():
            names = getattr(module, "no_weight_decay", None)
            if callable(names):
                for name in names():
                    p = getattr(module, name, None)
                    if isinstance(p, nn.Parameter):
                        skip.add(id(p))
        decay, no_decay = [], []
        for p in self.parameters():
            if not p.requires_grad:
                continue
            (no_decay if id(p) in skip or p.dim() < 2 else decay).append(p)
        return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> WorldModelState:
        device = self.device if device is None else device
        return WorldModelState(
            backbone=None,
            h=torch.zeros(batch_size, self.cfg.d_model, device=device),
            z=torch.zeros(batch_size, self.z_dim, device=device),
            action=torch.zeros(batch_size, self.cfg.action_dim, device=device),
        )

    def prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        """Discrete: int indices (...,) -> one-hot (..., A), or one-hot float passed through; continuous:
        float (..., A). Raises on a wrong last dimension, and on index ranges for CPU tensors (read on the host
        through numpy); device tensors are not read back (a host sync per call): check them before the copy
        (``check_action_indices``, as ``DreamerAgent.to_batch`` does)."""
        a = self.cfg.action_dim
        if self.cfg.discrete_actions and not action.is_floating_point():
            if action.device.type == "cpu":
                check_action_indices(action.detach().numpy(), a)
            index = action.long().unsqueeze(-1)
            return torch.zeros(*action.shape, a, device=action.device).scatter_(-1, index, 1.0)
        if action.shape[-1] != a:
            raise ValueError(f"action must have last dim action_dim={a}, got shape {tuple(action.shape)}")
        return action.float()

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., : self.cfg.d_model] if self.cfg.head_input == "h" else features

    def decoder_input(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., self.cfg.d_model:] if self.cfg.decoder_input == "z" else features

    def backbone_input(self, z_prev: torch.Tensor, a_prev: torch.Tensor) -> torch.Tensor:
        """u = In([z_{t-1}, a_{t-1}]): (..., Z), (..., A) -> (..., d_model)."""
        return self.input_layer(torch.cat([z_prev, a_prev], -1))

    def prior_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., d_model) -> prior logits (..., Z)."""
        return self.prior_net(h)

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted reward (...,) of the step whose features these are."""
        return self.reward_head.mean(self.reward_head(self.head_input(features)))

    def cont(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted probability (...,) that the episode continues after this step."""
        return ContinueHead.prob(self.cont_head(self.head_input(features)))

    def decode(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features (..., F) -> ``image`` uint8 (..., H, W, C) and/or ``vector`` float (..., D), for rendering."""
        out = self.decoder(self.decoder_input(features))
        res = {}
        if "image" in out:
            res["image"] = ((out["image"].float() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        if "vector" in out:
            res["vector"] = symexp(out["vector"].float())
        return res

    # ------------------------------------------------------------------ sequences

    def _check_seq(self, action: torch.Tensor, first: torch.Tensor | None) -> tuple[int, int]:
        if action.dim() != 3:
            raise ValueError(f"action must have shape (B, L, A={self.cfg.action_dim}), got {tuple(action.shape)}")
        b, l = action.shape[:2]
        if first is not None and tuple(first.shape) != (b, l):
            raise ValueError(f"first must have shape (B, L) = {(b, l)}, got {tuple(first.shape)}")
        return b, l

    def observe(self, obs: dict[str, torch.Tensor], action: torch.Tensor, first: torch.Tensor | None = None,
                state: WorldModelState | None = None, *, sample: bool = True,
                generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor, WorldModelState]:
        """Encode a real sequence.

        Args:
            obs: ``image`` (B, L, H, W, C) uint8/float and/or ``vector`` (B, L, D).
            action: (B, L, A) one-hot/continuous, or (B, L) int indices for discrete actions; a_t is the
                action taken at step t (it enters the model at step t + 1, or via the returned state).
            first: bool (B, L), True where step t starts an episode (None: no resets).
            state: carried state (None: fresh, as if ``first[:, 0]``).
            sample: sample posterior latents (True) or take their mode.
            generator: for the posterior samples.
        Returns:
            latents: dict ``post`` and ``prior`` logits (B, L, Z), ``z`` (B, L, Z), ``h`` (B, L, d_model);
            features (B, L, d_model + Z); the state after the last step (its ``action`` is a_{L-1}).
        """
        action = self.prepare_action(action)
        b, l = self._check_seq(action, first)
        first = torch.zeros(b, l, dtype=torch.bool, device=action.device) if first is None else first.bool()
        state = self.initial_state(b, action.device) if state is None else state
        embed = self.encoder(obs)
        if embed.shape[:2] != (b, l):
            raise ValueError(f"obs must have leading shape (B, L) = {(b, l)} like action, got {tuple(embed.shape[:2])}")
        keep = (~first).unsqueeze(-1).to(embed.dtype)
        if self.cfg.posterior_input == "embed":
            post = self.posterior_net(embed)
            z = self.latent.sample(post, sample, generator)
            z_prev = torch.cat([state.z.unsqueeze(1), z[:, :-1]], 1) * keep
            a_prev = torch.cat([state.action.unsqueeze(1), action[:, :-1]], 1) * keep
            h, bstate = self.backbone(self.backbone_input(z_prev, a_prev), first, state.backbone)
        else:  # RSSM: posterior needs h_t, and h_{t+1} needs z_t -> sequential
            bstate, z_t, a_t = state.backbone, state.z, state.action
            hs, posts, zs = [], [], []
            for e_t, f_t, act_t in zip(embed.unbind(1), first.unbind(1), action.unbind(1)):
                k_t = (~f_t).unsqueeze(-1).to(embed.dtype)
                h_t, bstate = self.backbone.step(self.backbone_input(z_t * k_t, a_t * k_t), f_t, bstate)
                post_t = self.posterior_net(torch.cat([h_t, e_t], -1))
                z_t = self.latent.sample(post_t, sample, generator)
                a_t = act_t
                hs.append(h_t), posts.append(post_t), zs.append(z_t)
            h, post, z = torch.stack(hs, 1), torch.stack(posts, 1), torch.stack(zs, 1)
        prior = self.prior_logits(h)
        features = torch.cat([h, z], -1)
        new_state = WorldModelState(backbone=bstate, h=h[:, -1], z=z[:, -1], action=action[:, -1])
        return dict(post=post, prior=prior, z=z, h=h), features, new_state

    def step(self, obs_t: dict[str, torch.Tensor], prev_action: torch.Tensor | None, first_t: torch.Tensor | None,
             state: WorldModelState | None, *, sample: bool = True, generator: torch.Generator | None = None
             ) -> tuple[dict[str, torch.Tensor], torch.Tensor, WorldModelState]:
        """One real step, for acting: ``obs_t`` dict of (B, ...); ``prev_action`` a_{t-1} (B, A) or indices (B,),
        the action taken before ``obs_t`` arrived (None: the one ``state`` holds; ignored where ``first_t``);
        ``first_t`` bool (B,). Returns (latents of step t with (B, ...) shapes, features (B, F), state)."""
        if state is not None and prev_action is not None:
            action = self.prepare_action(prev_action)
            if tuple(action.shape) != tuple(state.action.shape):
                raise ValueError(f"prev_action must have shape {tuple(state.action.shape)} (or (B,) indices), "
                                 f"got {tuple(action.shape)}")
            state = dataclasses.replace(state, action=action)
        obs = {k: v.unsqueeze(1) for k, v in obs_t.items()}
        b = next(iter(obs.values())).shape[0]
        dummy = torch.zeros(b, 1, self.cfg.action_dim, device=self.device)
        first = None if first_t is None else first_t.reshape(b, 1)
        lat, feat, st = self.observe(obs, dummy, first, state, sample=sample, generator=generator)
        return {k: v[:, 0] for k, v in lat.items()}, feat[:, 0], st

    def posterior_states(self, latents: dict[str, torch.Tensor], action: torch.Tensor, first: torch.Tensor,
                         last: int) -> WorldModelState:
        """The states a training pass reached at the last ``last`` steps of each window, as imagination starts
        (DreamerV3's recipe: nothing is encoded again). Detached.

        Args:
            latents: the ``latents`` of :meth:`observe` / :meth:`loss_and_outputs` on windows that started from
                a fresh state: ``z`` (B, L, Z) and ``h`` (B, L, d_model).
            action: (B, L, A) or (B, L) indices, the windows' actions; first: bool (B, L).
            last: how many final steps of each window become starts (1 <= last <= L).
        Returns:
            a state of batch ``last * B``, step-major: start ``k * B + b`` is window b at step ``L - last + k``;
            ``h`` and ``z`` are the pass's own, the backbone state is rebuilt by stepping the backbone over the
            same inputs (``forward`` equals ``step`` token by token), ``action`` is a_t.
        """
        action = self.prepare_action(action)
        b, l = self._check_seq(action, first)
        if not 1 <= last <= l:
            raise ValueError(f"last must be in [1, L={l}], got {last}")
        z, h = latents["z"].detach(), latents["h"].detach()
        first = first.bool()
        keep = (~first).unsqueeze(-1).to(z.dtype)
        z_prev = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1) * keep
        a_prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1) * keep
        inputs = self.backbone_input(z_prev, a_prev)
        bstate, kept = None, []
        for t, (u_t, f_t) in enumerate(zip(inputs.unbind(1), first.unbind(1))):
            _, bstate = self.backbone.step(u_t, f_t, bstate)
            if t >= l - last:
                kept.append(bstate)

        def step_major(x: torch.Tensor) -> torch.Tensor:  # (B, L, ...) -> (last * B, ...)
            return x[:, l - last:].transpose(0, 1).reshape(last * b, *x.shape[2:])

        return WorldModelState(backbone=cat_states(kept), h=step_major(h), z=step_major(z),
                               action=step_major(action))

    def imagine(self, policy: Callable[[torch.Tensor], torch.Tensor] | None, start: WorldModelState,
                horizon: int, *, actions: torch.Tensor | None = None, latents: torch.Tensor | None = None,
                sample: bool = True, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Roll out ``horizon`` steps in latent space with the backbone's step mode (constant cost per step).

        Args:
            policy: features (B, F) -> action (B, A); ignored where ``actions`` is given.
            start: the state to start from (e.g. from :meth:`observe`); its features are step 0.
            horizon: number of imagined steps.
            actions: open loop: (B, horizon, A) (or (B, horizon) indices); ``actions[:, k]`` is taken at step k
                (so ``actions[:, 0]`` is the action at the start state).
            latents: (B, horizon, Z) latents to feed back instead of prior samples (teacher forcing; used to
                check imagination against a parallel pass).
            sample: sample prior latents (True) or take their mode.
        Returns dict: ``features`` (B, horizon + 1, F) with the start at index 0; ``actions`` (B, horizon, A);
            ``prior`` logits (B, horizon, Z); ``z`` (B, horizon + 1, Z); ``h`` (B, horizon + 1, d_model);
            ``state`` after the last step.
        """
        if horizon < 0:
            raise ValueError(f"horizon must be >= 0, got {horizon}")
        b = start.z.shape[0]
        if actions is not None:
            actions = self.prepare_action(actions)
            if actions.dim() != 3 or actions.shape[:2] != (b, horizon):
                raise ValueError(f"actions must have shape (B, horizon, A) = {(b, horizon, self.cfg.action_dim)}, "
                                 f"got {tuple(actions.shape)}")
        elif policy is None:
            raise ValueError("imagine needs a policy or an actions tensor")
        if latents is not None and tuple(latents.shape) != (b, horizon, self.z_dim):
            raise ValueError(f"latents must have shape (B, horizon, Z) = {(b, horizon, self.z_dim)}, "
                             f"got {tuple(latents.shape)}")
        state = start
        hs, zs, acts, priors = [state.h], [state.z], [], []
        for k in range(horizon):
            if actions is not None:
                a = actions[:, k]
            else:
                a = policy(state.features)
                if not isinstance(a, torch.Tensor) or tuple(a.shape) != (b, self.cfg.action_dim):
                    got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
                    raise ValueError(f"policy must return an action tensor of shape {(b, self.cfg.action_dim)}, got {got}")
            h, bstate = self.backbone.step(self.backbone_input(state.z, a), None, state.backbone)
            prior = self.prior_logits(h)
            z = latents[:, k] if latents is not None else self.latent.sample(prior, sample, generator)
            state = WorldModelState(backbone=bstate, h=h, z=z, action=a)
            hs.append(h), zs.append(z), acts.append(a), priors.append(prior)
        h_all, z_all = torch.stack(hs, 1), torch.stack(zs, 1)
        empty = start.z.new_zeros(b, 0, self.cfg.action_dim)
        return dict(
            features=torch.cat([h_all, z_all], -1), h=h_all, z=z_all,
            actions=torch.stack(acts, 1) if acts else empty,
            prior=torch.stack(priors, 1) if priors else start.z.new_zeros(b, 0, self.z_dim),
            state=state,
        )

    # ------------------------------------------------------------------ training

    def loss(self, batch: dict[str, torch.Tensor], *, sample: bool = True,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """World-model loss on a replay batch.

        batch: ``image`` uint8 (B, L, H, W, C) and/or ``vector`` (B, L, D); ``action`` (B, L, A) or (B, L)
        indices; ``reward`` (B, L); ``is_first`` (B, L); ``is_terminal`` (B, L).
        Returns (total, metrics) with metrics detached 0-d tensors (no host sync).
        """
        total, metrics, _ = self.loss_and_outputs(batch, sample=sample, generator=generator)
        return total, metrics

    def loss_and_outputs(self, batch: dict[str, torch.Tensor], *, sample: bool = True,
                         generator: torch.Generator | None = None):
        """Like :meth:`loss`, also returning ``outputs``: the latents dict, ``features`` and the final ``state``."""
        for key in ("action", "reward", "is_first", "is_terminal"):
            if key not in batch:
                raise KeyError(f"batch is missing key {key!r} (needs image/vector, action, reward, is_first, is_terminal)")
        obs = {k: batch[k] for k in ("image", "vector") if k in batch}
        lat, feat, state = self.observe(obs, batch["action"], batch["is_first"], None, sample=sample,
                                        generator=generator)
        b, l = feat.shape[:2]
        for key in ("reward", "is_first", "is_terminal"):
            if tuple(batch[key].shape) != (b, l):
                raise ValueError(f"batch[{key!r}] must have shape (B, L) = {(b, l)}, got {tuple(batch[key].shape)}")
        cfg = self.cfg.loss
        dec = self.decoder(self.decoder_input(feat))
        recon = feat.new_zeros(b, l)
        metrics: dict[str, torch.Tensor] = {}
        if "image" in dec:
            err = (dec["image"].float() - image_to_float(batch["image"])) ** 2
            metrics["image_mse"] = err.mean().detach()
            recon = recon + err.sum((-3, -2, -1))
        if "vector" in dec:
            err = (dec["vector"].float() - symlog(batch["vector"].float())) ** 2
            metrics["vector_mse"] = err.mean().detach()
            recon = recon + err.sum(-1)
        head_in = self.head_input(feat)
        rew_logits = self.reward_head(head_in)
        reward_loss = self.reward_head.loss(rew_logits, batch["reward"])
        cont_logit = self.cont_head(head_in)
        cont_target = 1.0 - batch["is_terminal"].float()
        cont_loss = ContinueHead.loss(cont_logit, cont_target)
        dyn, rep, kl = self.latent.kl_losses(lat["post"], lat["prior"], cfg.free_bits)
        total = (cfg.recon * recon + cfg.reward * reward_loss + cfg.cont * cont_loss
                 + cfg.dyn * dyn + cfg.rep * rep).mean()
        with torch.no_grad():
            metrics.update(
                loss=total.detach(), recon=recon.mean(), reward_loss=reward_loss.mean(),
                cont_loss=cont_loss.mean(), dyn=dyn.mean(), rep=rep.mean(), kl=kl.mean(),
                post_entropy=self.latent.entropy(lat["post"]).mean(),
                prior_entropy=self.latent.entropy(lat["prior"]).mean(),
                reward_mae=(self.reward_head.mean(rew_logits) - batch["reward"].float()).abs().mean(),
                cont_acc=((cont_logit > 0).float() == cont_target).float().mean(),
            )
        return total, metrics, dict(latents=lat, features=feat, state=state)
