"""Benchmark ``causal_conv1d_step`` (one token of the Mamba short conv) on CPU; prints JSON.

    python scripts/bench_conv_step.py [--batch 1024] [--channels 2080] [--width 4] [--threads 1] [--rounds 25]
                                      [--baseline OLD_CONV_PY]

Median process time (ms) per call without resets (``first_t=None``) and with resets (10% of the batch).
``--baseline`` loads another version of ``ssmrl/kernels/conv.py`` (e.g. ``git show HEAD:ssmrl/kernels/conv.py
> /tmp/conv_old.py``), checks that it gives the same outputs, and times it interleaved with the current one.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

from ssmrl.bench.output import emit
from ssmrl.kernels.conv import causal_conv1d_step


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--channels", type=int, default=2080)
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--baseline", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    fns = {"current": causal_conv1d_step}
    if a.baseline:
        spec = importlib.util.spec_from_file_location("conv_baseline", a.baseline)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        fns["baseline"] = mod.causal_conv1d_step
    g = torch.Generator().manual_seed(0)
    B, C, W = a.batch, a.channels, a.width
    x = torch.randn(B, C, generator=g)
    w = torch.randn(C, W, generator=g)
    b = torch.randn(C, generator=g)
    s = torch.randn(B, C, W - 1, generator=g)
    f = torch.rand(B, generator=g) < 0.1
    cases = {"no_reset": None, "reset": f}
    for ft in cases.values():  # warm-up and agreement check
        outs = [fn(x, w, b, ft, s) for fn in fns.values()]
        for y, st in outs[1:]:
            torch.testing.assert_close(y, outs[0][0])
            torch.testing.assert_close(st, outs[0][1])
    times: dict[str, list[float]] = {}
    for _ in range(a.rounds):  # interleaved, so that load changes on a shared machine hit both alike
        for name, fn in fns.items():
            for case, ft in cases.items():
                t0 = time.process_time()
                fn(x, w, b, ft, s)
                times.setdefault(f"{name}_{case}_ms", []).append(time.process_time() - t0)
    out = {"batch": B, "channels": C, "width": W, "threads": a.threads, "clock": "process_time",
           **{k: round(1000 * statistics.median(v), 2) for k, v in times.items()}}
    emit(out, indent=None)
    return out


if __name__ == "__main__":
    main()
