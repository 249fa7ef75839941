"""Status of a campaign of long runs: every run directory under ``ROOT`` (default ``~/ssmrl-experiments/runs``)
with its progress, the hours it has taken and (at that pace) has left, whether a process is running it now, and its
latest metrics. Unfinished runs resume with the same command (``ssmrl train|offline ... --run-dir DIR``);
``--resume-commands`` prints those commands.

    python scripts/campaign.py                      # a table
    python scripts/campaign.py --json               # one JSON object
    python scripts/campaign.py --resume-commands    # the command line of every unfinished run that is not running
"""
from __future__ import annotations

import argparse
import fcntl
import json
import shlex
import sys
from pathlib import Path

DEFAULT_ROOT = Path.home() / "ssmrl-experiments" / "runs"


def _running(run_dir: Path) -> bool:
    """A live process holds the run directory's lock (the lock dies with its process). Runs started by code from
    before the lock existed are found by their command line in /proc."""
    lock = run_dir / ".lock"
    if not lock.is_file():
        target = str(run_dir.resolve()).encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if target in cmdline.read_bytes().split(b"\0"):
                    return True
            except OSError:
                continue
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _last(path: Path, keep) -> dict | None:
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
    rows = [r for r in rows if keep(r)]
    return rows[-1] if rows else None


def status(run_dir: Path) -> dict:
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    latest = run_dir / "checkpoints" / "latest.json"
    record = json.loads(latest.read_text()) if latest.is_file() else {}
    step = record.get("step", 0)
    total = (config.get("train") or {}).get("steps")
    evaluation = _last(run_dir / "scores.jsonl", lambda r: r.get("kind") in ("eval", "memory"))
    metrics = _last(run_dir / "metrics.jsonl", lambda r: True) or {}
    return {
        # offline runs name their dataset instead of an env
        "run": str(run_dir), "agent": config.get("agent"),
        "env": (config.get("env") or {}).get("id") or (Path(config["dataset"]).name if config.get("dataset") else None),
        "seed": config.get("seed"), "checkpoint_step": step, "steps": total,
        "wall_s": record.get("wall_s"),  # wall-clock up to the latest checkpoint, over every attempt
        # hours left at the pace so far (evaluations included); None before the first checkpoint or once finished
        "eta_h": (record["wall_s"] / step * (total - step) / 3600
                  if record.get("wall_s") and step and total and step < total else None),
        "progress": (step / total) if total else None, "finished": bool(total) and step >= total,
        "running": _running(run_dir), "commit": (info.get("git") or {}).get("commit"),
        "last_eval": evaluation, "last_metrics_step": metrics.get("step"),
        # the run directory's config.yaml holds every setting: resuming needs no other words
        "resume": shlex.join(["ssmrl", info.get("command", "train"), "--run-dir", str(run_dir)]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=str(DEFAULT_ROOT), help="folder holding the campaign's run dirs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--resume-commands", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.root).expanduser()
    if not root.is_dir():
        print(f"campaign: error: {root} is not a directory", file=sys.stderr)
        return 2
    runs = [status(p.parent) for p in sorted(root.glob("**/config.yaml"))]
    if args.json:
        print(json.dumps({"root": str(root), "runs": runs}, indent=1, default=str))
    elif args.resume_commands:
        for r in runs:
            if not r["finished"] and not r["running"] and r["resume"]:
                print(r["resume"])
    else:
        print(f"{'run':<48} {'agent':<10} {'env':<26} {'progress':>16} {'state':<9} {'wall h':>6} {'left h':>6} "
              "last eval")
        for r in runs:
            progress = f"{r['checkpoint_step']}/{r['steps']}"
            state = "running" if r["running"] else ("done" if r["finished"] else "stopped")
            ev = r["last_eval"]
            last = "" if not ev else f"{ev.get('mean', ev.get('reward_acc_imagination', '')):.4g} @ {ev['step']}"
            name = str(Path(r["run"]).relative_to(root))  # suite cells: suite/agent/env/seed<k>
            wall = "" if r["wall_s"] is None else f"{r['wall_s'] / 3600:.2f}"
            left = "" if r["eta_h"] is None else f"{r['eta_h']:.2f}"
            print(f"{name:<48} {r['agent'] or '':<10} {r['env'] or '':<26} {progress:>16} {state:<9} {wall:>6} {left:>6} "
                  f"{last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
