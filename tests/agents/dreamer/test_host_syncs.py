"""No host syncs inside a Dreamer update: every call that would read a device value back to the host on a GPU
(``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()``) is counted during ``DreamerAgent.update`` on the
CPU. (``.numpy()`` is not counted: only the CPU's fused C kernels use it, on CPU tensors.)"""
from __future__ import annotations

import collections
import traceback

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import ssmrl.ssm.s4d as s4d_module
from agents.dreamer.agent import DreamerAgent, sample_batches
from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
from envs.spec import EnvSpec, ObservationSpec
from ssmrl.replay import ReplayBuffer, ReplayConfig
from ssmrl.world_models import PRESETS

READS = {"item", "__float__", "__int__", "__bool__", "__index__", "tolist"}
IMG, VEC, A = (8, 8, 3), 3, 3


class CountHostReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READS:
            frame = traceback.extract_stack(limit=3)[0]
            self.calls[f"{name} at {frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"] += 1
        return func(*args, **(kwargs or {}))


def _replay() -> ReplayBuffer:
    replay = ReplayBuffer(ReplayConfig(capacity=64, num_streams=1, verbose=False, sampler="dfs",
                                       dfs_imagination_divisor=2.0))
    rng = np.random.default_rng(0)
    for t in range(40):
        replay.add({"image": rng.integers(0, 256, IMG, dtype=np.uint8), "vector": rng.normal(size=VEC).astype(np.float32),
                    "action": np.int64(t % A), "reward": np.float32(rng.normal()), "is_first": t % 13 == 0,
                    "is_last": False, "is_terminal": t % 13 == 12})
    return replay


@pytest.mark.parametrize("imag_starts", ["replay", "posterior"])
@pytest.mark.parametrize("preset", PRESETS)
def test_a_dreamer_update_reads_nothing_back_from_the_device(monkeypatch, preset, imag_starts):
    monkeypatch.setattr(s4d_module, "_reads_segments", lambda u: False)  # the branch a GPU takes
    spec = EnvSpec((ObservationSpec("image", IMG, "uint8"), ObservationSpec("vector", (VEC,), "float32")),
                   action_dim=A, discrete=True)
    cfg = DreamerConfig(batch_size=3, seq_len=9, imag_batch=6, imag_context=4, horizon=3, imag_starts=imag_starts)
    ac = ActorCriticConfig(actor_units=16, critic_units=16, actor_layers=1, critic_layers=1, num_bins=15)
    agent = DreamerAgent(WorldModelSection(preset, "debug"), ac, cfg, spec, torch.device("cpu"), seed=0)
    replay, gen = _replay(), torch.Generator().manual_seed(0)
    agent.update(*sample_batches(replay, agent), gen)
    batch, context = sample_batches(replay, agent)  # host-side sampling and the copy to the device
    with CountHostReads() as reads:
        metrics = agent.update(batch, context, gen)
    assert dict(reads.calls) == {}
    assert all(isinstance(v, (torch.Tensor, float)) for v in metrics.values())


def test_the_counter_sees_a_host_read():
    with CountHostReads() as reads:
        float(torch.ones(2).sum())
    assert sum(reads.calls.values()) == 1


def test_discrete_action_indices_are_checked_on_the_host_before_the_copy():
    spec = EnvSpec((ObservationSpec("vector", (VEC,), "float32"),), action_dim=A, discrete=True)
    agent = DreamerAgent(WorldModelSection("drama", "debug"), ActorCriticConfig(actor_units=8, critic_units=8,
                         actor_layers=1, critic_layers=1, num_bins=15), DreamerConfig(), spec, torch.device("cpu"), seed=0)
    arrays = {"vector": np.zeros((1, 2, VEC), np.float32), "action": np.array([[0, A]]), "reward": np.zeros((1, 2)),
              "is_first": np.ones((1, 2), bool), "is_terminal": np.zeros((1, 2), bool)}
    with pytest.raises(ValueError, match=rf"must be in \[0, {A}\), got range \[0, {A}\]"):
        agent.to_batch(arrays)
