"""``ssmrl offline agent=<dm|dt|bc> dataset=<path>`` and ``ssmrl eval`` of its checkpoints, on run directories.

The run's top-level settings win over the matching ``offline.*`` fields: ``seed``, ``device``, ``train.steps``
(updates), ``train.eval_every``, ``train.eval_episodes``, ``train.log_every``; ``offline.agent`` is the preset.
Checkpoints hold the trainer (model, optimiser, frozen PSER policy, data-sampling RNG, step), so running the same
command again resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from agents.offline.config import OfflineConfig
from agents.offline.data import OfflineData
from agents.offline.io import load_dataset
from agents.offline.trainer import OfflineTrainer, evaluate_checkpoint, train_offline
from agents.registry import names
from ssmrl.runs.checkpoint import CheckpointError
from ssmrl.runs.config import ConfigError
from ssmrl.runs.interrupt import StopRequest
from ssmrl.runs.progress import progress
from ssmrl.runs.run import Run, package_versions
from ssmrl.runs.schema import resolve_device
from ssmrl.runs.seeding import seed_everything

AGENTS = names(kind="offline")  # from the registry: dm, dt, bc


def offline_config(run: Run) -> OfflineConfig:
    cfg = run.config
    return dataclasses.replace(cfg.offline, agent=cfg.agent, seed=cfg.seed, updates=cfg.train.steps,
                               eval_every=cfg.train.eval_every, eval_episodes=cfg.train.eval_episodes,
                               log_every=cfg.train.log_every, device=str(resolve_device(cfg.device)))


def dataset_path(run: Run) -> str:
    dataset = run.config.dataset
    if not dataset:
        raise ConfigError("ssmrl offline needs dataset=<D4RL-format .hdf5 file or Minari dataset folder> "
                          "(make one with: ssmrl dataset collect env=Hopper)")
    if not Path(dataset).exists():
        raise FileNotFoundError(f"dataset {dataset} does not exist")
    return dataset


def train(run: Run, dataset: tuple[dict, dict] | None = None) -> None:
    """``dataset``: the (arrays, metadata) the CLI's pre-run check already read from ``run.config.dataset``
    (None: read it here)."""
    cfg = run.config
    ocfg = offline_config(run)
    seed_everything(cfg.seed)
    arrays, meta = dataset if dataset is not None else load_dataset(dataset_path(run))
    run.update_info(dataset={"path": cfg.dataset, "metadata": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}})
    trainer = OfflineTrainer(ocfg, OfflineData(arrays, ocfg.context, ocfg.rtg_scale, ocfg.model.max_timestep, meta))
    run.checkpointer.register(trainer=trainer)
    if run.resumed and run.checkpointer.latest() is not None:
        run.resume_from(run.checkpointer.load())
        print(f"resumed at update {trainer.step}", file=sys.stderr)
    start = time.time()
    # Advanced at every log step (train.log_every updates); off a terminal a timed plain line says how far it is.
    bar = progress(total=cfg.train.steps, initial=trainer.step, desc=f"{cfg.agent} {Path(cfg.dataset).name}",
                   unit="update")

    def on_log(step: int, losses: dict) -> None:
        run.log_metrics(step, {**{f"loss/{k}": v for k, v in losses.items()}, "perf/updates_per_s": step / max(time.time() - start, 1e-9)})
        bar.update(step - bar.n)
        if "loss" in losses:
            bar.set_postfix({"loss": f"{float(losses['loss']):.3g}"})

    def on_update(step: int) -> None:  # every update, so train.checkpoint_every holds whatever train.log_every is
        if step % cfg.train.checkpoint_every == 0:
            run.checkpointer.save(step)

    def on_eval(step: int, result: dict, _trainer) -> None:
        fields = {"kind": "eval", "mean": result["return_mean"], "std": result["return_std"], "returns": result["returns"]}
        if result.get("normalised"):
            fields.update(normalised_score=result["normalised"].get("score"), normalised_reference=result["normalised"].get("reference"))
        run.log_score(step, **fields)
        run.log_metrics(step, {"eval/return": result["return_mean"]})

    with StopRequest() as stop:
        result = train_offline(ocfg, arrays, meta, trainer=trainer, on_log=on_log, on_eval=on_eval,
                               should_stop=lambda step: stop.requested, on_update=on_update)
        run.checkpointer.save(trainer.step)
        bar.close()
        if result.get("stopped"):
            stop.finish(trainer.step)
    summary = {k: v for k, v in result.items() if k not in ("trainer", "evals")}
    (run.directory / "offline_result.json").write_text(json.dumps(summary, indent=1, default=str))


def evaluate_cli(args: argparse.Namespace, run: Run, checkpoint: Path | None) -> dict:
    """Evaluate an offline checkpoint in its env; the normalised score says which reference it used."""
    payload = run.checkpointer.read(checkpoint)
    if "trainer" not in payload["objects"]:
        raise CheckpointError(f"checkpoint of {run.directory} holds no offline trainer (objects: {sorted(payload['objects'])})")
    _, meta = load_dataset(dataset_path(run))
    seed = run.config.seed + 10_000 if args.seed is None else args.seed
    result = evaluate_checkpoint(offline_config(run), payload["objects"]["trainer"], episodes=args.episodes, seed=seed, metadata=meta)
    return {"run": str(run.directory), "checkpoint": str(checkpoint) if checkpoint else "latest", "step": int(payload["step"]),
            "agent": run.config.agent, "dataset": run.config.dataset, "seed": seed, "packages": package_versions(), **result}
