"""Fused max-pool + INTER_AREA resize (envs.frame_ops) against OpenCV on the same frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from envs.frame_ops import PoolResize, _frame_ops, area_table, native_is_exact

SIZES = [(64, 64), (70, 32), (64, 32), (84, 84), (96, 72), (105, 80), (7, 5)]  # the first three: C pass


def _frames(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Atari-like frames: flat colour blocks (where .5 ties could show up) plus noise rows."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    a = palette[rng.integers(0, 8, (21, 16))].repeat(10, 0).repeat(10, 1)
    b = palette[rng.integers(0, 8, (21, 16))].repeat(10, 0).repeat(10, 1)
    a[rng.integers(0, 210, 20)] = rng.integers(0, 256, (20, 160, 3), dtype=np.uint8)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


@pytest.mark.parametrize("src,dst", [(210, 64), (160, 64), (160, 72), (10, 3), (8, 8)])
def test_area_table_weights_cover_each_output_once(src, dst):
    s, d, w = area_table(src, dst)
    sums = np.bincount(d, weights=w.astype(np.float64), minlength=dst)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    # every source pixel contributes src/dst-th of itself in total (the area it covers of each output)
    np.testing.assert_allclose(np.bincount(s, weights=w.astype(np.float64), minlength=src), dst / src, atol=1e-6)
    assert np.all(np.diff(s) >= 0)  # sorted by source (the C pass relies on it)


@pytest.mark.parametrize("use_extension", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_pool_resize_gives_opencvs_bytes(use_extension, size):
    pool = PoolResize((210, 160, 3), size, use_extension=use_extension)
    assert pool.native == (use_extension and _frame_ops is not None and native_is_exact((210, 160), size))
    h, w = size
    rng = np.random.default_rng(9)
    pairs = [_frames(seed) for seed in range(4)]
    pairs += [tuple(rng.integers(0, 256, (210, 160, 3), dtype=np.uint8) for _ in range(2)) for _ in range(2)]
    for a, b in pairs:
        np.testing.assert_array_equal(pool(a, b), cv2.resize(np.maximum(a, b), (w, h), interpolation=cv2.INTER_AREA))
        np.testing.assert_array_equal(pool(a), cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA))


def test_native_exactness_rule():
    assert native_is_exact((210, 160), (64, 64))  # the Atari protocol: denominators 105 * 5
    assert not native_is_exact((210, 160), (84, 84))  # 5 * 40: even, ties exist
    if _frame_ops is None:
        pytest.skip("envs._frame_ops was not built (no C compiler at install time)")
    # Where ties exist the row-first C sums can round a tie the other way: the rule is what keeps bytes equal.
    a, b = _frames(1)
    pool = PoolResize((210, 160, 3), (84, 84))
    pool.native = True
    out = pool(a, b)
    ref = cv2.resize(np.maximum(a, b), (84, 84), interpolation=cv2.INTER_AREA)
    assert 0 < (out != ref).sum() and np.abs(out.astype(int) - ref).max() == 1


def test_pool_resize_rejects_wrong_frames():
    pool = PoolResize((210, 160, 3), (64, 64))
    with pytest.raises(ValueError, match="frames must be uint8"):
        pool(np.zeros((210, 160, 3), np.float32))
    with pytest.raises(ValueError, match="frames must be uint8"):
        pool(np.zeros((210, 160, 3), np.uint8), np.zeros((200, 160, 3), np.uint8))
    with pytest.raises(ValueError, match="shrinks"):
        PoolResize((210, 160, 3), (256, 64))
    if _frame_ops is not None:  # the C side checks sizes itself too
        with pytest.raises(ValueError, match="buffer sizes"):
            _frame_ops.pool_area(np.zeros((210, 160, 3), np.uint8), None, np.zeros((8, 8, 3), np.uint8),
                                 np.zeros((64, 160, 3), np.float32), *area_table(210, 64), *area_table(160, 64),
                                 210, 160, 3, 64, 64)
