"""Interrupts that lose nothing: SIGINT (Ctrl-C) and SIGTERM (timeouts, schedulers) become a request that the
training loop honours at its next safe point (after a whole env step / update): it saves a checkpoint and raises
:class:`Interrupted`, which the CLI reports and turns into exit status 128 + signal. A second signal while the
first is pending stops at once (``KeyboardInterrupt``; the previous checkpoint is intact).

    with StopRequest() as stop:
        while ...:
            ...one update...
            if stop.requested:
                save checkpoint; stop.finish(step)
"""
from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped on a signal after saving a checkpoint at ``step``."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; a checkpoint was saved there, "
                         "run the same command to resume")


class StopRequest:
    """Context manager that turns SIGINT/SIGTERM into ``requested`` (only in the main thread; elsewhere it is
    inert and signals keep their default behaviour)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # second signal: stop now
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the next safe point "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def finish(self, step: int) -> None:
        """Call after saving the checkpoint at ``step``: raises :class:`Interrupted`."""
        raise Interrupted(self.signum or signal.SIGINT, step)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
