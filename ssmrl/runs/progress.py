"""Progress on long work: a tqdm bar (steps/s, ETA) on a terminal; when stderr is piped or logged, a plain line
every ``interval`` seconds (and one at the end), so a run in the background still says how far it is."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

PLAIN_INTERVAL_S = 60.0


class PlainProgress:
    """The part of tqdm's interface the loops use (``update``, ``set_postfix``, ``close``), as timed plain lines:
    ``desc: 1,200/20,000 step (6.0%), 3.1 step/s, ETA 1:30:20, loss=0.52``."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "step",
                 interval: float = PLAIN_INTERVAL_S, file: TextIO | None = None, clock=time.monotonic):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = initial
        self.file = file if file is not None else sys.stderr
        self.clock = clock
        self.postfix: dict[str, Any] = {}
        self._start_n, self._start_t = initial, clock()
        self._last_print = self._start_t
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self._last_print >= self.interval:
            self._last_print = now
            self._print(now)

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self.postfix = dict(postfix)

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        rate = (self.n - self._start_n) / max(now - self._start_t, 1e-9)
        parts = [f"{self.desc}: {self.n:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.1f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.total and rate > 0 and self.n < self.total:
            eta = int((self.total - self.n) / rate)
            parts.append(f"ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}")
        if self.postfix:
            parts.append(" ".join(f"{k}={v}" for k, v in self.postfix.items()))
        return ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._start_n:
                self._print(self.clock())


def progress(total: int | None = None, desc: str = "", initial: int = 0, unit: str = "step"):
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, initial=initial, unit=unit, dynamic_ncols=True, smoothing=0.05,
                    file=sys.stderr)
    return PlainProgress(total, desc, initial, unit)
