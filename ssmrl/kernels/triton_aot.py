"""Compile every Triton kernel ahead of time for a GPU architecture, on any machine (no GPU needed).

Triton's own compiler and its bundled ``ptxas`` turn each kernel variant the code launches into a cubin, so a
compile failure (a typo in a kernel, an unsupported op, a ptxas error, too much shared memory) shows up in the CPU
test suite instead of at the first policy step on a GPU. The interpreter (``TRITON_INTERPRET=1``) cannot see these.

    python -m ssmrl.kernels.triton_aot            # sm_90 (H100/H200); prints one JSON line per variant

Variants follow the launch code of each backend (``_grid`` / ``_config`` / ``_launch_cfg``): dtypes, real and
complex diagonal scans, d_state 16-256, SSD chunk sizes. Run in a process where ``TRITON_INTERPRET`` is unset
(the kernels are built once per process, and the interpreter decides at build time).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

_DT = {"fp32": "*fp32", "fp64": "*fp64"}


@dataclass
class Variant:
    kernel: str  # "<module>.<fwd|bwd>"
    description: str
    signature: dict[str, str]
    constexprs: dict[str, int]


def _signature(fn, pointer: str, constexprs: dict[str, int]) -> dict[str, str]:
    return {name: ("constexpr" if name in constexprs else pointer if name.endswith("_ptr") else "i32")
            for name in fn.arg_names}


def variants() -> list[tuple[object, Variant]]:
    """(jit function, variant) for every kernel configuration the launchers produce."""
    import triton

    from ssmrl.kernels import triton_diag, triton_selective, triton_ssd

    out = []
    _, dfwd, dbwd = triton_diag._kernels()
    for dtype, width, size in (("fp32", 1, 4096), ("fp32", 2, 4096), ("fp64", 1, 4096), ("fp32", 1, 12)):
        _, block = triton_diag._grid(triton, 1, size)
        for name, fn in (("fwd", dfwd), ("bwd", dbwd)):
            ce = {"W": width, "BLOCK": block}
            out.append((fn, Variant(f"diag.{name}", f"{dtype} {'complex' if width == 2 else 'real'} S={size}",
                                    _signature(fn, _DT[dtype], ce), ce)))
    _, sfwd, sbwd = triton_selective._kernels()
    for n in (16, 64, 256):
        np_, bd, _, _ = triton_selective._config(triton, 1024, n, 64, 32)
        for name, fn in (("fwd", sfwd), ("bwd", sbwd)):
            ce = {"K": 32, "BD": bd, "NP": np_}
            out.append((fn, Variant(f"selective.{name}", f"d_state {n} (BD {bd})", _signature(fn, "*fp32", ce), ce)))
    _, qfwd, qbwd = triton_ssd._kernels(False)
    for n, chunk in ((16, 64), (128, 256), (256, 64)):
        block_p, block_n, _ = triton_ssd._launch_cfg(64, n)
        for name, fn in (("fwd", qfwd), ("bwd", qbwd)):
            ce = {"Q": chunk, "BLOCK_P": block_p, "BLOCK_N": block_n}
            out.append((fn, Variant(f"ssd.{name}", f"d_state {n}, chunk {chunk}", _signature(fn, "*fp32", ce), ce)))
    return out


def compile_all(arch: int = 90) -> list[dict]:
    """Compile every variant for ``sm_<arch>``; one result dict per variant (``ok``, ``error``, ``seconds``,
    ``shared`` bytes)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    results = []
    for fn, v in variants():
        t0 = time.perf_counter()
        row = {"kernel": v.kernel, "variant": v.description, "arch": f"sm_{arch}"}
        try:
            compiled = triton.compile(ASTSource(fn=fn, signature=v.signature, constexprs=v.constexprs), target=target)
            row.update(ok=True, shared=int(getattr(compiled.metadata, "shared", 0)),
                       num_warps=int(compiled.metadata.num_warps))
        except Exception as err:  # noqa: BLE001 - report every failure, keep compiling the rest
            row.update(ok=False, error=f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}")
        row["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(row)
    return results


def main(argv: list[str] | None = None) -> int:
    arch = int((argv or sys.argv[1:] or ["90"])[0])
    results = compile_all(arch)
    for row in results:
        print(json.dumps(row), flush=True)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
