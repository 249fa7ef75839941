"""One script to validate the GPU path: prints a PASS/FAIL line per check and exits 1 if anything failed.

    python scripts/gpu_check.py                     # on a GPU machine: the full check, a few minutes
    python scripts/gpu_check.py --smoke --device cpu   # tiny shapes, Triton in the CPU interpreter (the test suite)

Checks:
- every Triton kernel (diag real/complex, selective, SSD) against the torch backend and the float64 reference:
  values and gradients of every input and of the final state, float32 and bfloat16 (where the kernel takes it),
  five reset patterns, ragged sizes, non-contiguous inputs, and bitwise determinism of two runs;
- the default dispatch on the device (Triton for diag/selective on CUDA);
- each SSM layer's forward equals its step loop on the device;
- a launch on ``cuda:1`` when two GPUs exist;
- (full mode) timings of torch vs Triton at model sizes, and a few full-size Drama updates with the number of host
  syncs per update (``torch.cuda.set_sync_debug_mode``) and the peak memory.
Prints the results as PASS/FAIL lines and, at the end, one JSON object with the timings.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings

RESULTS: list[dict] = []


def check(name: str, fn) -> None:
    """Run one check: PASS, or FAIL with the first line of the error."""
    t0 = time.perf_counter()
    try:
        info = fn()
        RESULTS.append({"check": name, "ok": True, "info": info})
        print(f"PASS {name}" + (f"  {info}" if info else ""), flush=True)
    except Exception as err:  # noqa: BLE001 - every failure is reported, the other checks still run
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        RESULTS.append({"check": name, "ok": False, "error": f"{type(err).__name__}: {first}"})
        print(f"FAIL {name}: {type(err).__name__}: {first}", flush=True)
        if os.environ.get("GPU_CHECK_TRACEBACK"):
            traceback.print_exc()
    RESULTS[-1]["seconds"] = round(time.perf_counter() - t0, 3)


def _close(name, ours, ref, rtol, atol):
    import torch

    ours, ref = ours.detach().to(torch.complex128 if ref.is_complex() else torch.float64), ref.detach()
    err = (ours - ref).abs().max().item() if ours.numel() else 0.0
    bound = atol + rtol * (ref.abs().max().item() if ref.numel() else 0.0)
    if not err <= bound:
        raise AssertionError(f"{name}: max error {err:.3g} > {bound:.3g}")


def _compare(run, leaves, first, dtype, device, tol):
    """run(backend, *leaves, first) -> (outputs...). Compares triton and torch (in ``dtype``) with the float64
    reference, values and gradients of every leaf; then checks two triton runs are bitwise equal."""
    import torch

    def grads(backend, dt):
        inputs = [t.detach().to(device=device, dtype=(dt if not t.is_complex() else _complex(dt))).requires_grad_()
                  for t in leaves]
        outs = run(backend, *inputs, None if first is None else first.to(device))
        g = torch.Generator().manual_seed(7)
        cot = [torch.randn(o.shape, generator=g, dtype=torch.float64 if not o.is_complex() else torch.complex128)
               .to(device=device, dtype=o.dtype) for o in outs]
        total = sum((o * c).real.sum() if o.is_complex() else (o * c).sum() for o, c in zip(outs, cot))
        return list(outs) + list(torch.autograd.grad(total, inputs))

    ref = grads("reference", torch.float64)
    for backend in ("torch", "triton"):
        ours = grads(backend, dtype)
        for i, (a, b) in enumerate(zip(ours, ref)):
            _close(f"{backend} output/grad {i}", a, b, *tol)
    again = grads("triton", dtype)
    if not all(torch.equal(a, b) for a, b in zip(grads("triton", dtype), again)):
        raise AssertionError("two triton runs differ (not deterministic)")


def _complex(dt):
    import torch

    return {torch.float32: torch.complex64, torch.float64: torch.complex128}.get(dt, torch.complex64)


def _selective_run(backend, x, dt, A, Bm, Cm, h0, first):
    from ssmrl.kernels.selective import selective_scan

    return selective_scan(x, dt, A, Bm, Cm, first=first, h0=h0, backend=backend)


def _ssd_run(backend, x, dt, A, Bm, Cm, h0, first):
    from ssmrl.kernels.ssd import ssd_scan

    return ssd_scan(x, dt, A, Bm, Cm, first=first, h0=h0, chunk_size=4, backend=backend)


def kernel_checks(device: str, smoke: bool) -> None:
    import torch

    from ssmrl.kernels.diag import diag_scan
    from ssmrl.kernels.resets import PATTERNS, make_first

    g = torch.Generator().manual_seed(0)
    B, L = (2, 7) if smoke else (3, 67)  # ragged: not a multiple of any block or chunk
    fp32 = (torch.float32, (2e-4, 2e-5))
    dtypes = [fp32] if smoke else [fp32, (torch.bfloat16, (3e-2, 3e-2))]
    for pattern in PATTERNS:
        first = make_first(pattern, B, L, g)
        for dtype, tol in dtypes:
            tag = f"{pattern}, {str(dtype).split('.')[-1]}"
            for cplx in (False, True):
                if cplx and dtype != torch.float32:
                    continue
                S = 5 if smoke else 33
                a = torch.rand(B, L, S, generator=g, dtype=torch.float64) * 0.9
                b = torch.randn(B, L, S, generator=g, dtype=torch.float64)
                h0 = torch.randn(B, S, generator=g, dtype=torch.float64)
                if cplx:
                    a = torch.polar(a, torch.rand(B, L, S, generator=g, dtype=torch.float64))
                    b, h0 = torch.complex(b, torch.randn_like(b)), torch.complex(h0, torch.randn_like(h0))
                # non-contiguous a: a transposed view
                a = a.transpose(1, 2).contiguous().transpose(1, 2)
                check(f"diag_scan {'complex' if cplx else 'real'} ({tag})", lambda a=a, b=b, h0=h0, first=first,
                      dtype=dtype, tol=tol: _compare(lambda be, a, b, h0, f: diag_scan(a, b, f, h0, backend=be),
                                                      [a, b, h0], first, dtype, device, tol))
            Dm, N = (4, 3) if smoke else (24, 16)
            x = torch.randn(B, L, Dm, generator=g, dtype=torch.float64)
            dt = torch.rand(B, L, Dm, generator=g, dtype=torch.float64) * 0.5 + 0.01
            A = -torch.rand(Dm, N, generator=g, dtype=torch.float64) - 0.1
            Bm, Cm = torch.randn(B, L, N, generator=g, dtype=torch.float64), torch.randn(B, L, N, generator=g, dtype=torch.float64)
            h0 = torch.randn(B, Dm, N, generator=g, dtype=torch.float64)
            check(f"selective_scan ({tag})", lambda x=x, dt=dt, A=A, Bm=Bm, Cm=Cm, h0=h0, first=first, dtype=dtype, tol=tol:
                  _compare(_selective_run, [x, dt, A, Bm, Cm, h0], first, dtype, device, tol))
            if dtype != torch.float32:
                continue  # the SSD kernel computes in float32 only
            H, P, G, N2 = (2, 3, 1, 4) if smoke else (4, 16, 2, 16)
            xs = torch.randn(B, L, H, P, generator=g, dtype=torch.float64)
            dts = torch.rand(B, L, H, generator=g, dtype=torch.float64) * 0.5 + 0.01
            As = -torch.rand(H, generator=g, dtype=torch.float64) - 0.1
            Bs, Cs = (torch.randn(B, L, G, N2, generator=g, dtype=torch.float64) for _ in range(2))
            hs = torch.randn(B, H, P, N2, generator=g, dtype=torch.float64)
            check(f"ssd_scan ({tag})", lambda xs=xs, dts=dts, As=As, Bs=Bs, Cs=Cs, hs=hs, first=first, tol=tol:
                  _compare(_ssd_run, [xs, dts, As, Bs, Cs, hs], first, torch.float32, device, tol))


def dispatch_checks(device: str) -> None:
    import torch

    from ssmrl.kernels.backend import resolve_backend

    def default_backend():
        t = torch.zeros(1, device=device)
        got = resolve_backend(None, t)
        want = "triton" if t.is_cuda else "torch"
        if got != want:
            raise AssertionError(f"default backend on {device} is {got}, expected {want}")
        return got

    check(f"default dispatch on {device}", default_backend)
    if torch.cuda.device_count() >= 2:
        def second_gpu():
            from ssmrl.kernels.diag import diag_scan

            a = torch.rand(2, 9, 5, device="cuda:1") * 0.9
            b = torch.randn(2, 9, 5, device="cuda:1")
            y, _ = diag_scan(a, b, backend="triton")
            ref, _ = diag_scan(a.cpu().double(), b.cpu().double(), backend="reference")
            _close("cuda:1", y, ref, 1e-4, 1e-5)
        check("triton launch on cuda:1", second_gpu)


def layer_checks(device: str, smoke: bool) -> None:
    import torch

    from ssmrl.kernels.resets import make_first
    from ssmrl.ssm.mamba import Mamba
    from ssmrl.ssm.mamba2 import Mamba2
    from ssmrl.ssm.s4d import S4D
    from ssmrl.ssm.s5 import S5

    d, L = (16, 9) if smoke else (64, 40)
    for name, make in (("S4D", lambda: S4D(d, d_state=8)), ("S5", lambda: S5(d, d_state=8)),
                       ("Mamba", lambda: Mamba(d, d_state=8)), ("Mamba2", lambda: Mamba2(d, d_state=8, headdim=8))):
        def forward_equals_step(make=make):
            torch.manual_seed(0)
            layer = make().to(device).eval()
            g = torch.Generator().manual_seed(1)
            x = torch.randn(2, L, d, generator=g).to(device)
            first = make_first("random", 2, L, g).to(device)
            with torch.no_grad():
                y, _ = layer(x, first=first)
                state, ys = None, []
                for t in range(L):
                    y_t, state = layer.step(x[:, t], first[:, t], state)
                    ys.append(y_t)
            _close("forward vs step", torch.stack(ys, 1), y.double(), 1e-4, 1e-4)
        check(f"{name} forward == step on {device}", forward_equals_step)


def timing_checks(device: str) -> dict:
    import torch

    from ssmrl.kernels.diag import diag_scan
    from ssmrl.kernels.selective import selective_scan

    timings = {}

    def clock(fn, reps=10):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / reps

    def fwd_bwd(fn, leaves):
        def go():
            for t in leaves:
                t.grad = None
            y, h = fn()
            (y.sum() + h.sum()).backward()
        return go

    a = (torch.rand(16, 128, 512 * 16, device=device) * 0.9).requires_grad_()
    b = torch.randn(16, 128, 512 * 16, device=device, requires_grad=True)
    x = torch.randn(64, 60, 256, device=device, requires_grad=True)
    dt = (torch.rand(64, 60, 256, device=device) * 0.1).requires_grad_()
    A = (-torch.rand(256, 16, device=device)).requires_grad_()
    Bm = torch.randn(64, 60, 16, device=device, requires_grad=True)
    Cm = torch.randn(64, 60, 16, device=device, requires_grad=True)
    for name, run in (("diag_scan (16, 128, 8192)", lambda be: fwd_bwd(lambda: diag_scan(a, b, backend=be), [a, b])),
                      ("selective_scan (64, 60, 256, 16)", lambda be: fwd_bwd(
                          lambda: selective_scan(x, dt, A, Bm, Cm, backend=be), [x, dt, A, Bm, Cm]))):
        def timed(name=name, run=run):
            t_torch, t_triton = clock(run("torch")), clock(run("triton"))
            timings[name] = {"torch_s": t_torch, "triton_s": t_triton, "speedup": t_torch / t_triton}
            return f"torch {t_torch * 1e3:.2f} ms, triton {t_triton * 1e3:.2f} ms, {t_torch / t_triton:.1f}x"
        check(f"timing {name} fwd+bwd", timed)
    return timings


def drama_checks(device: str, smoke: bool, updates: int) -> dict:
    import torch

    from agents.dreamer.agent import DreamerAgent
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
    from envs.spec import EnvSpec, ObservationSpec

    out = {}

    def updates_run():
        size = "debug" if smoke else "drama"
        spec = EnvSpec((ObservationSpec("image", (64, 64, 3), "uint8"),), action_dim=18, discrete=True)
        cfg = (DreamerConfig(batch_size=2, seq_len=8, imag_batch=4, imag_context=4, horizon=3, imag_starts="posterior")
               if smoke else DreamerConfig(batch_size=16, seq_len=64, imag_batch=1024, horizon=15,
                                           imag_starts="posterior"))
        ac = ActorCriticConfig() if not smoke else ActorCriticConfig(actor_units=16, critic_units=16, num_bins=15)
        agent = DreamerAgent(WorldModelSection("drama", size), ac, cfg, spec, torch.device(device), seed=0)
        g = torch.Generator().manual_seed(0)
        b, l = cfg.batch_size, cfg.seq_len
        arrays = {"image": torch.randint(0, 256, (b, l, 64, 64, 3), generator=g, dtype=torch.uint8).numpy(),
                  "action": torch.randint(0, 18, (b, l), generator=g).numpy(),
                  "reward": torch.randn(b, l, generator=g).numpy(),
                  "is_first": torch.zeros(b, l, dtype=torch.bool).numpy(),
                  "is_terminal": torch.zeros(b, l, dtype=torch.bool).numpy()}
        gen = torch.Generator(device=device).manual_seed(0)

        def one_update():
            batch = agent.to_batch(arrays)
            metrics, latents = agent.train_world_model(batch, gen)
            metrics.update(agent.train_actor_critic(agent.imagination_starts(batch, latents, None, gen), gen))
            return metrics

        one_update()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                t0 = time.perf_counter()
                for _ in range(updates):
                    batch = agent.to_batch(arrays)  # the host-to-device copy is outside the counted region
                    torch.cuda.set_sync_debug_mode("warn")
                    metrics, latents = agent.train_world_model(batch, gen)
                    metrics.update(agent.train_actor_critic(agent.imagination_starts(batch, latents, None, gen), gen))
                    torch.cuda.set_sync_debug_mode(0)
                torch.cuda.synchronize()
                seconds = (time.perf_counter() - t0) / updates
            syncs = sum("synchroniz" in str(w.message).lower() for w in caught) / updates
            out.update(update_s=seconds, host_syncs_per_update=syncs,
                       peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30,
                       projected_100k_steps_hours=seconds * 100_000 / 3600)
            if syncs:
                raise AssertionError(f"{syncs:g} host syncs per update: {[str(w.message) for w in caught][:3]}")
            return f"{seconds:.3f} s/update, 0 host syncs, peak {out['peak_memory_gib']:.2f} GiB"
        metrics = one_update()
        if not all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values()):
            raise AssertionError("non-finite metrics")
        return "ran (host syncs are counted on CUDA only; tests/agents/dreamer/test_host_syncs.py counts host reads on CPU)"

    check(f"Drama updates on {device}", updates_run)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (cpu runs Triton in the interpreter)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, no timings (seconds instead of minutes)")
    parser.add_argument("--updates", type=int, default=3, help="full-size Drama updates to time")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: error: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("gpu_check: error: --device cpu runs Triton in its interpreter: set TRITON_INTERPRET=1 before starting",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    kernel_checks(args.device, args.smoke)
    dispatch_checks(args.device)
    layer_checks(args.device, args.smoke)
    timings = timing_checks(args.device) if (args.device.startswith("cuda") and not args.smoke) else {}
    drama = drama_checks(args.device, args.smoke, args.updates)
    failed = [r for r in RESULTS if not r["ok"]]
    print(json.dumps({"device": args.device, "smoke": args.smoke, "checks": len(RESULTS), "failed": len(failed),
                      "timings": timings, "drama": drama, "seconds": round(time.perf_counter() - t0, 1),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))
    print(f"{'FAIL' if failed else 'PASS'}: {len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
