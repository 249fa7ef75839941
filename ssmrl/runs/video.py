"""Videos and image grids: uint8 frames (T, H, W, C) -> GIF / MP4 files, with coloured borders.

We encode with imageio ourselves: TensorBoard's ``add_video`` silently drops videos with moviepy >= 2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OBSERVED = (40, 200, 40)  # green border: the model saw this frame
IMAGINED = (220, 40, 40)  # red border: the model imagined this frame


def border(frames: np.ndarray, colour: tuple[int, int, int], width: int = 2) -> np.ndarray:
    """frames (T, H, W, C) uint8 -> (T, H + 2w, W + 2w, 3) with a solid border (grey frames become RGB)."""
    frames = _rgb(frames)
    t, h, w, _ = frames.shape
    out = np.empty((t, h + 2 * width, w + 2 * width, 3), np.uint8)
    out[:] = np.asarray(colour, np.uint8)
    out[:, width:width + h, width:width + w] = frames
    return out


def _rgb(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be uint8 (T, H, W, 1 or 3), got {frames.dtype} {frames.shape}")
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def stack_rows(*rows: np.ndarray, gap: int = 2) -> np.ndarray:
    """Rows of equally long videos (T, H_i, W, 3) -> one video (T, sum H_i + gaps, W, 3), black gaps."""
    t, _, w, _ = rows[0].shape
    pad = np.zeros((t, gap, w, 3), np.uint8)
    parts = []
    for i, row in enumerate(rows):
        if row.shape[0] != t or row.shape[2] != w:
            raise ValueError(f"row {i} has shape {row.shape}, expected (T={t}, H, W={w}, 3)")
        parts += [row, pad] if i < len(rows) - 1 else [row]
    return np.concatenate(parts, axis=1)


def annotate(video: np.ndarray, rows: list[str], legend: bool = True, margin: int = 64,
             footer: int = 30) -> np.ndarray:
    """Label a video of ``len(rows)`` equally tall stacked rows: the row names in a left margin and, with
    ``legend``, a footer explaining the border colours. (T, H, W, 3) -> (T, H + footer, margin + W, 3)."""
    import cv2

    t, h, w, _ = video.shape
    panel = np.zeros((h + (footer if legend else 0), margin + w, 3), np.uint8)
    band = h / len(rows)
    for i, name in enumerate(rows):
        cv2.putText(panel, name, (4, int((i + 0.5) * band) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if legend:  # two lines, so that it fits beside narrow videos
        for line, (colour, text) in enumerate(((OBSERVED, "observed"), (IMAGINED, "imagined"))):
            y = h + 13 + 14 * line
            cv2.rectangle(panel, (4, y - 9), (14, y), colour, -1)
            cv2.putText(panel, text, (18, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    out = np.repeat(panel[None], t, axis=0)
    out[:, :h, margin:] = video
    return out


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling so small (64x64) frames are watchable."""
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def write_gif(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, _rgb(frames), extension=".gif", duration=1000 / fps, loop=0)
    return path


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _rgb(frames)
    # H.264 wants even sizes; pad by one black pixel where needed.
    t, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path
