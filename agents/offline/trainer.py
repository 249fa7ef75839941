"""Offline training loop for Decision Mamba, Decision Transformer and BC, with periodic env evaluation.

``train_offline(cfg, dataset)`` is the entry point. All mutable state lives in :class:`OfflineTrainer` and is
exposed through ``state_dict`` / ``load_state_dict`` (model, optimiser, lr schedule, update counter, PSER stage
and frozen previous policy, RNG states), so a caller can checkpoint and resume at any update.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from agents.offline.bc import BC
from agents.offline.config import D4RL_TARGET_RETURNS, OfflineConfig
from agents.offline.data import OfflineData, StateStats
from agents.offline.decision_mamba import DecisionMamba
from agents.offline.decision_transformer import DecisionTransformer
from agents.offline.io import load_dataset
from agents.offline.pser import alpha_of, freeze_copy, pser_target, stage_of
from agents.offline.scores import D4RL_REF_SCORES, _task, normalised_score
from envs.spec import env_spec
from ssmrl.runs.config import ConfigError


def build_model(cfg: OfflineConfig, obs_dim: int, act_dim: int) -> nn.Module:
    if cfg.agent == "dm":
        return DecisionMamba(obs_dim, act_dim, cfg.model, context=cfg.context, acting=cfg.acting)
    if cfg.agent == "dt":
        return DecisionTransformer(obs_dim, act_dim, cfg.model, context=cfg.context)
    if cfg.agent == "bc":
        return BC(obs_dim, act_dim, cfg.model)
    raise ValueError(f"agent must be 'dm', 'dt' or 'bc', got {cfg.agent!r}")


def _env_label(env_fn: Callable[[int], gym.Env] | None) -> str | None:
    """The id (with version) of the env ``env_fn`` builds, e.g. ``Hopper-v5``."""
    if env_fn is None:
        return None
    env = env_fn(0)
    try:
        settings = env.unwrapped.settings() if callable(getattr(env.unwrapped, "settings", None)) else {}
        if "gym_id" in settings:  # this suite's MuJoCo envs: e.g. Hopper-v5
            return settings["gym_id"]
        spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
        return spec.id if spec is not None else type(env.unwrapped).__name__
    finally:
        env.close()


def _acting_mode(cfg: OfflineConfig) -> str:
    """How the evaluated policy used its context (recorded with every evaluation)."""
    if cfg.agent == "dm" and cfg.acting == "recurrent":
        return f"recurrent (reset every {cfg.act_reset_every} steps)" if cfg.act_reset_every else "recurrent"
    return "none (per-step BC)" if cfg.agent == "bc" else f"window of the last {cfg.context} steps"


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay only on matrices of Linear layers; none on biases, norms, embeddings and SSM parameters."""
    no_decay: set[int] = set()
    for mod in model.modules():
        names = mod.no_weight_decay() if hasattr(mod, "no_weight_decay") else set()
        for n, p in mod.named_parameters(recurse=False):
            if n in names or p.ndim < 2 or isinstance(mod, (nn.Embedding, nn.LayerNorm)):
                no_decay.add(id(p))
        if isinstance(mod, nn.Module) and names:  # names may refer to nested parameters ("mixer.A_log")
            for n, p in mod.named_parameters():
                if n in names:
                    no_decay.add(id(p))
    decay = [p for p in model.parameters() if id(p) not in no_decay]
    rest = [p for p in model.parameters() if id(p) in no_decay]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def target_return_for(cfg: OfflineConfig, task: str, metadata: dict[str, Any]) -> tuple[float, str]:
    """Evaluation return target and how it was chosen.

    D4RL data: the published target (hopper 3600, halfcheetah 12000, walker2d 5000). Locally generated data
    (metadata with ``ref_max_score``): the same ratio target / D4RL expert applied to the dataset's expert return.
    """
    if cfg.target_return is not None:
        return float(cfg.target_return), "config"
    key = _task(task)
    if metadata.get("ref_max_score") is not None:
        ratio = D4RL_TARGET_RETURNS[key] / D4RL_REF_SCORES[key][1] if key in D4RL_TARGET_RETURNS else 1.0
        return float(metadata["ref_max_score"]) * ratio, "dataset expert return x D4RL target ratio"
    if key in D4RL_TARGET_RETURNS:
        return D4RL_TARGET_RETURNS[key], "d4rl"
    raise KeyError(f"no evaluation target return for task {task!r}: set cfg.target_return")


@torch.no_grad()
def evaluate(model: nn.Module, data: OfflineData | StateStats, env_fn: Callable[[int], gym.Env], target_return: float,
             episodes: int, seed: int, max_steps: int | None = None, device: str = "cpu",
             reset_every: int | None = None) -> list[float]:
    """Run ``episodes`` episodes in parallel (one batch row each) conditioned on ``target_return``.

    Acting is incremental: ``model.act`` feeds R_t and s_t and returns a_t, ``model.record_action`` feeds a_t.
    Rows whose episode ended keep being fed (their outputs are ignored) so that all rows stay in lockstep.
    ``reset_every``: restart the model's context every n steps (``first`` set; timesteps and RTG continue).
    """
    was_training = model.training
    model.eval()
    envs = [env_fn(seed + i) for i in range(episodes)]
    spec = env_spec(envs[0])
    if not spec.discrete and (min(spec.action_low) < -1 - 1e-6 or max(spec.action_high) > 1 + 1e-6):
        for e in envs:
            e.close()
        raise ConfigError(f"the policies' action heads are tanh (actions in [-1, 1]), but the evaluation env's "
                          f"actions lie in [{min(spec.action_low):g}, {max(spec.action_high):g}]; rescale the env's actions")
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    returns = np.zeros(episodes)
    done = np.zeros(episodes, bool)
    cache = model.begin(episodes, device=device)
    limit = max_steps or min(getattr(e.spec, "max_episode_steps", None) or 1000 for e in envs)
    t = 0
    while not done.all() and t < limit:
        rtg = torch.as_tensor((target_return - returns) / data.rtg_scale, dtype=torch.float32, device=device).unsqueeze(1)
        state = torch.as_tensor(data.normalise_state(obs), device=device)
        ts = torch.full((episodes,), t, dtype=torch.long, device=device)
        restart = t == 0 or bool(reset_every and t % reset_every == 0)
        first = torch.full((episodes,), restart, dtype=torch.bool, device=device)
        action, cache = model.act(cache, rtg, state, ts, first)
        cache = model.record_action(cache, action, ts)
        act_np = action.cpu().numpy()
        for i, e in enumerate(envs):
            if done[i]:
                continue
            o, r, term, trunc, _ = e.step(act_np[i])
            obs[i] = o
            returns[i] += float(r)
            done[i] = term or trunc
        t += 1
    for e in envs:
        e.close()
    model.train(was_training)
    return returns.tolist()


class OfflineTrainer:
    """Model + optimiser + schedule + PSER state; :meth:`update` does one gradient step."""

    def __init__(self, cfg: OfflineConfig, data: OfflineData):
        self.cfg, self.data = cfg, data
        torch.manual_seed(cfg.seed)  # parameter init
        self.model = build_model(cfg, data.obs_dim, data.act_dim).to(cfg.device)
        self.opt = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        warm = max(1, cfg.warmup_steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm))
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.stage = 0
        self.prev_model: nn.Module | None = None
        self.use_pser = cfg.agent == "dm" and cfg.pser.enabled

    def _advance_stage(self) -> None:
        stage = stage_of(self.step, self.cfg.updates, self.cfg.pser) if self.use_pser else 0
        if stage != self.stage:
            self.prev_model = freeze_copy(self.model)  # the policy at the end of the previous stage
            self.stage = stage

    def update(self) -> dict[str, float]:
        self._advance_stage()
        batch = {k: v.to(self.cfg.device) for k, v in self.data.sample(self.cfg.batch_size, self.rng).items()}
        alpha = alpha_of(self.stage, self.cfg.updates, self.cfg.pser) if self.use_pser else 0.0
        target = pser_target(self.prev_model, batch, alpha)
        self.model.train()
        loss, info = self.model.loss(batch, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        return dict(info, loss=loss.item(), alpha=alpha, stage=self.stage, lr=self.sched.get_last_lr()[0])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "step": self.step, "stage": self.stage, "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "prev_model": None if self.prev_model is None else self.prev_model.state_dict(),
                "data": self.data.state_dict()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if self.model.kind == "dm" and any(".mlp" in k for k in sd["model"]):
            raise ValueError("this Decision Mamba checkpoint is from before f2a84c2, when each layer ended in a "
                             "feed-forward MLP (removed to match the public code); start a new run, or evaluate it "
                             "with a checkout of an earlier commit")
        self.model.load_state_dict(sd["model"])
        self.opt.load_state_dict(sd["opt"])
        self.sched.load_state_dict(sd["sched"])
        self.step, self.stage = int(sd["step"]), int(sd["stage"])
        self.rng.bit_generator.state = sd["rng"]
        torch.set_rng_state(sd["torch_rng"])
        if sd["prev_model"] is not None:
            self.prev_model = freeze_copy(self.model)
            self.prev_model.load_state_dict(sd["prev_model"])
        else:
            self.prev_model = None


def train_offline(cfg: OfflineConfig, dataset: str | dict[str, np.ndarray], metadata: dict[str, Any] | None = None,
                  env_fn: Callable[[int], gym.Env] | None = None, trainer: OfflineTrainer | None = None,
                  on_log: Callable[[int, dict], None] | None = None,
                  on_eval: Callable[[int, dict, OfflineTrainer], None] | None = None,
                  should_stop: Callable[[int], bool] | None = None,
                  on_update: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train ``cfg.agent`` on ``dataset`` (a D4RL HDF5 path / Minari folder, or a D4RL array dict + ``metadata``).

    Evaluates every ``cfg.eval_every`` updates and at the end with ``cfg.eval_episodes`` episodes of
    ``env_fn(seed)`` (default: the dataset's env) conditioned on the target return. Pass a ``trainer`` restored
    from a checkpoint to resume; ``on_update(step)`` runs after every update (the CLI checkpoints there),
    ``on_eval(step, result, trainer)`` after every evaluation; ``should_stop(step)`` is asked after every update
    (the caller checkpoints and stops when it says so).
    Returns ``{"evals": [...], "final": {...}, "train_time_s", "updates_per_s", "target_return", ...}``.
    """
    if isinstance(dataset, str):
        arrays, meta = load_dataset(dataset)
        meta = dict(meta, **(metadata or {}))
    else:
        arrays, meta = dataset, dict(metadata or {})
    task = cfg.env or meta.get("env_id") or meta.get("task")
    data = trainer.data if trainer is not None else OfflineData(arrays, cfg.context, cfg.rtg_scale, cfg.model.max_timestep, meta)
    trainer = trainer or OfflineTrainer(cfg, data)
    if env_fn is None and task is not None:
        from envs.mujoco import make_task

        env_fn = lambda s: make_task(task, seed=s)  # noqa: E731
    target, target_src = target_return_for(cfg, task, meta) if task is not None else (cfg.target_return, "config")
    evals: list[dict] = []
    env_label = _env_label(env_fn)  # the evaluated env's id with its version, once per run

    def run_eval() -> dict:
        t0 = time.perf_counter()
        rets = evaluate(trainer.model, data, env_fn, target, cfg.eval_episodes, seed=cfg.seed + 1000,
                        max_steps=cfg.max_eval_steps, device=cfg.device, reset_every=cfg.act_reset_every)
        res = {"step": trainer.step, "return_mean": float(np.mean(rets)), "return_std": float(np.std(rets)),
               "returns": rets, "eval_time_s": time.perf_counter() - t0, "acting": _acting_mode(cfg)}
        try:
            res["normalised"] = normalised_score(res["return_mean"], task, meta, env=env_label,
                                                 allow_other_version=cfg.d4rl_reference_any_version).to_dict()
        except KeyError as err:
            res["normalised"], res["normalised_refused"] = None, str(err.args[0] if err.args else err)
        evals.append(res)
        if on_eval is not None:
            on_eval(trainer.step, res, trainer)
        return res

    train_time, last, done_here = 0.0, {}, 0
    while trainer.step < cfg.updates:
        t0 = time.perf_counter()
        last = trainer.update()
        train_time += time.perf_counter() - t0
        done_here += 1
        if on_update is not None:
            on_update(trainer.step)
        if on_log is not None and cfg.log_every and trainer.step % cfg.log_every == 0:
            on_log(trainer.step, last)
        if env_fn is not None and cfg.eval_every and trainer.step % cfg.eval_every == 0 and trainer.step < cfg.updates:
            run_eval()
        if should_stop is not None and should_stop(trainer.step):
            break
    if trainer.step < cfg.updates:  # stopped early: no final evaluation
        return {"agent": cfg.agent, "evals": evals, "final": {}, "trainer": trainer, "stopped": True}
    final = run_eval() if env_fn is not None and cfg.eval_episodes > 0 else {}
    return {"agent": cfg.agent, "evals": evals, "final": final, "last_losses": last, "train_time_s": train_time,
            "updates_per_s": (done_here / train_time) if train_time else None, "target_return": target,
            "target_source": target_src, "task": task, "trainer": trainer}


def evaluate_checkpoint(cfg: OfflineConfig, checkpoint: dict[str, Any], episodes: int = 10, seed: int = 100_000,
                        env_fn: Callable[[int], gym.Env] | None = None, metadata: dict[str, Any] | None = None,
                        target_return: float | None = None) -> dict[str, Any]:
    """Evaluate a trainer checkpoint (``OfflineTrainer.state_dict()``) without the dataset.

    ``metadata`` (the dataset's) selects the normalisation reference and target return; the result says which
    reference was used. Returns ``{"returns", "return_mean", "return_std", "normalised", "target_return"}``.
    """
    meta = metadata or {}
    stats = StateStats(**checkpoint["data"])
    model = build_model(cfg, int(checkpoint["data"]["obs_dim"]), int(checkpoint["data"]["act_dim"])).to(cfg.device)
    model.load_state_dict(checkpoint["model"])
    task = cfg.env or meta.get("env_id") or meta.get("task")
    if task is None and env_fn is None:
        raise ConfigError("no evaluation env is known for this run (offline.env, and the dataset's metadata and "
                          "name, say none): set offline.env=hopper|halfcheetah|walker2d|ant|<Gymnasium id>")
    if env_fn is None:
        from envs.mujoco import make_task

        env_fn = lambda s: make_task(task, seed=s)  # noqa: E731
    if target_return is None:
        target_return = target_return_for(cfg, task, meta)[0]
    rets = evaluate(model, stats, env_fn, target_return, episodes, seed, cfg.max_eval_steps, cfg.device,
                    reset_every=cfg.act_reset_every)
    out = {"returns": rets, "return_mean": float(np.mean(rets)), "return_std": float(np.std(rets)),
           "target_return": target_return, "normalised": None, "acting": _acting_mode(cfg)}
    if task is not None:
        try:
            out["normalised"] = normalised_score(out["return_mean"], task, meta, env=_env_label(env_fn),
                                                 allow_other_version=cfg.d4rl_reference_any_version).to_dict()
        except KeyError as err:
            out["normalised_refused"] = str(err.args[0] if err.args else err)
    return out
