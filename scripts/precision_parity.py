"""Loss curves of the world model with the image codec in float32 and in bfloat16, on the same data.

Builds the agent of the given words (as ``bench_train.py`` does), fills a replay with random-policy steps and
pre-samples ``--updates`` world-model batches; then trains three fresh world models on exactly those batches:
float32 with network seed S, float32 with seed S + 1 (the noise floor: what another initialisation changes),
and bfloat16 with seed S. bfloat16 keeps "losses within noise of float32" when its gap to float32 (same seed)
is no larger than the gap between the two float32 seeds. Writes a PNG of the curves and prints one JSON object.

    OMP_NUM_THREADS=1 python scripts/precision_parity.py --threads 1 --updates 200 \\
        --out docs/img/precision_parity.png agent=drama env=atari100k/Boxing size=cpu
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import setup  # noqa: E402

from ssmrl.bench.output import emit  # noqa: E402

METRICS = ("loss", "image_mse", "reward_loss", "kl")


def _curve(words: list[str], batches: list[dict], seed: int) -> dict[str, list[float]]:
    _, agent, _, engine, _, _ = setup(words, seed)
    engine.close()
    gen = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {m: [] for m in METRICS}
    for i, arrays in enumerate(batches):
        metrics, _ = agent.train_world_model(agent.to_batch(arrays), gen)
        for m in METRICS:
            curves[m].append(float(metrics[f"wm/{m}"]))
        if (i + 1) % 50 == 0:
            print(f"{' '.join(words[-1:])} seed {seed}: {i + 1}/{len(batches)} loss {curves['loss'][-1]:.3f}",
                  file=sys.stderr, flush=True)
    return curves


def _smooth(x: list[float], k: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.convolve(a, np.ones(k) / k, mode="valid") if len(a) >= k else a


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="presets and overrides as on the ssmrl train line")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smooth", type=int, default=20, help="running-mean window for the gap statistics")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="PNG of the loss curves")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    words = args.words or ["agent=drama", "env=atari100k/Boxing", "size=cpu"]
    cfg, _, replay, engine, _, _ = setup(words, args.seed, extra_steps=0)
    engine.close()
    batches = [replay.sample(cfg.dreamer.batch_size, cfg.dreamer.seq_len, purpose="train") for _ in range(args.updates)]
    f32 = [*words, "wm.overrides.image.precision=float32"]
    bf16 = [*words, "wm.overrides.image.precision=bfloat16"]
    runs = {"float32": _curve(f32, batches, args.seed), "float32_other_seed": _curve(f32, batches, args.seed + 1),
            "bfloat16": _curve(bf16, batches, args.seed)}
    gaps = {}
    for m in METRICS:
        ref = _smooth(runs["float32"][m], args.smooth)
        scale = np.abs(ref).mean() + 1e-12
        gaps[m] = {"bfloat16_vs_float32": float(np.abs(_smooth(runs["bfloat16"][m], args.smooth) - ref).mean() / scale),
                   "float32_seed_vs_seed": float(np.abs(_smooth(runs["float32_other_seed"][m], args.smooth) - ref).mean() / scale)}
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
        for ax, m in zip(axes, METRICS):
            for name, style in (("float32", "-"), ("float32_other_seed", ":"), ("bfloat16", "--")):
                ax.plot(_smooth(runs[name][m], args.smooth), style, label=name.replace("_", " "))
            ax.set_title(f"world model {m}")
            ax.set_xlabel(f"update (running mean of {args.smooth})")
        axes[0].legend()
        fig.suptitle(" ".join(words) + ": image codec float32 vs bfloat16, same batches")
        fig.tight_layout()
        fig.savefig(args.out, dpi=90)
    emit({"benchmark": "precision_parity", "words": words, "updates": args.updates, "seed": args.seed,
          "smooth": args.smooth, "relative_mean_gap": gaps, "curves": runs}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
