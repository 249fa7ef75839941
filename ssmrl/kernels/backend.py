"""Backend selection shared by every kernel: ``reference`` | ``torch`` | ``triton`` (None picks the fastest).

When the default dispatch (``backend=None``) picks Triton, :func:`run_triton` runs the kernel and, if Triton fails
to compile or launch it (compiler/ptxas errors, out of resources, a driver that rejects the cubin), warns once per
kernel variant and runs the torch backend for that variant from then on. An explicit ``backend="triton"`` raises.
Every launch is guarded with the tensor's CUDA device (Triton launches on the *current* device otherwise).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from typing import Callable, TypeVar

import torch

T = TypeVar("T")
# Kernel variants whose Triton compile/launch failed in this process: they run the torch backend from then on.
_FAILED_VARIANTS: set[tuple] = set()

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


def launch_guard(t: torch.Tensor):
    """The context a Triton launch needs: the tensor's CUDA device made current (a no-op on CPU)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def interpreter_warning(*tensors: torch.Tensor | None) -> None:
    """TRITON_INTERPRET=1 left set on a GPU machine makes every kernel crawl through the Python interpreter."""
    if triton_interpret() and any(t is not None and t.is_cuda for t in tensors):
        warnings.warn("TRITON_INTERPRET=1 is set: Triton kernels run in the slow CPU interpreter on CUDA "
                      "tensors; unset it for real GPU kernels", RuntimeWarning, stacklevel=3)


def run_triton(kernel: str, variant: tuple, explicit: bool, triton_fn: Callable[[], T],
               torch_fn: Callable[[], T]) -> T:
    """Run ``triton_fn``; with the default dispatch (``explicit`` False) a failure warns once for
    ``(kernel, variant)`` (its first line, the shape) and ``torch_fn`` runs instead, now and later."""
    key = (kernel, *variant)
    if not explicit and key in _FAILED_VARIANTS:
        return torch_fn()
    try:
        return triton_fn()
    except Exception as err:  # noqa: BLE001 - compile, ptxas, resource and driver errors have many types
        if explicit:
            raise
        _FAILED_VARIANTS.add(key)
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        warnings.warn(f"Triton {kernel} kernel failed for variant {variant} ({type(err).__name__}: {first_line}); "
                      f"using the torch backend for it from now on", RuntimeWarning, stacklevel=3)
        return torch_fn()
