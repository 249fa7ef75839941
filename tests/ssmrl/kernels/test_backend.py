"""GPU readiness that a CPU can check: Triton kernels compile for sm_90 ahead of time, a failing Triton kernel
falls back to torch with one warning (an explicit backend="triton" still raises)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ssmrl.kernels.backend as backend_module
import ssmrl.kernels.diag as diag_module
import ssmrl.kernels.triton_diag as triton_diag_module


def _ptxas_available() -> bool:
    spec = importlib.util.find_spec("triton")
    if spec is None:
        return False
    return (Path(spec.origin).parent / "backends" / "nvidia" / "bin" / "ptxas").is_file()


@pytest.mark.skipif(not _ptxas_available(), reason="needs the triton package with its bundled ptxas")
def test_every_triton_kernel_variant_compiles_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-m", "ssmrl.kernels.triton_aot", "90"], capture_output=True, text=True,
                          env=env, timeout=600)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [r for r in rows if not r["ok"]]
    assert not failed, failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    kernels = {r["kernel"] for r in rows}
    assert kernels == {f"{k}.{d}" for k in ("diag", "selective", "ssd") for d in ("fwd", "bwd")}
    assert len(rows) >= 20


def test_a_failing_triton_kernel_warns_once_and_falls_back_to_torch(monkeypatch):
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("PTXASError: ptxas fatal : out of registers\nmore detail")

    monkeypatch.setattr(diag_module, "resolve_backend", lambda backend, *t: "triton")
    monkeypatch.setattr(triton_diag_module, "diag_scan_triton", broken)
    monkeypatch.setattr(backend_module, "_FAILED_VARIANTS", set())
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    with pytest.warns(RuntimeWarning, match=r"Triton diag_scan kernel failed .*ptxas fatal : out of registers"):
        y, h = diag_module.diag_scan(a, b)
    ref = diag_module.diag_scan(a, b, backend="reference")
    torch.testing.assert_close(y, ref[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and the broken kernel is not tried again
        diag_module.diag_scan(a, b)
    assert len(calls) == 1
    # another variant (here: another state shape) gets its own try
    with pytest.warns(RuntimeWarning):
        diag_module.diag_scan(a[..., :2], b[..., :2])
    assert len(calls) == 2


def test_an_explicit_triton_backend_still_raises():
    def broken():
        raise RuntimeError("compile error")

    with pytest.raises(RuntimeError, match="compile error"):
        backend_module.run_triton("diag_scan", ("x",), True, broken, lambda: None)


def test_interpreter_left_on_with_cuda_tensors_warns(monkeypatch):
    class FakeCuda:
        is_cuda = True

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.warns(RuntimeWarning, match="TRITON_INTERPRET=1"):
        backend_module.interpreter_warning(FakeCuda())
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend_module.interpreter_warning(FakeCuda())
