"""Layers import one way: kernels <- ssm <- world_models <- agents; envs never imports agents or torch-heavy
learner code; the core (everything in ``ssmrl`` but the CLI) never imports ``agents``: only the composition root
``ssmrl/cli`` (and ``scripts/``) may. Checked statically on every module's import statements (top level and inside
functions)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT
# package (or module file) -> the packages it must not import
FORBIDDEN = {
    "ssmrl/kernels": ("ssmrl.ssm", "ssmrl.world_models", "agents", "envs"),
    "ssmrl/ssm": ("ssmrl.world_models", "agents", "envs"),
    "ssmrl/world_models": ("agents", "envs"),
    "ssmrl/replay": ("agents", "ssmrl.world_models"),
    "ssmrl/rollout": ("agents",),
    "ssmrl/runs": ("agents",),
    "ssmrl/metrics": ("agents",),
    "ssmrl/evaluation.py": ("agents",),
    "envs": ("agents", "ssmrl.world_models", "ssmrl.ssm", "ssmrl.kernels"),
}
# The composition root may import agents; nothing in the core imports the composition root.
COMPOSITION_ROOT = "ssmrl/cli"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    path = ROOT / package
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package):
    bad = []
    for path in _files(package):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_envs_import_without_torch():
    """Vector-env worker processes import envs only: they must not load torch."""
    code = "import sys, envs, envs.vector; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_only_the_composition_root_imports_agents():
    bad = []
    for path in _files("ssmrl"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(COMPOSITION_ROOT + "/"):
            continue
        for name in _imports(path):
            if name == "agents" or name.startswith("agents."):
                bad.append(f"{rel} imports {name}")
            if name == "ssmrl.cli" or name.startswith("ssmrl.cli."):
                bad.append(f"{rel} imports the composition root ({name})")
    assert not bad, bad


def test_runs_and_the_cli_start_without_torch_or_learners():
    """Importing ssmrl.runs (configs, run directories) and building ``ssmrl --help`` load neither torch nor any
    learner; the config of an agent that reads only env/train does not either."""
    code = ("import sys; import ssmrl.runs.schema, ssmrl.runs.config, ssmrl.runs.run, ssmrl.runs.interrupt, "
            "ssmrl.runs.progress; assert not [m for m in sys.modules if m == 'agents' or m.startswith('agents.')]; "
            "from ssmrl.cli.main import build_parser; build_parser().format_help(); "
            "from ssmrl.cli.config import resolve; resolve(['agent=random']); "
            "loaded = [m for m in sys.modules if m.startswith(('agents.dreamer', 'agents.offline.run', 'agents.sac'))]; "
            "assert not loaded, loaded; sys.exit(1 if 'torch' in sys.modules else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
