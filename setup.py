"""The packages (two folders installed under other names) and the optional C extensions; everything else is in
pyproject.toml."""
from setuptools import Extension, find_packages, setup

setup(
    # configs/ ships as ssmrl.configs (the preset YAML files) and scripts/ as ssmrl_scripts (``ssmrl bench``), so a
    # non-editable install has both; in a checkout they stay top-level folders.
    packages=find_packages(include=["ssmrl*", "agents*", "envs*"]) + ["ssmrl.configs", "ssmrl_scripts"],
    package_dir={"ssmrl.configs": "configs", "ssmrl_scripts": "scripts"},
    package_data={"ssmrl.configs": ["*.yaml", "*/*.yaml"]},
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
