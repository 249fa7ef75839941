"""Max-pool two Atari frames and resize with area averaging (OpenCV's ``INTER_AREA``) in one pass.

The Atari protocol (docs/references.md#atari100k-protocol) takes the pixel-wise maximum of the last two frames of
a repeat and resizes it to 64x64 with ``cv2.INTER_AREA``. Done with numpy + OpenCV that is four passes over the
(210, 160, 3) frame (max, float copy, resize, rounding): ~70 µs of a ~360 µs agent step on the dev CPU. The C
extension ``envs._frame_ops`` (built by ``pip install``; optional) fuses them using the same area tables as OpenCV.

The C pass sums rows before columns, OpenCV columns before rows, so the float sums differ in the last bits. That
can only change a rounded byte when the exact value lies within those bits of a .5 boundary. Every weight of a
shrink from ``src`` to ``dst`` pixels is a multiple of ``1/p`` with ``p = src / gcd(src, dst)``, so every exact
output value is a multiple of ``1 / (p_y * p_x)``; when that denominator is odd no value is a tie and the nearest
ones are ``1 / (2 p_y p_x)`` away, far beyond the float error. ``PoolResize`` uses the C pass only in that case
(210x160 -> 64x64: p_y * p_x = 105 * 5), so its bytes always equal OpenCV's; otherwise, or without the
extension, it runs numpy + OpenCV.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

try:  # built from envs/_frame_ops.c by `pip install -e .`; optional
    from envs import _frame_ops
except ImportError:  # pragma: no cover - depends on the build
    _frame_ops = None


def area_table(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA weights for shrinking ``src`` pixels to ``dst``: (src index, dst index, weight) per
    overlap, sorted by src. Each output pixel averages the input interval it covers, partial pixels weighted by
    the covered fraction; the weights of one output pixel sum to 1."""
    if not 0 < dst <= src:
        raise ValueError(f"area_table shrinks: need 0 < dst <= src, got src={src}, dst={dst}")
    scale = src / dst
    entries: list[tuple[int, int, float]] = []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1 = min(math.ceil(f1), src - 1)
        s2 = min(math.floor(f2), src - 1)
        s1 = min(s1, s2)
        if s1 - f1 > 1e-3:
            entries.append((s1 - 1, d, (s1 - f1) / cell))
        for s in range(s1, s2):
            entries.append((s, d, 1.0 / cell))
        if f2 - s2 > 1e-3:
            entries.append((s2, d, min(min(f2 - s2, 1.0), cell) / cell))
    entries.sort(key=lambda e: (e[0], e[1]))
    src_idx = np.array([e[0] for e in entries], np.int32)
    dst_idx = np.array([e[1] for e in entries], np.int32)
    weight = np.array([e[2] for e in entries], np.float32)
    return src_idx, dst_idx, weight


def native_is_exact(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """True when the C pass provably gives OpenCV's bytes for this shrink (see the module docstring)."""
    denominator, taps = 1, 0
    for src, dst in zip(in_hw, out_hw):
        denominator *= src // math.gcd(src, dst)
        taps += math.ceil(src / dst) + 1  # most source pixels one output pixel can touch
    float_error = 2 * taps * 255 * 2.0**-24  # both sums, each within taps rounding steps of the exact value
    return denominator % 2 == 1 and 1 / (2 * denominator) > 2 * float_error


class PoolResize:
    """``pool = PoolResize((210, 160, 3), (64, 64))``; ``pool(a, b)`` -> uint8 (64, 64, 3), the INTER_AREA resize
    of ``max(a, b)`` (``b=None``: of ``a`` alone). The returned array is new on every call."""

    def __init__(self, in_shape: tuple[int, int, int], size: tuple[int, int], use_extension: bool = True):
        self.in_shape = tuple(in_shape)
        self.h, self.w = size
        height, width, channels = self.in_shape
        if self.h > height or self.w > width:
            raise ValueError(f"PoolResize shrinks frames: size {size} must not exceed {(height, width)}")
        self.native = use_extension and _frame_ops is not None and native_is_exact((height, width), size)
        # OpenCV shrinks uint8 by integer factors with integer arithmetic (rounding half up); otherwise it sums in
        # float32 and rounds half to even, and resizing a float32 copy gives those bytes ~10% faster.
        self._float_copy = (height % self.h, width % self.w) != (0, 0)
        self._y = area_table(height, self.h)
        self._x = area_table(width, self.w)
        self._acc = np.zeros((self.h, width, channels), np.float32)
        self._fbuf = np.zeros(self.in_shape, np.float32)

    def __call__(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if a.shape != self.in_shape or a.dtype != np.uint8 or (b is not None and (b.shape != a.shape or b.dtype != np.uint8)):
            raise ValueError(f"frames must be uint8 {self.in_shape}, got {a.dtype} {a.shape}"
                             + ("" if b is None else f" and {b.dtype} {b.shape}"))
        if self.native:
            out = np.empty((self.h, self.w, self.in_shape[2]), np.uint8)
            _frame_ops.pool_area(np.ascontiguousarray(a), None if b is None else np.ascontiguousarray(b), out,
                                 self._acc, *self._y, *self._x, *self.in_shape, self.h, self.w)
            return out
        raw = a if b is None else np.maximum(a, b)
        if not self._float_copy:
            return cv2.resize(raw, (self.w, self.h), interpolation=cv2.INTER_AREA)
        self._fbuf[...] = raw
        return cv2.convertScaleAbs(cv2.resize(self._fbuf, (self.w, self.h), interpolation=cv2.INTER_AREA))
