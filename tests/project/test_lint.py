"""The lint gate: ruff with the project's settings (pyproject.toml: pyflakes, bugbear, complexity <= 15)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT


def _ruff() -> list[str] | None:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    return [exe] if exe else None


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_finds_nothing():
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
