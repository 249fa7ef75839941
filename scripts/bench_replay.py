"""Replay benchmark: cost of sampling a (B, L) batch of 64x64x3 images + flags and moving it to torch, against
one world-model-sized update, plus bytes per stored Atari step. Prints JSON.

    python scripts/bench_replay.py [--capacity 100000] [--batch 16] [--length 64] [--threads 2] [--device cpu]

The yardstick is a stand-in for Drama's world-model update (the real models live elsewhere): Drama's conv
encoder (5 conv layers, kernel 5, channels 16/32/48/64/64, stride 1 then 2, 64x64 -> 64x4x4) and a mirrored
transposed-conv decoder, GroupNorm + SiLU between layers, MSE reconstruction, forward + backward + Adam step on
the same B*L images (uint8 -> float conversion included). The full world model adds the sequence model, heads
and KL terms, so the ratio reported here is an upper bound on the real one.
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn

from ssmrl.bench.output import emit
from ssmrl.replay import ReplayBuffer, ReplayConfig, to_torch


def conv_autoencoder() -> nn.Module:
    chans = [3, 16, 32, 48, 64, 64]
    enc: list[nn.Module] = []
    for i in range(5):
        enc += [nn.Conv2d(chans[i], chans[i + 1], 5, stride=1 if i == 0 else 2, padding=2),
                nn.GroupNorm(1, chans[i + 1]), nn.SiLU()]
    dec: list[nn.Module] = []
    for i in range(5, 1, -1):  # 64x4x4 -> 8 -> 16 -> 32 -> 64
        dec += [nn.ConvTranspose2d(chans[i], chans[i - 1], 5, stride=2, padding=2, output_padding=1),
                nn.GroupNorm(1, chans[i - 1]), nn.SiLU()]
    dec += [nn.Conv2d(chans[1], 3, 5, stride=1, padding=2)]
    return nn.Sequential(*enc, *dec)


def fill(buffer: ReplayBuffer, steps: int, episode: int, images: np.ndarray, seed: int) -> None:
    """Synthetic Atari-like steps; images cycle through a block of random frames."""
    rng = np.random.default_rng(seed)
    block = len(images)
    for start in range(0, steps, block):
        n = min(block, steps - start)
        t = np.arange(start, start + n)
        buffer.extend({
            "image": images[:n],
            "action": rng.integers(0, 18, size=n).astype(np.int32),
            "reward": rng.normal(size=n).astype(np.float32),
            "is_first": t % episode == 0,
            "is_last": t % episode == episode - 1,
            "is_terminal": t % episode == episode - 1,
            "life_loss": t % 97 == 0,
        })


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def add_cost_us(images: np.ndarray, directory: str | None, steps: int = 4096) -> float:
    """Microseconds per ``add`` of one Atari step (what the rollout engine pays per env step); with a
    directory this includes writing a 1024-step chunk file every 1024 steps."""
    buf = ReplayBuffer(ReplayConfig(capacity=8192, chunk_size=1024, directory=directory, verbose=False))
    t0 = time.perf_counter()
    for i in range(steps):
        buf.add({"image": images[i % len(images)], "action": 3, "reward": 0.0, "is_first": i % 500 == 0,
                 "is_last": False, "is_terminal": False, "life_loss": False})
    return 1e6 * (time.perf_counter() - t0) / steps


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="ssmrl bench replay", description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=100_000, help="stored steps (Atari100k: 100k)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--episode", type=int, default=500, help="episode length of the synthetic data")
    p.add_argument("--repeats", type=int, default=30, help="timed sampling calls per sampler")
    p.add_argument("--wm-repeats", type=int, default=3, help="timed stand-in world-model updates")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, torch threads {args.threads}, device {device}",
        "capacity": args.capacity, "batch": args.batch, "length": args.length,
    }
    images = np.random.default_rng(args.seed).integers(0, 256, size=(1000, 64, 64, 3), dtype=np.uint8)
    rss0 = rss_mib()
    samplers = {}
    for kind, within in (("uniform", False), ("uniform", True), ("recency", False), ("dfs", False)):
        buf = ReplayBuffer(ReplayConfig(capacity=args.capacity, sampler=kind, within_episode=within, seed=args.seed, verbose=False))
        fill(buf, args.capacity, args.episode, images, args.seed)
        if kind == "uniform" and not within:
            results["bytes_per_step"] = buf.bytes_per_step
            # peak RSS growth over the fill (includes the candidate cache and small temporaries)
            results["rss_mib_after_fill"] = round(rss_mib() - rss0, 1)
            results["rss_bytes_per_step"] = round((rss_mib() - rss0) * 2**20 / args.capacity, 1)

        def sample_to_torch(buf=buf) -> dict:
            batch = to_torch(buf.sample(args.batch, args.length), device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return batch

        sample_to_torch()  # warm-up (builds the candidate cache once)
        # a world-model step writes one env step between samples, so the candidate cache is rebuilt each time
        def with_write(buf=buf) -> None:
            buf._version += 1
            sample_to_torch(buf)

        name = f"{kind}{'_within_episode' if within else ''}"
        samplers[name] = {
            "ms_median": round(1e3 * statistics.median(timed(with_write, args.repeats)), 3),
            "ms_median_cached_candidates": round(1e3 * statistics.median(timed(sample_to_torch, args.repeats)), 3),
        }
        del buf
    results["sample_to_torch"] = samplers
    with tempfile.TemporaryDirectory() as tmp:
        results["add_us_per_step"] = {"memory": round(add_cost_us(images, None), 1),
                                      "persistent_chunks": round(add_cost_us(images, tmp), 1)}

    model = conv_autoencoder().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=4e-5)
    images = torch.randint(0, 256, (args.batch * args.length, 64, 64, 3), dtype=torch.uint8, device=device)

    def update() -> None:
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    update()  # warm-up
    wm = statistics.median(timed(update, args.wm_repeats))
    results["wm_standin_update_ms"] = round(1e3 * wm, 1)
    results["wm_standin"] = ("Drama conv encoder 16/32/48/64/64 k5 (stride 1 then 2) + mirrored decoder, "
                             "GroupNorm+SiLU, MSE, fwd+bwd+Adam on B*L 64x64x3 images; a lower bound on a full "
                             "Drama world-model update")
    results["wm_standin_params"] = sum(p.numel() for p in model.parameters())
    worst = max(v["ms_median"] for v in samplers.values())
    results["worst_sample_fraction_of_update"] = round(worst / (1e3 * wm), 5)
    results["targets"] = {
        "sample_lt_10pct_of_update": worst < 0.1 * 1e3 * wm,
        "bytes_per_step_le_13KB": results["bytes_per_step"] <= 13 * 1024,
    }
    emit(results, indent=1)
    return results


if __name__ == "__main__":
    main()
