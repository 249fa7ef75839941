"""Benchmark the S4D layer's two exact modes (``scan`` vs ``chunked``) forward+backward; prints JSON.

    python scripts/bench_s4d.py [--threads 1] [--reps 5] [--chunks 8,16,32] [--shapes 16x64x512x64,...]
                                [--reset-prob 0.02] [--device cpu]

Time is process CPU time (``time.process_time``) on CPU, since a shared machine makes wall time noisy, and
wall time on CUDA. Median of ``--reps`` after one warm-up. Inputs: x ~ N(0, 1) float32 with random resets
(``first`` with probability ``--reset-prob`` per step) and a carried initial state.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ssmrl.bench.output import emit
from ssmrl.ssm.s4d import S4D


def _time(fn, reps: int, device: torch.device) -> float:
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(clock() - t0)
    return 1000 * statistics.median(times)


def bench(B: int, L: int, H: int, N: int, mode: str, chunk: int, reps: int, reset_prob: float,
          device: torch.device) -> float:
    g = torch.Generator().manual_seed(0)
    layer = S4D(H, d_state=N, mode=mode, chunk_len=chunk, generator=g).to(device)
    x = torch.randn(B, L, H, generator=g).to(device).requires_grad_()
    first = (torch.rand(B, L, generator=g) < reset_prob).to(device)
    h0 = torch.randn(B, H, N // 2, generator=g, dtype=torch.complex64).to(device)

    def fwd_bwd():
        y, s = layer(x, first, h0)
        (y.square().mean() + torch.view_as_real(s).mean()).backward()

    return _time(fwd_bwd, reps, device)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--chunks", default="8,16,32")
    p.add_argument("--shapes", default="16x64x512x64,16x128x512x64,16x64x256x64,16x128x256x64",
                   help="comma-separated BxLxHxN")
    p.add_argument("--reset-prob", type=float, default=0.02)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    rows = []
    for shape in a.shapes.split(","):
        B, L, H, N = (int(v) for v in shape.split("x"))
        row = {"B": B, "L": L, "H": H, "d_state": N,
               "scan_ms": round(bench(B, L, H, N, "scan", 1, a.reps, a.reset_prob, device), 1)}
        for T in (int(c) for c in a.chunks.split(",")):
            row[f"chunked_T{T}_ms"] = round(bench(B, L, H, N, "chunked", T, a.reps, a.reset_prob, device), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"machine": platform.processor() or platform.machine(), "threads": a.threads, "device": str(device),
           "clock": "process_time" if device.type == "cpu" else "wall", "reset_prob": a.reset_prob, "rows": rows}
    emit(out, indent=None)
    return out


if __name__ == "__main__":
    main()
