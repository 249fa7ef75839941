"""The world model's losses on fresh evaluation play against its replay, for a checkpoint of an online run.

What every evaluation of a run logs since ``train.eval_wm_windows`` (``wm_eval/fresh|replay|recent/*``, see
``agents.dreamer.train.world_model_gap``), recomputed for any checkpoint, also of runs that predate it: the
checkpoint's networks and its replay as committed with it, the evaluation that the run would play at that step
(same seeds), and the world model scored on windows of each part without an update.

    python scripts/wm_gap.py RUN [--checkpoint RUN/checkpoints/ckpt-000020000.pt] [--episodes 4] [--windows 16]

Prints one JSON object (the evaluation's summary, the ``wm_eval/*`` metrics, the run and checkpoint); writes
nothing into the run directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from agents.dreamer.train import evaluation, load_agent
from ssmrl.bench.output import emit
from ssmrl.cli.config import Config
from ssmrl.replay import ReplayBuffer
from ssmrl.runs.checkpoint import CheckpointError
from ssmrl.runs.run import Run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="an online (Dreamer-style) run directory")
    p.add_argument("--checkpoint", type=Path, help="a checkpoint file of the run (default: its latest)")
    p.add_argument("--episodes", type=int, default=4, help="evaluation episodes to play")
    p.add_argument("--windows", type=int, default=16, help="windows per part (train.eval_wm_windows)")
    a = p.parse_args(argv)
    if a.episodes < 1 or a.windows < 1:
        p.error("--episodes and --windows must be >= 1")
    if not (a.run / "config.yaml").is_file():
        p.error(f"{a.run} is not a run directory (no config.yaml)")
    try:
        run = Run.load(a.run, Config)
        if not hasattr(run.config, "dreamer"):
            p.error(f"{a.run}: agent {run.config.agent!r} is not an online world-model agent")
        payload = run.checkpointer.read(a.checkpoint)  # once: the latest may change while a run is writing
        agent, step = load_agent(run, payload=payload)
        state = payload["objects"].get("replay")
        if state is None:
            raise CheckpointError(f"checkpoint of {a.run} holds no replay (objects: {sorted(payload['objects'])})")
    except CheckpointError as err:
        print(f"wm_gap.py: {err}", file=sys.stderr)
        return 2
    replay = ReplayBuffer.load(a.run / "replay", state, verbose=False)
    run.config.train = dataclasses.replace(run.config.train, eval_wm_windows=a.windows)
    _, summary, metrics = evaluation(run, agent, step, a.episodes, replay)
    emit({"run": str(a.run), "checkpoint": str(a.checkpoint or "latest"), "step": step, "episodes": a.episodes,
          "windows": a.windows, "summary": summary, "metrics": {k: v for k, v in metrics.items() if k.startswith("wm_eval/")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
