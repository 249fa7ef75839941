"""An asynchronous vector env whose worker processes each step several envs.

Gymnasium's ``AsyncVectorEnv`` runs one process per env. With 8 Atari envs on a 2-core machine every vector step
then wakes 8 processes and makes 16 pipe round trips, and the vector ran *slower* than one env (0.88x, see
docs/results.md). Here ``num_workers`` processes (default: one per core) each own a contiguous slice of the envs,
step them one after another and write their observations into one shared-memory batch: one message per worker
per step. Semantics follow ``gymnasium.vector.SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``: an env that ends
is reset inside the same ``step``; the returned observation is the new episode's first one and ``infos`` carry
``final_obs`` / ``final_info`` for it (tests compare the two vectors step by step).
"""
from __future__ import annotations

import copy
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import (
    CloudpickleWrapper,
    batch_space,
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)


def _worker(env_fns: CloudpickleWrapper, first: int, num_envs: int, obs_space: gym.Space, shared, pipe) -> None:
    """Owns envs ``first .. first + len(env_fns) - 1`` of ``num_envs``; answers ("reset"|"step"|"close", payload)
    messages."""
    envs: list[gym.Env] = []
    try:
        envs = [fn() for fn in env_fns.fn]
        batch = read_from_shared_memory(obs_space, shared, num_envs)
        if isinstance(batch, np.ndarray):  # Box observations: plain array writes, no per-call space dispatch

            def write(index: int, obs) -> None:
                batch[index] = obs
        else:

            def write(index: int, obs) -> None:
                write_to_shared_memory(obs_space, index, obs, shared)

        while True:
            command, payload = pipe.recv()
            if command == "reset":
                seeds, options = payload
                infos = []
                for j, (env, seed) in enumerate(zip(envs, seeds)):
                    obs, info = env.reset(seed=seed, options=options)
                    write(first + j, obs)
                    infos.append(info)
                pipe.send(("ok", infos))
            elif command == "step":
                results = []
                for j, (env, action) in enumerate(zip(envs, payload)):
                    obs, reward, terminated, truncated, info = env.step(action)
                    if terminated or truncated:  # SAME_STEP autoreset: the next episode's first obs is returned
                        final = {"final_obs": obs, "final_info": info}
                        obs, info = env.reset()
                        info = {**info, **final}
                    write(first + j, obs)
                    results.append((reward, terminated, truncated, info))
                pipe.send(("ok", results))
            elif command == "close":
                pipe.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception:  # noqa: BLE001 - reported to the main process, which raises it with the worker's traceback
        pipe.send(("error", traceback.format_exc()))
    finally:
        for env in envs:
            env.close()


class BatchedAsyncVectorEnv(gym.vector.VectorEnv):
    """``env_fns`` split over ``num_workers`` ``spawn`` processes (default: ``min(len(env_fns), cpu_count)``).

    Observations: one shared-memory batch ``(num_envs, *obs_shape)`` (returned as a copy on each call).
    ``infos`` is aggregated like Gymnasium's (``info[key]`` arrays with ``info["_" + key]`` masks).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], num_workers: int | None = None,
                 context: str = "spawn"):
        if not env_fns:
            raise ValueError("BatchedAsyncVectorEnv needs at least one env function")
        self.num_envs = len(env_fns)
        workers = min(self.num_envs, num_workers or os.cpu_count() or 1)
        if workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        probe = env_fns[0]()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.metadata = dict(probe.metadata, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.render_mode = probe.render_mode
        probe.close()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        ctx = mp.get_context(context)
        self._shared = create_shared_memory(self.single_observation_space, self.num_envs, ctx=ctx)
        self._obs = read_from_shared_memory(self.single_observation_space, self._shared, self.num_envs)
        self._slices = [s for s in np.array_split(np.arange(self.num_envs), workers) if len(s)]
        self._pipes, self._procs = [], []
        for idx in self._slices:
            parent, child = ctx.Pipe()
            fns = CloudpickleWrapper([env_fns[i] for i in idx])
            proc = ctx.Process(target=_worker, args=(fns, int(idx[0]), self.num_envs, self.single_observation_space,
                                                      self._shared, child), daemon=True)
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)
        self.closed = False

    def _call(self, messages: list[tuple[str, Any]]) -> list[Any]:
        for pipe, message in zip(self._pipes, messages):
            pipe.send(message)
        out = []
        for pipe in self._pipes:
            status, payload = pipe.recv()
            if status == "error":
                self.close(terminate=True)
                raise RuntimeError(f"a BatchedAsyncVectorEnv worker failed:\n{payload}")
            out.append(payload)
        return out

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None] * self.num_envs if seed is None else [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=...) needs {self.num_envs} seeds, got {len(seeds)}")
        replies = self._call([("reset", ([seeds[i] for i in idx], options)) for idx in self._slices])
        infos: dict[str, Any] = {}
        for idx, env_infos in zip(self._slices, replies):
            for i, info in zip(idx, env_infos):
                infos = self._add_info(infos, info, int(i))
        return copy.deepcopy(self._obs), infos  # deep: Dict spaces give a dict of shared arrays

    def step(self, actions):
        actions = np.asarray(actions) if not isinstance(actions, (list, tuple)) else actions
        if len(actions) != self.num_envs:
            raise ValueError(f"step() needs {self.num_envs} actions, got {len(actions)}")
        replies = self._call([("step", [actions[i] for i in idx]) for idx in self._slices])
        rewards = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, np.bool_)
        truncated = np.zeros(self.num_envs, np.bool_)
        infos: dict[str, Any] = {}
        for idx, results in zip(self._slices, replies):
            for i, (reward, term, trunc, info) in zip(idx, results):
                rewards[i], terminated[i], truncated[i] = reward, term, trunc
                infos = self._add_info(infos, info, int(i))
        return copy.deepcopy(self._obs), rewards, terminated, truncated, infos

    def close_extras(self, terminate: bool = False, **kwargs) -> None:
        if not terminate:
            try:
                self._call([("close", None)] * len(self._pipes))
            except (BrokenPipeError, EOFError, RuntimeError):
                terminate = True
        for proc in self._procs:
            if terminate and proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()
