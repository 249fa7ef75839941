"""Backend selection shared by every kernel: ``reference`` | ``torch`` | ``triton`` (None picks the fastest)."""
from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = ("reference", "torch", "triton")


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpret() -> bool:
    """True when Triton kernels run in the CPU interpreter (tests on machines without a GPU)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str | None, *tensors: torch.Tensor) -> str:
    """Pick the backend for these inputs, or explain why an explicitly requested one cannot run."""
    on_cuda = any(t is not None and t.is_cuda for t in tensors)
    if backend is None:
        return "triton" if on_cuda and triton_available() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "triton":
        if not triton_available():
            raise RuntimeError('backend="triton" needs the triton package (pip install "ssmrl[gpu]")')
        if not on_cuda and not triton_interpret():
            raise RuntimeError(
                'backend="triton" needs CUDA tensors (or TRITON_INTERPRET=1 for the slow CPU interpreter)'
            )
    return backend
