"""Benchmark suites: run (agent, env, seed) cells locally or on Ray, aggregate, report.

:mod:`ssmrl.bench.suite` runs the cells and owns the suite folder's layout; :mod:`ssmrl.bench.report` reads it
(one way: the report imports the suite, never the reverse).
"""
from __future__ import annotations

import argparse

from ssmrl.bench.suite import collect, make_cells, run_suite, suite_cli

__all__ = ["bench_cli", "collect", "make_cells", "run_suite"]


def bench_cli(args: argparse.Namespace) -> int:
    """``ssmrl bench suite|report ...``: ``args.name`` picks the command, ``args.rest`` holds its arguments."""
    if args.name == "report":
        from ssmrl.bench.report import report_cli  # matplotlib and the metrics only for a report

        return report_cli(args.rest)
    return suite_cli(args.rest)
