"""Test-session settings: one torch thread per process (the suite's tensors are tiny; on a shared 2-core machine
extra threads only add contention)."""
import torch

torch.set_num_threads(1)
