"""Plot episode returns against environment steps for one or more run directories into a PNG.

Reads each run's ``scores.jsonl``: rows with ``kind == "eval"`` (periodic evaluations: ``mean`` and ``stderr``)
are drawn as a line with a standard-error band; rows with an ``episode_return`` (training episodes; the random
agent writes these without a ``kind``) as a faint line of the running mean over ``--smooth`` episodes. Evaluation
JSON files written by ``ssmrl eval`` (``<run>/eval-<step>.json``) are added as points with error bars, so a run
without periodic evaluation (e.g. ``agent=random``) still gets a comparable marker.

    python scripts/plot_curves.py RUN[:LABEL] [RUN[:LABEL] ...] --out docs/img/curve.png [--title T]
        [--what eval|train|both] [--smooth 5] [--baseline RUN[:LABEL]] [--hline VALUE:LABEL]

Prints a JSON summary (per run: the points plotted) to stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def read_scores(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(eval rows sorted by step, train-episode rows sorted by step) of ``run_dir/scores.jsonl``."""
    path = run_dir / "scores.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a run directory with scores.jsonl)")
    evals, train = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON ({err})") from err
        if row.get("kind") == "eval" and "mean" in row:
            evals.append(row)
        elif "episode_return" in row:
            train.append(row)
    # A resumed run may log a step twice; keep the last row per step for evaluations.
    by_step = {int(r["step"]): r for r in evals}
    return [by_step[s] for s in sorted(by_step)], sorted(train, key=lambda r: int(r["step"]))


def read_eval_files(run_dir: Path) -> list[dict]:
    """``ssmrl eval`` results (``eval-<step>.json``) of ``run_dir``, sorted by step."""
    rows = []
    for path in sorted(run_dir.glob("eval-*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if "mean" in data and "step" in data:
            rows.append({"step": int(data["step"]), "mean": float(data["mean"]),
                         "stderr": float(data.get("stderr", 0.0)), "episodes": data.get("episodes")})
    return sorted(rows, key=lambda r: r["step"])


def running_mean(values: list[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each index (fewer at the start)."""
    if window < 1:
        raise ValueError(f"smooth window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def parse_run(spec: str) -> tuple[Path, str]:
    """``"DIR:label"`` or ``"DIR"`` -> (path, label); the label defaults to the directory name."""
    path, sep, label = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not sep:
        path = spec
    run_dir = Path(path)
    return run_dir, (label or run_dir.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories, each optionally suffixed :LABEL")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="")
    parser.add_argument("--what", choices=("eval", "train", "both"), default="both")
    parser.add_argument("--smooth", type=int, default=5, help="running-mean window over training episodes")
    parser.add_argument("--baseline", action="append", default=[],
                        help="RUN[:LABEL] whose latest `ssmrl eval` result is drawn as a horizontal band (e.g. random)")
    parser.add_argument("--hline", action="append", default=[], help="horizontal reference VALUE:LABEL")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    summary = {}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, spec in enumerate(args.runs):
        run_dir, label = parse_run(spec)
        color = colors[i % len(colors)]
        evals, train = read_scores(run_dir)
        files = read_eval_files(run_dir)
        info: dict = {"run": str(run_dir)}
        if args.what in ("train", "both") and train:
            smooth_all = running_mean([float(r["episode_return"]) for r in train], args.smooth)
            # Parallel envs finish several episodes at one step: plot the last running mean per step.
            last = {int(r["step"]): v for r, v in zip(train, smooth_all)}
            steps, smooth = list(last), list(last.values())
            alpha = 0.35 if args.what == "both" else 1.0
            ax.plot(steps, smooth, color=color, alpha=alpha, lw=1.2,
                    label=f"{label} (train, mean of {args.smooth} ep.)" if args.what == "both" else label)
            info["train"] = {"episodes": len(train), "last_step": steps[-1], "last_smoothed": smooth[-1]}
        if args.what in ("eval", "both"):
            if evals:
                steps = [int(r["step"]) for r in evals]
                means = [float(r["mean"]) for r in evals]
                errs = [float(r.get("stderr", 0.0)) if math.isfinite(float(r.get("stderr", 0.0))) else 0.0
                        for r in evals]
                ax.plot(steps, means, color=color, marker="o", ms=3.5, lw=1.8, label=f"{label} (eval)")
                ax.fill_between(steps, [m - e for m, e in zip(means, errs)], [m + e for m, e in zip(means, errs)],
                                color=color, alpha=0.2, lw=0)
                info["eval"] = [{"step": s, "mean": m, "stderr": e} for s, m, e in zip(steps, means, errs)]
            if files:
                ax.errorbar([r["step"] for r in files], [r["mean"] for r in files], yerr=[r["stderr"] for r in files],
                            color=color, marker="s", ms=5, ls="none", capsize=3,
                            label=f"{label} (ssmrl eval, {files[-1]['episodes']} ep.)")
                info["eval_files"] = files
        summary[label] = info
    for j, spec in enumerate(args.baseline):
        run_dir, label = parse_run(spec)
        files = read_eval_files(run_dir)
        if not files:
            raise FileNotFoundError(f"--baseline {spec}: no eval-*.json in {run_dir} (run `ssmrl eval {run_dir}` first)")
        ref = files[-1]
        color = "gray" if j == 0 else colors[(len(args.runs) + j) % len(colors)]
        ax.axhline(ref["mean"], color=color, ls="--", lw=1.2,
                   label=f"{label} ({ref['episodes']} ep.: {ref['mean']:.1f} ± {ref['stderr']:.1f})")
        ax.axhspan(ref["mean"] - ref["stderr"], ref["mean"] + ref["stderr"], color=color, alpha=0.15, lw=0)
        summary[label] = {"run": str(run_dir), "baseline": ref}
    for spec in args.hline:
        value, _, label = spec.partition(":")
        ax.axhline(float(value), color="gray", ls="--", lw=1, label=label or None)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    if args.title:
        ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    summary["_out"] = str(out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
