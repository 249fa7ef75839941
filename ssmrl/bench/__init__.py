"""Benchmark suites: run (agent, env, seed) cells locally or on Ray, aggregate, report."""
from ssmrl.bench.suite import bench_cli, collect, make_cells, run_suite

__all__ = ["bench_cli", "collect", "make_cells", "run_suite"]
