"""What every benchmark script's JSON carries besides its numbers, and how it is printed and saved.

``emit(result, out)`` adds a ``provenance`` entry (command line, time, machine, package versions, git commit:
the same facts a run directory's ``run.json`` records) so a result pasted into ``docs/results.md`` or kept as a
file can be traced to what produced it, prints the JSON on stdout and, with ``out``, writes the same text there.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ssmrl.runs.checkpoint import atomic_write
from ssmrl.runs.run import git_commit, machine_info, package_versions


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line, UTC time, machine (incl. torch threads and GL/thread env vars), package versions, git."""
    return {
        "argv": list(sys.argv if argv is None else argv),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "packages": package_versions(),
        "git": git_commit(),
    }


def emit(result: dict[str, Any], out: str | Path | None = None, *, indent: int | None = 2) -> str:
    """Print ``result`` plus its ``provenance`` as JSON on stdout; also write it to ``out`` when given.

    Returns the JSON text. A ``provenance`` key already in ``result`` is kept (a caller may fill it earlier).
    """
    if not isinstance(result, dict):
        raise TypeError(f"result must be a dict (a JSON object), got {type(result).__name__}")
    result = {**result, "provenance": result.get("provenance") or provenance()}
    text = json.dumps(result, indent=indent)
    print(text, flush=True)
    if out is not None:
        atomic_write(Path(out), lambda f: f.write(text + "\n"), mode="w")
    return text
