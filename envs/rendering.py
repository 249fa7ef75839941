"""Headless OpenGL selection for MuJoCo / dm_control rendering.

dm_control reads ``MUJOCO_GL`` once, when ``dm_control._render`` is first imported (and with ``egl`` it opens
the EGL display right then); otherwise it defaults to GLFW, which needs a display. :func:`select_gl` must
therefore run before that import: it keeps a ``MUJOCO_GL`` the user already set, and otherwise probes EGL,
then OSMesa, and sets ``MUJOCO_GL`` to the first that works (``"disable"`` when none does: proprioceptive
envs still run). :func:`gl_info` says what is in force.

The probes run in a child process: initialising Mesa's EGL/OSMesa loads its LLVM, and importing triton
(e.g. through ``torch._dynamo``, which the first optimizer step does) after that segfaults on the CPU dev box.
For the same reason :func:`preload_triton` imports triton, if installed, before anything opens a GL context
in this process (``envs.dmc`` calls it before importing dm_control).

Run as a script (``python rendering.py egl``) it is the probe itself: exit status 0 when the backend works.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import importlib.util
import os
import subprocess
import sys
from typing import Any

_EGL_PLATFORM_DEVICE_EXT = 0x313F


def _egl_works_here() -> bool:
    """True if an EGL display (a device display, as dm_control uses, or the default one) initialises."""
    try:
        egl = ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
    except OSError:
        return False
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    egl.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    egl.eglGetDisplay.restype = ctypes.c_void_p
    egl.eglGetDisplay.argtypes = [ctypes.c_void_p]
    major, minor = ctypes.c_int(), ctypes.c_int()

    def init(display) -> bool:
        return bool(display) and bool(egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)))

    query_addr = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
    platform_addr = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if query_addr and platform_addr:
        query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.POINTER(ctypes.c_int))(query_addr)
        platform = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)(platform_addr)
        devices = (ctypes.c_void_p * 8)()
        count = ctypes.c_int()
        if query(8, devices, ctypes.byref(count)):
            for i in range(count.value):
                if init(platform(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)):
                    return True
    return init(egl.eglGetDisplay(None))


def _osmesa_works_here() -> bool:
    """True if the OSMesa library loads and exports its context constructor (Debian: ``libosmesa6``)."""
    name = ctypes.util.find_library("OSMesa")
    for candidate in ([name] if name else []) + ["libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"]:
        try:
            return hasattr(ctypes.CDLL(candidate), "OSMesaCreateContextExt")
        except OSError:
            continue
    return False


_PROBES = {"egl": _egl_works_here, "osmesa": _osmesa_works_here}


@functools.lru_cache(maxsize=None)
def probe(backend: str, timeout: float = 30.0) -> bool:
    """Whether ``backend`` ("egl" or "osmesa") works, tested in a child process (cached per process)."""
    if backend not in _PROBES:
        raise ValueError(f"backend must be one of {sorted(_PROBES)}, got {backend!r}")
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), backend], timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def select_gl(order: tuple[str, ...] = ("egl", "osmesa")) -> str:
    """Set ``MUJOCO_GL`` (if unset) to the first backend in ``order`` that works; return the value in force.

    Call before importing ``dm_control``. A ``MUJOCO_GL`` set by the user is kept as it is.
    """
    for backend in order:
        if backend not in _PROBES:
            raise ValueError(f"order may only hold {sorted(_PROBES)}, got {backend!r}")
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    chosen = next((b for b in order if probe(b)), "disable")
    os.environ["MUJOCO_GL"] = chosen
    if chosen in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
    return chosen


def preload_triton() -> bool:
    """Import triton now if it is installed (see the module docstring); True if it was imported."""
    if importlib.util.find_spec("triton") is None:
        return False
    importlib.import_module("triton")
    return True


def gl_info() -> dict[str, Any]:
    """What rendering uses: ``MUJOCO_GL``, and dm_control's backend if it has been imported (else None)."""
    render = sys.modules.get("dm_control._render")
    return {"mujoco_gl": os.environ.get("MUJOCO_GL"), "dm_control_backend": getattr(render, "BACKEND", None)}


if __name__ == "__main__":
    sys.exit(0 if _PROBES[sys.argv[1]]() else 1)
