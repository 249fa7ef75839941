"""Imagination videos of a Dreamer agent's world model, for ``ssmrl imagine`` and the training loop's periodic
videos: from real windows the world model observes ``context`` frames, then imagines ``horizon`` steps
  * open loop, feeding the recorded actions: rows truth / prediction / |error| (``open-loop-<i>.{mp4,gif}``),
  * with the agent's own policy choosing actions: one row of imagined frames (``policy-<i>.{mp4,gif}``).
Green borders mark frames the model observed (their row shows its reconstruction), red borders imagined ones; the
videos name their rows in a left margin and explain the colours in a footer. The same strips go to TensorBoard.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssmrl.replay import to_torch
from ssmrl.runs.run import Run
from ssmrl.runs.video import IMAGINED, OBSERVED, annotate, border, stack_rows, upscale, write_gif, write_mp4


@torch.no_grad()
def imagine_sequences(agent, window: dict[str, np.ndarray], context: int, horizon: int,
                      generator: torch.Generator) -> dict[str, np.ndarray]:
    """Reconstructions of the context, open-loop and policy imaginations: uint8 (S, T, H, W, C) arrays."""
    wm = agent.wm
    wm.eval()
    batch = to_torch(window, agent.device)
    obs = {k: batch[k][:, :context] for k in ("image", "vector") if k in batch}
    _, features, state = wm.observe(obs, batch["action"][:, :context], batch["is_first"][:, :context],
                                    sample=False, generator=generator)
    # imagine's actions[:, k] is taken at imagined step k, whose step 0 is the last context step.
    actions = batch["action"][:, context - 1:context - 1 + horizon]
    open_loop = wm.imagine(None, state, horizon, actions=actions, sample=False, generator=generator)
    closed = wm.imagine(lambda f: agent.ac.act(f, generator=generator), state, horizon, generator=generator)
    decode = lambda f: wm.decode(f)["image"].cpu().numpy()
    return {"recon": decode(features), "open_loop": decode(open_loop["features"][:, 1:]),
            "policy": decode(closed["features"][:, 1:])}


def render(truth: np.ndarray, recon: np.ndarray, imagined: np.ndarray, scale: int = 3) -> np.ndarray:
    """One sequence: rows truth / model / |error| (labelled in a left margin), green borders on observed frames,
    red on imagined ones (explained in a footer)."""
    context = recon.shape[0]
    model = np.concatenate([border(recon, OBSERVED), border(imagined, IMAGINED)])
    real = np.concatenate([border(truth[:context], OBSERVED), border(truth[context:], IMAGINED)])
    error = np.abs(real.astype(np.int16) - model.astype(np.int16)).astype(np.uint8)
    return annotate(upscale(stack_rows(real, model, error), scale), ["truth", "model", "|error|"])


def write_videos(run: Run, agent, window: dict[str, np.ndarray], context: int, horizon: int, step: int,
                 out_dir: Path, generator: torch.Generator) -> list[dict]:
    """Open-loop and policy videos (MP4 + GIF) of every window, TensorBoard strips; returns per-sequence MSEs."""
    frames = imagine_sequences(agent, window, context, horizon, generator)
    truth = window["image"]
    summary = []
    for i in range(len(truth)):
        video = render(truth[i], frames["recon"][i], frames["open_loop"][i])
        policy_video = annotate(upscale(np.concatenate([border(frames["recon"][i], OBSERVED),
                                                        border(frames["policy"][i], IMAGINED)]), 3), ["policy"])
        for name, clip in (("open-loop", video), ("policy", policy_video)):
            write_mp4(out_dir / f"{name}-{i}.mp4", clip)
            write_gif(out_dir / f"{name}-{i}.gif", clip)
        run.writer.add_image(f"imagine/open-loop-{i}", np.concatenate(list(video), axis=1), step, dataformats="HWC")
        error = (frames["open_loop"][i].astype(np.float32) - truth[i, context:]) / 255.0
        summary.append({"sequence": i, "open_loop_mse": float((error ** 2).mean())})
    return summary
