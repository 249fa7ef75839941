"""Benchmark the scan kernels (diag_scan, selective_scan, ssd_scan) and the Mamba-2 step mode; prints JSON.

    python scripts/bench_scan.py [--quick] [--out FILE] [--reps 3] [--ref-reps 2] [--threads N]
    ssmrl bench scan ...            (the CLI calls main(argv))

For every shape: median forward and forward+backward times (ms, after a warm-up) of the `reference` loop,
the `torch` backend, an elementwise yardstick (`a*b+b` on the same-shape input tensors of the kernel;
for selective_scan also on (B, L, Dm, N) tensors, the size of its states) and, on CUDA, the `triton` backend with its achieved memory bandwidth (input + output bytes / forward time).
Step mode: one `step` of a 2-layer Mamba-2 stack (Drama sizes) vs re-running the last 16 tokens through
`forward` (target ratio < 1/8).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch

from ssmrl.bench.output import emit

DIAG_SHAPES = [(16, L, D, N) for L in (64, 128, 1024) for D in (256, 512) for N in (16, 64)]
SSD_SHAPES = [(16, 128, 8, 32, 16), (4, 1024, 8, 32, 16)]


# ----------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], object], reps: int, warmup: int, device: torch.device,
               clock: Callable[[], float] = time.perf_counter) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, reps)):
        t0 = clock()
        fn()
        _sync(device)
        times.append((clock() - t0) * 1e3)
    return statistics.median(times)


def _measure(run: Callable[..., tuple], tensors: list[torch.Tensor], reps: int, warmup: int,
             device: torch.device, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Median ms of run(*tensors) forward (no_grad) and forward + backward (ones cotangent on every output,
    gradients w.r.t. every floating/complex input)."""

    def fwd():
        with torch.no_grad():
            run(*tensors)

    def fwd_bwd():
        leaves = [t.detach().requires_grad_(True) if (t.is_floating_point() or t.is_complex()) else t
                  for t in tensors]
        outs = [o for o in run(*leaves) if o is not None and o.requires_grad]
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])

    return {"fwd_ms": _median_ms(fwd, reps, warmup, device, clock),
            "fwdbwd_ms": _median_ms(fwd_bwd, reps, warmup, device, clock)}


def _nbytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


# ----------------------------------------------------------------------------------------------- kernels
def _yardstick(a: torch.Tensor, b: torch.Tensor, args, device) -> dict:
    return _measure(lambda x, y: (x * y + y,), [a, b], args.reps, args.warmup, device, _clock(args))


def _bench_backends(run_for, tensors, backends, args, device, out_bytes=None, skip_ref=None):
    reps, ref_reps, warmup = args.reps, args.ref_reps, args.warmup
    res = {}
    for be in backends:
        if be == "reference" and skip_ref:
            res[be] = {"skipped": skip_ref}
            continue
        r = ref_reps if be == "reference" else reps
        w = min(warmup, 1) if be == "reference" else warmup  # one warm-up: the loop is slow
        try:
            res[be] = _measure(run_for(be), tensors, r, w, device, _clock(args))
            if be == "triton" and out_bytes is not None:
                res[be]["fwd_GBps"] = out_bytes / (res[be]["fwd_ms"] * 1e-3) / 1e9
        except Exception as e:  # report and go on: one failing backend must not lose the others' numbers
            res[be] = {"error": f"{type(e).__name__}: {e}"}
    return res


def _ratios(entry: dict) -> None:
    t = entry.get("torch", {})
    r = entry.get("reference", {})
    y = entry.get("yardstick", {})
    if "fwdbwd_ms" in t and "fwdbwd_ms" in r:
        entry["speedup_torch_vs_reference_fwdbwd"] = r["fwdbwd_ms"] / t["fwdbwd_ms"]
        entry["speedup_torch_vs_reference_fwd"] = r["fwd_ms"] / t["fwd_ms"]
    if "fwdbwd_ms" in t and "fwdbwd_ms" in y:
        entry["torch_over_yardstick_fwdbwd"] = t["fwdbwd_ms"] / y["fwdbwd_ms"]
    if "triton" in entry and "fwdbwd_ms" in entry["triton"] and "fwdbwd_ms" in t:
        entry["speedup_triton_vs_torch_fwdbwd"] = t["fwdbwd_ms"] / entry["triton"]["fwdbwd_ms"]


def _clock(args) -> Callable[[], float]:
    """wall: time.perf_counter; cpu: this process's CPU time (all threads), steadier on a shared machine."""
    return time.process_time if args.clock == "cpu" else time.perf_counter


def _ref_skip(elems: int, args) -> str | None:
    if elems > args.ref_max_elems:
        return f"B*L*D*N = {elems} > --ref-max-elems {args.ref_max_elems} (the reference loop takes minutes here)"
    return None


def bench_diag(shapes, backends, args, device, gen) -> list[dict]:
    from ssmrl.kernels.diag import diag_scan

    out = []
    cdtype = getattr(torch, args.diag_dtype)
    for (b, L, D, N) in shapes:
        entry = {"kernel": "diag_scan", "B": b, "L": L, "D": D, "N": N, "dtype": args.diag_dtype}
        if b * L * D * N > args.max_elems:
            entry["skipped"] = f"B*L*D*N = {b * L * D * N} > --max-elems {args.max_elems} (memory of this machine)"
            out.append(entry)
            continue
        if cdtype.is_complex:
            mag = torch.rand(b, L, D, N, generator=gen) * 0.5 + 0.5
            ph = torch.rand(b, L, D, N, generator=gen) * 6.28
            a = torch.polar(mag, ph).to(device)
            x = torch.randn(b, L, D, N, generator=gen, dtype=cdtype).to(device)
        else:
            a = (torch.rand(b, L, D, N, generator=gen) * 0.5 + 0.5).to(device)
            x = torch.randn(b, L, D, N, generator=gen).to(device)
        first = (torch.rand(b, L, generator=gen) < 0.01).to(device)
        entry.update(_bench_backends(lambda be, f=first: (lambda a_, x_: diag_scan(a_, x_, first=f, backend=be)),
                                     [a, x], backends, args, device,
                                     out_bytes=3 * _nbytes(a), skip_ref=_ref_skip(b * L * D * N, args)))
        entry["yardstick"] = _yardstick(a, x, args, device)
        _ratios(entry)
        out.append(entry)
        _log(entry)
        del a, x
    return out


def bench_selective(shapes, backends, args, device, gen) -> list[dict]:
    from ssmrl.kernels.selective import selective_scan

    out = []
    for (b, L, D, N) in shapes:
        entry = {"kernel": "selective_scan", "B": b, "L": L, "Dm": D, "N": N, "dtype": "float32"}
        if b * L * D * N > args.max_elems:
            entry["skipped"] = f"B*L*D*N = {b * L * D * N} > --max-elems {args.max_elems} (torch backend materialises it)"
            out.append(entry)
            continue
        x = torch.randn(b, L, D, generator=gen).to(device)
        dt = (torch.rand(b, L, D, generator=gen) * 0.1 + 0.001).to(device)
        A = -(torch.rand(D, N, generator=gen) * 15 + 1).to(device)
        Bm = torch.randn(b, L, N, generator=gen).to(device)
        Cm = torch.randn(b, L, N, generator=gen).to(device)
        first = (torch.rand(b, L, generator=gen) < 0.01).to(device)
        run_for = lambda be, f=first: (lambda x_, dt_, A_, B_, C_: selective_scan(x_, dt_, A_, B_, C_, first=f, backend=be))
        entry.update(_bench_backends(run_for, [x, dt, A, Bm, Cm], backends, args, device, out_bytes=_nbytes(x, dt, A, Bm, Cm, x),
                                     skip_ref=_ref_skip(b * L * D * N, args)))
        entry["yardstick"] = _yardstick(x, dt, args, device)
        # the scan's own work is on (B, L, Dm, N) states: an elementwise yardstick of that size too
        sa = torch.rand(b, L, D, N, generator=gen).to(device)
        entry["yardstick_state"] = _yardstick(sa, torch.randn(b, L, D, N, generator=gen).to(device), args, device)
        del sa
        _ratios(entry)
        if "fwdbwd_ms" in entry.get("torch", {}):
            entry["torch_over_yardstick_state_fwdbwd"] = entry["torch"]["fwdbwd_ms"] / entry["yardstick_state"]["fwdbwd_ms"]
        out.append(entry)
        _log(entry)
    return out


def bench_ssd(shapes, backends, args, device, gen) -> list[dict]:
    from ssmrl.kernels.ssd import ssd_scan

    out = []
    for (b, L, H, P, N) in shapes:
        entry = {"kernel": "ssd_scan", "B": b, "L": L, "H": H, "P": P, "N": N, "G": 1,
                 "chunk_size": args.chunk_size, "dtype": "float32"}
        x = torch.randn(b, L, H, P, generator=gen).to(device)
        dt = (torch.rand(b, L, H, generator=gen) * 0.1 + 0.001).to(device)
        A = -(torch.rand(H, generator=gen) * 15 + 1).to(device)
        Bm = torch.randn(b, L, 1, N, generator=gen).to(device)
        Cm = torch.randn(b, L, 1, N, generator=gen).to(device)
        D = torch.ones(H).to(device)
        first = (torch.rand(b, L, generator=gen) < 0.01).to(device)
        run_for = lambda be, f=first: (lambda x_, dt_, A_, B_, C_, D_: ssd_scan(
            x_, dt_, A_, B_, C_, D=D_, first=f, chunk_size=args.chunk_size, backend=be))
        out_bytes = _nbytes(x, dt, A, Bm, Cm, x) + b * H * P * N * 4
        entry.update(_bench_backends(run_for, [x, dt, A, Bm, Cm, D], backends, args, device, out_bytes=out_bytes))
        entry["yardstick"] = _yardstick(x, torch.randn_like(x), args, device)
        _ratios(entry)
        out.append(entry)
        _log(entry)
    return out


def bench_step_vs_rerun(args, device) -> dict:
    """One step of a 2-layer Mamba-2 stack (d_model 512, d_state 16, expand 2, headdim 64, d_conv 4, chunk 256)
    vs forward over the last 16 tokens without a state (how Drama acts), both under no_grad."""
    from ssmrl.ssm.blocks import SSMBlock, SSMStack
    from ssmrl.ssm.mamba2 import Mamba2

    batch, ctx = args.step_batch, 16
    gen = torch.Generator().manual_seed(0)
    blocks = [SSMBlock(Mamba2(512, d_state=16, d_conv=4, expand=2, headdim=64, chunk_size=256, generator=gen), 512)
              for _ in range(2)]
    stack = SSMStack(blocks).to(device).eval()
    x = torch.randn(batch, ctx, 512, generator=gen).to(device)
    first_t = torch.zeros(batch, dtype=torch.bool, device=device)
    with torch.no_grad():
        _, state = stack(x[:, :-1])
    reps = max(1, args.reps)

    def step():
        with torch.no_grad():
            stack.step(x[:, -1], first_t, state)

    def rerun():
        with torch.no_grad():
            stack(x)

    s = _median_ms(step, reps, args.warmup, device, _clock(args))
    r = _median_ms(rerun, reps, args.warmup, device, _clock(args))
    return {"layers": 2, "d_model": 512, "batch": batch, "context": ctx, "step_ms": s, "rerun_last16_ms": r,
            "step_over_rerun": s / r, "target": "< 0.125"}


# ----------------------------------------------------------------------------------------------- main
def _log(entry: dict) -> None:
    print(json.dumps(entry), file=sys.stderr, flush=True)


def _machine(device: torch.device) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssmrl bench scan", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few shapes and reps (smoke run)")
    p.add_argument("--out", type=str, default=None, help="also write the JSON to this file")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median reported)")
    p.add_argument("--ref-reps", type=int, default=2, help="timed repetitions of the slow reference loop")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--clock", type=str, default="wall", choices=["wall", "cpu"],
                   help="wall time, or process CPU time (steadier when other jobs share the cores)")
    p.add_argument("--device", type=str, default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--max-elems", type=int, default=2**26,
                   help="skip diag/selective shapes with B*L*D*N above this (they materialise it)")
    p.add_argument("--ref-max-elems", type=int, default=2**23,
                   help="run the (slow) reference loop of diag/selective only where B*L*D*N <= this")
    p.add_argument("--diag-dtype", type=str, default="complex64", choices=["complex64", "float32"])
    p.add_argument("--chunk-size", type=int, default=64, help="ssd_scan chunk size")
    p.add_argument("--step-batch", type=int, default=1024)
    p.add_argument("--kernels", type=str, default="diag,selective,ssd,step", help="comma-separated subset")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"ssmrl bench scan: error: --device {args.device}: torch sees no CUDA device on this machine "
              "(use --device cpu)", file=sys.stderr)
        raise SystemExit(2)
    diag_shapes, ssd_shapes = DIAG_SHAPES, SSD_SHAPES
    if args.quick:
        diag_shapes, ssd_shapes = [(16, 64, 256, 16)], SSD_SHAPES[:1]
        args.reps, args.ref_reps, args.warmup = min(args.reps, 2), 1, 1
        args.step_batch = min(args.step_batch, 128)
    backends = ["reference", "torch"] + (["triton"] if device.type == "cuda" else [])
    gen = torch.Generator().manual_seed(0)
    wanted = set(args.kernels.split(","))
    result = {"bench": "scan", "machine": _machine(device), "quick": args.quick,
              "settings": {k: v for k, v in vars(args).items() if k not in ("out",)}, "results": [], "notes": []}
    for name, fn, shapes in (("diag", bench_diag, diag_shapes), ("selective", bench_selective, diag_shapes),
                             ("ssd", bench_ssd, ssd_shapes)):
        if name not in wanted:
            continue
        try:
            result["results"] += fn(shapes, backends, args, device, gen)
        except ImportError as e:  # kernels written elsewhere may not exist yet: skip with a note
            result["notes"].append(f"{name}: skipped, not importable ({e})")
    if "step" in wanted:
        try:
            result["step_mode"] = bench_step_vs_rerun(args, device)
        except ImportError as e:
            result["notes"].append(f"step mode: skipped, not importable ({e})")
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
