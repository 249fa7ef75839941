"""World-model-only training and the memory-benchmark metrics (S4WM's protocol).

Metrics on held-out sequences of ``context + query`` steps (``memory_metrics``):
- ``recon_mse``: reconstruction MSE of every frame from the posterior features (images in [0, 1]);
- ``gen_mse``: generation MSE over the query phase, imagined open loop from the context with the true actions;
- ``reward_acc_infer`` / ``reward_acc_imagine``: reward-prediction accuracy (|prediction - truth| < 0.5, for
  rewards in {0, 1}) over the query phase from the posterior (inference) and from imagination.
MSEs are reported per pixel and channel (``*_mse``) and summed per frame (``*_mse_frame``).

``episodes_to_batch`` converts episodes from ``envs.memory.collect_episode`` (T+1 frames, T actions) to the
replay layout the world model trains on (record t = (x_t, reward into x_t, is_first_t, is_terminal_t,
action taken at x_t)).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .model import WorldModel


def episodes_to_batch(episodes: Iterable[Mapping[str, Any]], length: int | None = None) -> dict[str, torch.Tensor]:
    """Episodes with ``image`` (T+1, H, W, C), ``action`` (T,), ``reward`` (T,), optional ``terminated`` (T,)
    -> batch dict with (B, L) leading dims, L = ``length`` or the shortest episode's T+1 (episodes are cut)."""
    eps = list(episodes)
    if not eps:
        raise ValueError("episodes_to_batch needs at least one episode")
    for i, ep in enumerate(eps):
        for key in ("image", "action", "reward"):
            if key not in ep:
                raise KeyError(f"episode {i} is missing key {key!r}")
        if len(ep["image"]) != len(ep["action"]) + 1 or len(ep["reward"]) != len(ep["action"]):
            raise ValueError(f"episode {i}: need image (T+1), action (T), reward (T); got "
                             f"{len(ep['image'])}, {len(ep['action'])}, {len(ep['reward'])}")
    shortest = min(len(ep["image"]) for ep in eps)
    l = shortest if length is None else length
    if l > shortest:
        raise ValueError(f"length={l} exceeds the shortest episode ({shortest} frames)")
    images, actions, rewards, firsts, terms = [], [], [], [], []
    for ep in eps:
        t1 = len(ep["image"])
        act = np.zeros(t1, np.int64)
        act[:-1] = ep["action"]  # the final frame has no action taken from it
        rew = np.zeros(t1, np.float32)
        rew[1:] = ep["reward"]  # reward into x_t
        term = np.zeros(t1, bool)
        if "terminated" in ep:
            term[1:] = ep["terminated"]
        first = np.zeros(t1, bool)
        first[0] = True
        images.append(ep["image"][:l]), actions.append(act[:l]), rewards.append(rew[:l])
        firsts.append(first[:l]), terms.append(term[:l])
    return dict(image=torch.from_numpy(np.stack(images)), action=torch.from_numpy(np.stack(actions)),
                reward=torch.from_numpy(np.stack(rewards)), is_first=torch.from_numpy(np.stack(firsts)),
                is_terminal=torch.from_numpy(np.stack(terms)))


@torch.no_grad()
def memory_metrics(model: WorldModel, batch: Mapping[str, torch.Tensor], context: int, *, sample: bool = False,
                   generator: torch.Generator | None = None) -> dict[str, float]:
    """S4WM-style metrics on ``batch`` (B, L): observe ``context`` steps, imagine the remaining L - context
    with the recorded actions. ``sample=False`` uses latent modes (deterministic)."""
    l = batch["action"].shape[1]
    if not 0 < context < l:
        raise ValueError(f"context must be in [1, L-1] = [1, {l - 1}], got {context}")
    was_training = model.training
    model.eval()
    obs = {k: batch[k] for k in ("image", "vector") if k in batch}
    first = batch["is_first"].bool()
    lat, feat, _ = model.observe(obs, batch["action"], first, None, sample=sample, generator=generator)
    _, _, st = model.observe({k: v[:, :context] for k, v in obs.items()}, batch["action"][:, :context],
                             first[:, :context], None, sample=sample, generator=generator)
    if first[:, context:].any():
        raise ValueError("memory_metrics: the query phase must not contain an episode start")
    im = model.imagine(None, st, l - context, actions=batch["action"][:, context - 1: l - 1], sample=sample,
                       generator=generator)
    query_feat = im["features"][:, 1:]
    reward = batch["reward"].float()
    out: dict[str, float] = {}
    if "image" in obs:
        truth = obs["image"].float() / 255.0 if obs["image"].dtype == torch.uint8 else obs["image"].float() + 0.5
        recon = model.decode(feat)["image"].float() / 255.0
        gen = model.decode(query_feat)["image"].float() / 255.0
        err_r = (recon - truth) ** 2
        err_g = (gen - truth[:, context:]) ** 2
        out.update(recon_mse=float(err_r.mean()), gen_mse=float(err_g.mean()),
                   recon_mse_frame=float(err_r.sum((-3, -2, -1)).mean()),
                   gen_mse_frame=float(err_g.sum((-3, -2, -1)).mean()))
    if "vector" in obs:
        out["vector_gen_mse"] = float(((model.decode(query_feat)["vector"] - obs["vector"][:, context:]) ** 2).mean())
    r_inf = model.reward(feat[:, context:])
    r_im = model.reward(query_feat)
    out["reward_acc_infer"] = float(((r_inf - reward[:, context:]).abs() < 0.5).float().mean())
    out["reward_acc_imagine"] = float(((r_im - reward[:, context:]).abs() < 0.5).float().mean())
    model.train(was_training)
    return out


def train_world_model(model: WorldModel, sample_batch: Callable[[], Mapping[str, torch.Tensor]], updates: int,
                      *, lr: float = 1e-4, eps: float = 1e-8, weight_decay: float = 0.0, grad_clip: float = 1000.0,
                      generator: torch.Generator | None = None, log_every: int = 0,
                      log: Callable[[int, dict[str, float]], None] | None = None,
                      optimizer: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """Plain world-model-only training loop: ``updates`` Adam steps on ``sample_batch()`` batches (already on
    the model's device). Returns the optimizer (pass it back in to continue). ``log(step, metrics)`` is called
    every ``log_every`` updates."""
    opt = optimizer or torch.optim.Adam(model.param_groups(weight_decay), lr=lr, eps=eps)
    model.train()
    for step in range(1, updates + 1):
        loss, metrics = model.loss(sample_batch(), generator=generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        if log is not None and log_every and step % log_every == 0:
            log(step, {**{k: float(v) for k, v in metrics.items()}, "grad_norm": float(norm)})
    return opt
