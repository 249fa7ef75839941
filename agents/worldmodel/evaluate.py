"""Scoring a world model on held-out episodes with S4WM's protocol (metric functions in ``metrics.py``).

For each episode window of ``context + query`` records (record convention in ``agents/worldmodel/data.py``):

    observe   records 0 .. C+Q-1 (posterior, real frames)   -> reconstruction MSE over all records,
                                                               reward accuracy in inference over C .. C+Q-1
    observe   records 0 .. C-1, then imagine Q steps open loop with the recorded actions a_{C-1} .. a_{C+Q-2}
                                                            -> imagined records C .. C+Q-1: generation MSE per
                                                               step, reward accuracy in imagination
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.worldmodel import metrics as M
from ssmrl.world_models import WorldModel


def _obs(batch: dict[str, np.ndarray], sl: slice, device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.ascontiguousarray(batch[k][:, sl]), device=device)
            for k in ("image", "vector") if k in batch}


def _actions(wm: WorldModel, action: np.ndarray, device) -> torch.Tensor:
    a = torch.as_tensor(np.ascontiguousarray(action), device=device)
    if wm.cfg.discrete_actions and a.is_floating_point() and a.dim() == 2:
        a = a.round().long()  # indices stored as float in a dataset file
    return a


@torch.no_grad()
def score_batch(wm: WorldModel, batch: dict[str, np.ndarray], context: int, query: int, *,
                sample: bool = False, generator: torch.Generator | None = None,
                features: bool = False) -> dict[str, np.ndarray]:
    """Raw predictions for a batch of windows ``{key: (B, C+Q, ...)}``.

    Returns numpy arrays: ``recon`` (B, C+Q, H, W, C) uint8 (posterior decodes), ``gen`` (B, Q, H, W, C) uint8
    (imagined decodes), ``reward_inference`` (B, Q) and ``reward_imagination`` (B, Q) predicted rewards of the
    query records, and ``reward_true`` (B, Q); with ``features`` also the features the heads read at the query
    records, ``features_inference`` and ``features_imagination`` (B, Q, F) float32.
    """
    total = context + query
    length = batch["reward"].shape[1]
    if length < total:
        raise ValueError(f"windows have {length} records, context + query needs {total}")
    device = wm.device
    first = torch.as_tensor(np.ascontiguousarray(batch["is_first"][:, :total]), device=device)
    action = _actions(wm, batch["action"][:, :total], device)
    _, feat, _ = wm.observe(_obs(batch, slice(0, total), device), action, first, sample=sample, generator=generator)
    out: dict[str, np.ndarray] = {"reward_inference": wm.reward(feat[:, context:]).float().cpu().numpy()}
    if features:
        out["features_inference"] = feat[:, context:].float().cpu().numpy()
    dec = wm.decode(feat)
    if "image" in dec:
        out["recon"] = dec["image"].cpu().numpy()
    _, _, state = wm.observe(_obs(batch, slice(0, context), device), action[:, :context], first[:, :context],
                             sample=sample, generator=generator)
    # the action taken at the start state (a_{C-1}) leads to record C; the state already carries it, but
    # imagine() takes every action explicitly, starting with the one at the start state.
    rollout = wm.imagine(None, state, query, actions=action[:, context - 1: total - 1], sample=sample,
                         generator=generator)
    imagined = rollout["features"][:, 1:]
    out["reward_imagination"] = wm.reward(imagined).float().cpu().numpy()
    if features:
        out["features_imagination"] = imagined.float().cpu().numpy()
    gen = wm.decode(imagined)
    if "image" in gen:
        out["gen"] = gen["image"].cpu().numpy()
    out["reward_true"] = np.asarray(batch["reward"][:, context:total], np.float64)
    return out


def evaluate(wm: WorldModel, windows: dict[str, np.ndarray], context: int, query: int, classes: np.ndarray, *,
             batch_size: int = 16, sample: bool = False, generator: torch.Generator | None = None) -> dict[str, Any]:
    """All memory metrics over held-out windows ``{key: (E, >= C+Q, ...)}`` (see the module docstring).

    Returns floats ``recon_mse``, ``gen_mse``, ``reward_acc_inference``, ``reward_acc_imagination``,
    ``reward_chance`` (majority-class accuracy of the true query rewards), ``episodes``, and the list
    ``gen_mse_per_step`` (Q,).
    """
    was_training = wm.training
    wm.eval()
    n = len(windows["reward"])
    recon_err, gen_err, r_inf, r_img, r_true = [], [], [], [], []
    try:
        for a in range(0, n, batch_size):
            batch = {k: v[a:a + batch_size] for k, v in windows.items()}
            out = score_batch(wm, batch, context, query, sample=sample, generator=generator)
            if "recon" in out:
                recon_err.append(M.frame_mse(out["recon"], batch["image"][:, :context + query]))
                gen_err.append(M.frame_mse(out["gen"], batch["image"][:, context:context + query]))
            r_inf.append(out["reward_inference"])
            r_img.append(out["reward_imagination"])
            r_true.append(out["reward_true"])
    finally:
        wm.train(was_training)
    r_inf, r_img, r_true = np.concatenate(r_inf), np.concatenate(r_img), np.concatenate(r_true)
    result: dict[str, Any] = {
        "episodes": int(n),
        "context": int(context),
        "query": int(query),
        "reward_acc_inference": M.reward_accuracy(r_inf, r_true, classes),
        "reward_acc_imagination": M.reward_accuracy(r_img, r_true, classes),
        "reward_chance": M.majority_accuracy(r_true, classes),
    }
    if recon_err:
        gen_all = np.concatenate(gen_err)
        result["recon_mse"] = float(np.concatenate(recon_err).mean())
        result["gen_mse"] = float(gen_all.mean())
        result["gen_mse_per_step"] = [float(x) for x in gen_all.mean(0)]
    return result
