"""scripts/bench_worldmodel.py: its re-running imagination equals stepping, and it produces its JSON."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from ssmrl.world_models import PRESETS, WorldModel, make_config

from tests import ROOT

_spec = importlib.util.spec_from_file_location(
    "bench_worldmodel", ROOT / "scripts" / "bench_worldmodel.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("preset", PRESETS)
def test_rerun_imagination_equals_stepping(preset):
    """Re-running the backbone over the whole sequence each step gives the same rollout as the carried
    state (same sampling noise, same policy draws)."""
    model = WorldModel(make_config(preset, "debug", action_dim=3), seed=0).eval()
    g = torch.Generator().manual_seed(0)
    ctx = bench._random_batch(model.cfg, 3, 4, g, torch.device("cpu"))
    first = torch.zeros(3, 4, dtype=torch.bool)
    first[1, 2] = True
    obs = {"image": ctx["image"]}
    with torch.no_grad():
        ref = bench.imagine_by_rerun(model, obs, ctx["action"], first, bench._random_policy(3, torch.Generator().manual_seed(1)),
                                     5, torch.Generator().manual_seed(2))
        sg = torch.Generator().manual_seed(2)
        _, _, st = model.observe(obs, ctx["action"], first, None, generator=sg)
        out = model.imagine(bench._random_policy(3, torch.Generator().manual_seed(1)), st, 5, generator=sg)
    assert torch.allclose(out["features"], ref, atol=1e-4)


def test_bench_main_prints_json(capsys):
    res = bench.main(["--size", "debug", "--presets", "drama,rssm", "--batch", "2", "--seq", "8",
                      "--imag-batch", "4", "--context", "2", "--horizon", "3", "--repeats", "1",
                      "--warmup", "1", "--clock", "process"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["results"]) == {"drama", "rssm"} == set(res["results"])
    for r in printed["results"].values():
        assert r["updates_per_s"] > 0 and r["imagine_steps_per_s"] > 0 and r["rerun_over_step"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--presets", "nope"])
