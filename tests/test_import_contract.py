"""Layers import one way: kernels <- ssm <- world_models <- agents; envs never imports agents or torch-heavy
learner code. Checked statically on every module's import statements (top level and inside functions)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages it must not import
FORBIDDEN = {
    "ssmrl/kernels": ("ssmrl.ssm", "ssmrl.world_models", "agents", "envs"),
    "ssmrl/ssm": ("ssmrl.world_models", "agents", "envs"),
    "ssmrl/world_models": ("agents", "envs"),
    "ssmrl/replay": ("agents", "ssmrl.world_models"),
    "envs": ("agents", "ssmrl.world_models", "ssmrl.ssm", "ssmrl.kernels"),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_envs_import_without_torch():
    """Vector-env worker processes import envs only: they must not load torch."""
    code = "import sys, envs, envs.vector; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
