"""Metrics between two log lines."""
from __future__ import annotations

import torch


class RunningMeans:
    """Running means of scalar metrics between two log lines. Values may be floats or 0-d tensors; tensors
    are summed on their device and read back once per log line (one host sync per metric, not per update)."""

    def __init__(self):
        self.sums: dict[str, float | torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, float | torch.Tensor]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self) -> dict[str, float]:
        out = {k: float(self.sums[k]) / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out
