"""Resettable scan kernels. Every function takes ``backend=None | "reference" | "torch" | "triton"`` and returns
``(y, final_state)``; ``first`` (B, L) bool zeroes the state before step t consumes its input.

- ``diag_scan``: h_t = a_t (1 - first_t) h_{t-1} + b_t (real or complex; S4D, S5)
- ``selective_scan``: Mamba-1, h_t = exp(dt_t A)(1 - first_t) h_{t-1} + dt_t B_t x_t, y_t = C_t h_t + D x_t
- ``ssd_scan``: Mamba-2 SSD with heads and groups (chunked on CPU)
- ``causal_conv1d``: depthwise causal conv whose taps never cross a reset
- ``*_step``: one token with a carried state (constant cost per step)
"""
from ssmrl.kernels.backend import BACKENDS, resolve_backend, triton_available
from ssmrl.kernels.conv import causal_conv1d, causal_conv1d_step
from ssmrl.kernels.diag import diag_scan, diag_scan_step
from ssmrl.kernels.selective import selective_scan, selective_scan_step
from ssmrl.kernels.ssd import ssd_scan, ssd_scan_step

__all__ = [
    "BACKENDS", "causal_conv1d", "causal_conv1d_step", "diag_scan", "diag_scan_step", "resolve_backend",
    "selective_scan", "selective_scan_step", "ssd_scan", "ssd_scan_step", "triton_available",
]
