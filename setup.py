"""Only the optional C extension lives here; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        # Fused max-pool + area resize for Atari frames (envs/frame_ops.py falls back to numpy + OpenCV without it).
        # -ffp-contract=off: no fused multiply-adds, so results do not depend on the compiler's choice.
        Extension("envs._frame_ops", ["envs/_frame_ops.c"], optional=True,
                  extra_compile_args=["-O3", "-ffp-contract=off", "-std=c99"]),
        # Fused CPU selective scan (ssmrl/kernels/selective.py falls back to its torch path without it).
        # -fno-math-errno + -fopenmp-simd let gcc vectorise expf through glibc's libmvec.
        Extension("ssmrl.kernels._selective_cpu", ["ssmrl/kernels/_selective_cpu.c"], optional=True,
                  extra_compile_args=["-O3", "-std=c99", "-fno-math-errno", "-fopenmp-simd", "-ffast-math"],
                  libraries=["m", "mvec"]),
    ],
)
