"""Progress bars for long work: steps/s and ETA on a terminal, silent when output is piped or logged."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(total: int | None = None, desc: str = "", initial: int = 0, unit: str = "step") -> tqdm:
    return tqdm(total=total, desc=desc, initial=initial, unit=unit, dynamic_ncols=True, smoothing=0.05,
                disable=not sys.stderr.isatty(), file=sys.stderr)
