"""A non-editable install works: the wheel carries the preset YAML files (as ``ssmrl.configs``) and the benchmark
programs ``ssmrl bench`` runs (as ``ssmrl_scripts``), and an unpacked wheel finds them without the checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"pip could not build a wheel here: {proc.stderr.strip()[-300:]}")
    return next(out.glob("ssmrl-*.whl"))


def test_wheel_ships_every_preset_and_the_bench_programs(wheel):
    from ssmrl.cli.main import BENCH_SCRIPTS

    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {f"ssmrl/configs/{p.relative_to(ROOT / 'configs').as_posix()}" for p in (ROOT / "configs").rglob("*.yaml")}
    assert presets and presets <= names, sorted(presets - names)
    assert {f"ssmrl_scripts/{m}.py" for m in BENCH_SCRIPTS.values()} <= names


def test_an_unpacked_wheel_runs_without_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import ssmrl, ssmrl_scripts.bench_scan as b; from ssmrl.runs.config import CONFIG_ROOT, load_yaml; "
            "from ssmrl.world_models import make_config; make_config('drama', 'debug', action_dim=3); "
            "print(ssmrl.__file__); print(CONFIG_ROOT); print(sorted(load_yaml(CONFIG_ROOT / 'agent' / 'drama.yaml')))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    module_file, config_root, keys = proc.stdout.splitlines()
    assert Path(module_file).is_relative_to(site) and Path(config_root) == site / "ssmrl" / "configs"
    assert "agent" in keys
