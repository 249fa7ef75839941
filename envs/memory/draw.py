"""Numpy drawing for the memory suites: cell codes -> tile lookup -> uint8 (H, W, 3) frames."""
from __future__ import annotations

import numpy as np

# Distinct, saturated colours for keys/doors/objects (no white: white is the agent).
PALETTE = np.array(
    [
        [230, 25, 75],   # red
        [60, 180, 75],   # green
        [255, 225, 25],  # yellow
        [0, 130, 200],   # blue
        [245, 130, 48],  # orange
        [145, 30, 180],  # purple
        [70, 240, 240],  # cyan
        [240, 50, 230],  # magenta
        [210, 245, 60],  # lime
        [250, 190, 212], # pink
        [0, 128, 128],   # teal
        [170, 110, 40],  # brown
    ],
    dtype=np.uint8,
)
BLACK = np.array([0, 0, 0], np.uint8)
WHITE = np.array([255, 255, 255], np.uint8)
WALL = np.array([110, 110, 110], np.uint8)
FLOOR = np.array([30, 30, 30], np.uint8)


def solid(h: int, w: int, color) -> np.ndarray:
    """A (h, w, 3) uint8 tile of one colour."""
    tile = np.empty((h, w, 3), np.uint8)
    tile[:] = np.asarray(color, np.uint8)
    return tile


def square(h: int, w: int, background, color, margin: int) -> np.ndarray:
    """A tile of ``background`` with a centred filled square of ``color`` leaving ``margin`` px on each side."""
    tile = solid(h, w, background)
    tile[margin : h - margin, margin : w - margin] = np.asarray(color, np.uint8)
    return tile


def outline(h: int, w: int, background, color, thickness: int = 1) -> np.ndarray:
    """A tile of ``background`` with a ``thickness``-px border of ``color``."""
    tile = solid(h, w, color)
    tile[thickness : h - thickness, thickness : w - thickness] = np.asarray(background, np.uint8)
    return tile


def window(grid: np.ndarray, top: int, left: int, rows: int, cols: int, pad_code: int) -> np.ndarray:
    """The ``rows x cols`` block of ``grid`` starting at (top, left); cells outside the grid read ``pad_code``."""
    out = np.full((rows, cols), pad_code, dtype=grid.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + rows, grid.shape[0]), min(left + cols, grid.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = grid[r0:r1, c0:c1]
    return out


def compose(codes: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """Image of a code block: codes (R, C) int, tiles (K, th, tw, 3) uint8 -> (R * th, C * tw, 3) uint8."""
    rows, cols = codes.shape
    _, th, tw, _ = tiles.shape
    return tiles[codes].transpose(0, 2, 1, 3, 4).reshape(rows * th, cols * tw, 3)


def paste(canvas: np.ndarray, image: np.ndarray, top: int = 0, left: int = 0) -> np.ndarray:
    """Copy ``image`` into ``canvas`` at (top, left), clipped to the canvas; returns ``canvas``."""
    h = min(image.shape[0], canvas.shape[0] - top)
    w = min(image.shape[1], canvas.shape[1] - left)
    canvas[top : top + h, left : left + w] = image[:h, :w]
    return canvas


def fill_rect(canvas: np.ndarray, y: int, x: int, h: int, w: int, color) -> None:
    """Fill a rectangle clipped to the canvas (y, x may be negative)."""
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, canvas.shape[0]), min(x + w, canvas.shape[1])
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = np.asarray(color, np.uint8)
