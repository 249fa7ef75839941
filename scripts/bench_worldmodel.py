"""Benchmark the world-model presets: training updates/s and imagination steps/s at equal shapes, and
imagination by stepping (carried state, constant cost per step) vs. re-running the whole sequence each step.

Prints one JSON object. Example (Drama's sizes, 16x64 batches of 64x64 images, 18 actions):

    .venv/bin/python scripts/bench_worldmodel.py --size drama --batch 16 --seq 64 --imag-batch 256

Re-running is how Drama acts/imagines today (it re-feeds the last frames through the Mamba stack every step).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any, Callable

import torch

from ssmrl.bench.output import emit
from ssmrl.optim import optimizer_step
from ssmrl.world_models import PRESETS, WorldModel, make_config


def _random_batch(cfg, b: int, l: int, g: torch.Generator, device) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if cfg.image_shape is not None:
        out["image"] = torch.randint(0, 256, (b, l, *cfg.image_shape), generator=g, dtype=torch.uint8)
    if cfg.vector_dim is not None:
        out["vector"] = torch.randn(b, l, cfg.vector_dim, generator=g)
    out["action"] = torch.randint(0, cfg.action_dim, (b, l), generator=g)
    out["reward"] = torch.randn(b, l, generator=g)
    out["is_first"] = torch.rand(b, l, generator=g) < 0.02
    out["is_terminal"] = torch.rand(b, l, generator=g) < 0.01
    return {k: v.to(device) for k, v in out.items()}


def _timeit(fn: Callable[[], Any], repeats: int, warmup: int, device, clock: str = "wall") -> float:
    """Median seconds per call. ``clock="process"`` measures this process's CPU time (with --threads 1 it
    is robust to other load on a shared machine; CPU only)."""
    now = time.process_time if clock == "process" else time.perf_counter
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = now()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(now() - t0)
    times.sort()
    return times[len(times) // 2]


def _random_policy(action_dim: int, g: torch.Generator):
    def policy(feat: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(0, action_dim, (feat.shape[0],), generator=g).to(feat.device)
        return torch.nn.functional.one_hot(idx, action_dim).float()
    return policy


@torch.no_grad()
def imagine_by_rerun(model: WorldModel, obs, action, first, policy, horizon: int, g: torch.Generator):
    """Imagination without a carried state: every step re-runs the backbone over the context plus all
    imagined tokens so far (from a fresh state) and takes the last output. Returns features (B, H+1, F)."""
    lat, feat, st = model.observe(obs, action, first, None, generator=g)
    z_prev = torch.cat([torch.zeros_like(lat["z"][:, :1]), lat["z"][:, :-1]], 1)
    a_in = model.prepare_action(action)
    a_prev = torch.cat([torch.zeros_like(a_in[:, :1]), a_in[:, :-1]], 1)
    keep = (~first).unsqueeze(-1).float()
    u_all = model.backbone_input(z_prev * keep, a_prev * keep)
    first_all = first
    feats = [feat[:, -1]]
    z_t = lat["z"][:, -1]
    for _ in range(horizon):
        a_t = policy(feats[-1])
        u_all = torch.cat([u_all, model.backbone_input(z_t, a_t).unsqueeze(1)], 1)
        first_all = torch.cat([first_all, torch.zeros_like(first_all[:, :1])], 1)
        h, _ = model.backbone(u_all, first_all, None)
        h_t = h[:, -1]
        z_t = model.latent.sample(model.prior_logits(h_t), True, g)
        feats.append(torch.cat([h_t, z_t], -1))
    return torch.stack(feats, 1)


def bench_preset(preset: str, args, device) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(action_dim=args.actions)
    if args.vector_only:
        kwargs.update(image_shape=None, vector_dim=args.vector_dim)
    cfg = make_config(preset, args.size, **kwargs)
    model = WorldModel(cfg, seed=0).to(device)
    opt = torch.optim.Adam(model.param_groups(0.0), lr=1e-4, eps=1e-8)
    g = torch.Generator().manual_seed(0)
    batch = _random_batch(cfg, args.batch, args.seq, g, device)
    sg = torch.Generator(device=device).manual_seed(1)

    def update():
        loss, _ = model.loss(batch, generator=sg)
        optimizer_step(loss, model.parameters(), opt, None, 1000.0)

    t_update = _timeit(update, args.repeats, args.warmup, device, args.clock)
    res: dict[str, Any] = dict(
        parameters=model.num_parameters(), update_s=t_update, updates_per_s=1.0 / t_update,
        update_frames_per_s=args.batch * args.seq / t_update,
    )
    # imagination: context of `context` real frames, then `horizon` imagined steps
    ib, c, h = args.imag_batch, args.context, args.horizon
    ctx = _random_batch(cfg, ib, c, g, device)
    obs = {k: ctx[k] for k in ("image", "vector") if k in ctx}
    first = torch.zeros(ib, c, dtype=torch.bool, device=device)
    policy = _random_policy(cfg.action_dim, torch.Generator().manual_seed(2))
    model.eval()

    @torch.no_grad()
    def step_mode():
        _, _, st = model.observe(obs, ctx["action"], first, None, generator=sg)
        model.imagine(policy, st, h, generator=sg)

    @torch.no_grad()
    def rerun_mode():
        imagine_by_rerun(model, obs, ctx["action"], first, policy, h, sg)

    @torch.no_grad()
    def context_only():
        model.observe(obs, ctx["action"], first, None, generator=sg)

    t_ctx = _timeit(context_only, args.repeats, 1, device, args.clock)
    t_step = _timeit(step_mode, args.repeats, 1, device, args.clock)
    t_rerun = _timeit(rerun_mode, args.repeats, 1, device, args.clock)
    res.update(
        imagine_step_s=t_step, imagine_rerun_s=t_rerun, context_s=t_ctx,
        imagine_steps_per_s=ib * h / t_step,
        imagine_steps_per_s_excl_context=ib * h / max(t_step - t_ctx, 1e-9),
        rerun_over_step=t_rerun / t_step,
        rerun_over_step_excl_context=(t_rerun - t_ctx) / max(t_step - t_ctx, 1e-9),
    )
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="ssmrl bench worldmodel", description=__doc__.splitlines()[0])
    p.add_argument("--presets", default=",".join(PRESETS), help=f"comma-separated subset of {PRESETS}")
    p.add_argument("--size", default="drama", choices=("debug", "small", "drama"))
    p.add_argument("--actions", type=int, default=18)
    p.add_argument("--vector-only", action="store_true", help="vector observations instead of images")
    p.add_argument("--vector-dim", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--imag-batch", type=int, default=256)
    p.add_argument("--context", type=int, default=8)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed training updates before timing")
    p.add_argument("--clock", default="wall", choices=("wall", "process"),
                   help="wall: elapsed time; process: CPU time of this process (use with --threads 1 on a busy machine)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.clock == "process" and args.device != "cpu":
        p.error("--clock process measures CPU time; use --clock wall on a GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = [s for s in args.presets.split(",") if s]
    for s in presets:
        if s not in PRESETS:
            p.error(f"--presets: unknown preset {s!r}; expected a subset of {PRESETS}")
    out: dict[str, Any] = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(), threads=torch.get_num_threads(),
                     device=str(device), torch=torch.__version__),
        settings={k: v for k, v in vars(args).items() if k != "presets"},
        results={},
    )
    for s in presets:
        out["results"][s] = bench_preset(s, args, device)
        print(f"{s}: {json.dumps(out['results'][s])}", file=sys.stderr, flush=True)  # progress
    emit(out)
    return out


if __name__ == "__main__":
    main()
