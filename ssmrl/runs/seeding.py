"""Seeding: one run seed seeds python, numpy and torch, and hands out independent per-component generators."""
from __future__ import annotations

import random
import zlib

import numpy as np

# torch is imported inside the functions that use it: envs (and its vector-env worker processes) use derived_seeds
# and must not pay torch's import


def seed_everything(seed: int) -> None:
    """Seed the global python, numpy and torch generators (for code that does not take a generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch

    torch.manual_seed(seed)


def component_seed(seed: int, name: str) -> int:
    """A 63-bit seed for component ``name``, stable across runs and machines (no hash randomisation)."""
    sequence = np.random.SeedSequence([seed % 2**63, zlib.crc32(name.encode())])
    return int(sequence.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1, 2**31], np.uint64))


def derived_seeds(seed: int, n: int) -> list[int]:
    """``n`` distinct, reproducible seeds (e.g. one per environment) derived from one run seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


class Seeds:
    """Per-component generators derived from the run seed: ``Seeds(3).numpy("replay")``."""

    def __init__(self, seed: int):
        self.seed = seed

    def numpy(self, name: str) -> np.random.Generator:
        return np.random.default_rng(component_seed(self.seed, name))

    def torch(self, name: str, device="cpu"):
        """A ``torch.Generator`` on ``device`` seeded for component ``name``."""
        import torch

        generator = torch.Generator(device=device)
        generator.manual_seed(component_seed(self.seed, name))
        return generator

    def int(self, name: str) -> int:
        return component_seed(self.seed, name)


def rng_state() -> dict:
    """The global RNG states of python, numpy and torch (for checkpoints)."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class GeneratorCheckpoint:
    """Adapter so a ``np.random.Generator`` or ``torch.Generator`` can be registered with a Checkpointer."""

    def __init__(self, generator):  # np.random.Generator | torch.Generator
        self.generator = generator

    def state_dict(self) -> dict:
        if type(self.generator).__module__.startswith("torch"):
            return {"torch": self.generator.get_state()}
        return {"numpy": self.generator.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if type(self.generator).__module__.startswith("torch"):
            self.generator.set_state(state["torch"])
        else:
            self.generator.bit_generator.state = state["numpy"]
