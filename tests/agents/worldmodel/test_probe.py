"""The linear probe of world-model features for the true position (agents/worldmodel/probe.py,
``memory_benchmark.py --probe``): it finds the position where the features hold it, not where they do not, and
scores the same reward predictions as the training run's own evaluation."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from agents.worldmodel import data as D
from agents.worldmodel import probe as P
from agents.worldmodel.train import build_dataset
from ssmrl.cli.config import Config
from ssmrl.runs.config import from_dict, resolve_args

from tests import ROOT
from tests.agents.worldmodel import StandInModel

_spec = importlib.util.spec_from_file_location("memory_benchmark", ROOT / "scripts" / "memory_benchmark.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

WORDS = ["agent=worldmodel", "env=memory/distracting-16", "seed=5", "env.options.image_size=16",
         "env.options.view_cells=5", "worldmodel.stream=0", "worldmodel.episodes=12", "worldmodel.eval_episodes=6",
         "worldmodel.episode_length=24"]


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1] + 5.0
    y = x @ np.array([2.0, -0.5, 30.0]) + 7.0
    fit = P.fit_ridge(x, y, l2=1e-9)
    np.testing.assert_allclose(P.ridge_predict(fit, x), y, atol=1e-5)


class PositionModel(StandInModel):
    """A stand-in world model whose features are [position + tiny noise, 3 noise columns] (``counting``) or four
    noise columns, in inference and imagination alike; it knows the positions of the episodes it is shown (keyed
    by their first frame). Its reward head predicts 0."""

    def __init__(self, sets: list[dict[str, np.ndarray]], counting: bool):
        self.episodes = {}
        for windows in sets:
            for image, position in zip(windows["image"], windows["truth/position"]):
                self.episodes[image[0].tobytes()] = (len(self.episodes), position)
        self.positions = torch.zeros(len(self.episodes), max(len(p) for _, p in self.episodes.values()))
        for i, position in self.episodes.values():
            self.positions[i, :len(position)] = torch.as_tensor(position, dtype=torch.float32)
        self.counting, self.noise = counting, torch.Generator().manual_seed(0)

    def _features(self, position):
        noise = torch.randn(*position.shape, 4, generator=self.noise)
        if self.counting:
            noise[..., 0] = position + 0.01 * noise[..., 0]
        return noise

    def observe(self, obs, action, first, sample=False, generator=None):
        t = action.shape[1]
        ids = torch.tensor([self.episodes[f[0].numpy().tobytes()][0] for f in obs["image"]])
        state = torch.stack([ids, torch.full_like(ids, t - 1)], -1)
        return None, self._features(self.positions[ids, :t]), state

    def imagine(self, policy, state, horizon, actions=None, sample=False, generator=None):
        steps = state[:, 1:] + torch.arange(horizon + 1)
        return {"features": self._features(self.positions[state[:, :1], steps])}

    def reward(self, feat):
        return torch.zeros(feat.shape[:-1])


def test_probe_finds_the_position_only_where_the_features_hold_it():
    cfg = from_dict(Config, resolve_args(WORDS)[0])
    data = build_dataset(cfg, truth=True)
    length = data.context + data.query
    sets = {"train": D.episode_windows(data.train, length), "heldout": data.eval_windows}
    counting = P.probe(PositionModel(list(sets.values()), counting=True), data.train, sets, data.context, data.query,
                       data.classes, batch_size=4)
    blind = P.probe(PositionModel(list(sets.values()), counting=False), data.train, sets, data.context, data.query,
                    data.classes, batch_size=4)
    truth = sets["heldout"]["truth/position"][:, data.context:length]
    assert truth.std() > 1  # the query positions vary: R² means something
    for kind in P.KINDS:
        held = counting["heldout"][kind]
        assert held["r2"] > 0.999 and held["exact"] == 1.0 and held["reward_acc_via_probe"] == 1.0
        assert blind["heldout"][kind]["r2"] < 0.5 and blind["heldout"][kind]["exact"] < 0.5
        # the model's own head predicts 0 everywhere: its accuracy is the share of zero rewards
        rewards = sets["heldout"]["reward"][:, data.context:length]
        assert held["reward_acc"] == pytest.approx((rewards == 0).mean())
    assert counting["heldout"]["majority"] == pytest.approx(max((rewards == 0).mean(), (rewards == 1).mean()))
    # time alone is the same baseline for both models, and below the counting features
    assert counting["heldout"]["time_only"] == blind["heldout"]["time_only"]
    assert counting["heldout"]["time_only"]["mae"] > counting["heldout"]["inference"]["mae"]
    assert counting["fit_records"] == 12 * data.query and counting["features"] == 4


def test_probe_on_the_cued_hallway_reads_the_true_cue_beside_the_probed_position():
    """``reward_keys=position+cue``: the probed position goes through the true-state rule with the record's own
    cue, so features that hold the position exactly give every reward; the position-only rule gives about half."""
    cfg = from_dict(Config, resolve_args([*WORDS, "env.options.cue=true"])[0])
    data = build_dataset(cfg, truth=True)
    length = data.context + data.query
    sets = {"train": D.episode_windows(data.train, length), "heldout": data.eval_windows}
    assert set(np.unique(sets["heldout"]["truth/cue"])) == {0, 1}
    model = PositionModel(list(sets.values()), counting=True)
    with_cue = P.probe(model, data.train, sets, data.context, data.query, data.classes, reward_keys=["position+cue"],
                       batch_size=4)
    without = P.probe(model, data.train, sets, data.context, data.query, data.classes, batch_size=4)
    for kind in P.KINDS:
        assert with_cue["heldout"][kind]["exact"] == 1.0 and with_cue["heldout"][kind]["reward_acc_via_probe"] == 1.0
        assert without["heldout"][kind]["reward_acc_via_probe"] < 0.8


def test_probe_of_a_trained_run_scores_what_its_evaluation_logged(tmp_path, capsys):
    from ssmrl.cli import main as cli

    run = tmp_path / "run"
    words = ["agent=worldmodel", "env=memory/distracting-8", "size=debug", "wm.preset=s4wm", "seed=3",
             "env.options.image_size=16", "env.options.view_cells=5", "worldmodel.episodes=3",
             "worldmodel.eval_episodes=2", "worldmodel.episode_length=9", "worldmodel.batch_size=2", "worldmodel.stream=2",
             "train.steps=2", "train.eval_every=2", "train.checkpoint_every=2"]
    assert cli.main(["train", *words, "--run-dir", str(run)]) == 0
    logged = json.loads((run / "scores.jsonl").read_text().splitlines()[-1])
    capsys.readouterr()
    assert bench.main(["--probe", str(run), "--probe-windows", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 2 and out["benchmark"] == "memory_probe"
    # the held-out set and the predictions are the run's own (eval_sample false: the latents' modes)
    assert out["heldout"]["imagination"]["reward_acc"] == pytest.approx(logged["reward_acc_imagination"])
    assert out["heldout"]["inference"]["reward_acc"] == pytest.approx(logged["reward_acc_inference"])
    assert out["heldout"]["majority"] == pytest.approx(logged["reward_chance"])
    assert set(out["train"]) == {"inference", "imagination", "time_only", "majority"}
    assert not (run / "probe").exists() and sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["ckpt-000000002.pt", "latest.json"]
    # bad input: one line, status 2
    assert bench.main(["--probe", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1
    assert bench.main(["--probe", str(run), "--probe-windows", "1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--probe-windows must be >= 2, got 1")
    # an env without a default truth key to probe: one line, status 2
    doors = tmp_path / "doors"
    assert cli.main(["train", *[w for w in words if not w.startswith(("env=", "env.options.view"))], "env=memory/doors-keys-3",
                     "--run-dir", str(doors)]) == 0
    capsys.readouterr()
    assert bench.main(["--probe", str(doors)]) == 2
    err = capsys.readouterr().err
    assert "no default truth keys for 'memory/doors-keys-3'" in err and len(err.strip().splitlines()) == 1


def test_probe_key_cue_on_a_trained_cued_run(tmp_path, capsys):
    """``--probe-key cue`` probes the cued hallway's bit; the model's own reward accuracy is still what the run's
    evaluation logged; a key outside the reward rule is one line and status 2."""
    from ssmrl.cli import main as cli

    run = tmp_path / "run"
    words = ["agent=worldmodel", "env=memory/distracting-8", "size=debug", "wm.preset=s4wm", "seed=4",
             "env.options.image_size=16", "env.options.view_cells=5", "env.options.cue=true", "worldmodel.episodes=3",
             "worldmodel.eval_episodes=4", "worldmodel.episode_length=9", "worldmodel.batch_size=2",
             "worldmodel.stream=2", "train.steps=2", "train.eval_every=2", "train.checkpoint_every=2"]
    assert cli.main(["train", *words, "--run-dir", str(run)]) == 0
    logged = json.loads((run / "scores.jsonl").read_text().splitlines()[-1])
    capsys.readouterr()
    assert bench.main(["--probe", str(run), "--probe-windows", "3", "--probe-key", "cue"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key"] == "cue"
    # the true position beside the probed cue: the reward is right exactly where the cue is
    for kind in P.KINDS:
        assert out["heldout"][kind]["reward_acc_via_probe"] == out["heldout"][kind]["exact"]
    assert out["heldout"]["imagination"]["reward_acc"] == pytest.approx(logged["reward_acc_imagination"])
    assert bench.main(["--probe", str(run), "--probe-key", "segment"]) == 2
    err = capsys.readouterr().err
    assert "--probe-key must be one of the truth keys of the reward rule ['position', 'cue']" in err
    assert len(err.strip().splitlines()) == 1
