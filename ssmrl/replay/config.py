"""Configuration of the replay buffer and its samplers."""
from __future__ import annotations

from dataclasses import dataclass

SAMPLERS = ("uniform", "recency", "dfs")


@dataclass
class ReplayConfig:
    """Replay buffer settings.

    capacity: total steps kept over all streams (FIFO); each stream keeps ``capacity // num_streams``.
    num_streams: independent step streams (one per environment); windows never mix streams.
    within_episode: if True a sampled window never contains an episode start after its first position
        (it stays inside one episode); if False windows may cross boundaries and ``is_first`` carries the reset.
    sampler: "uniform" (with replacement), "recency" (with replacement, weight 0.5 ** (age / recency_half_life))
        or "dfs" (Drama's count-based sampler; world-model batches without replacement).
    seed: seeds the sampler's own ``np.random.Generator``.
    recency_half_life: steps (per stream) after which a window's recency weight halves.
    dfs_*: Drama's constants: tau = 10 for world-model batches, imagination scores
        n - alpha m~ - beta max(0, n - m~) with m~ = m / divisor and temperature 10. Drama's divisor is the
        number of imagination starts per world-model window, imag_batch / batch_size (1024 / 16 = 64); None
        lets the Dreamer learner set exactly that.
    directory: folder of the append-only chunk files and ``index.json``; None keeps the buffer in memory only.
    chunk_size: steps per chunk file per stream (must not exceed the per-stream capacity).
    compress: write chunks with ``np.savez_compressed`` (smaller, slower) instead of ``np.savez``.
    keep_commits: chunk files referenced by this many most recent commits survive garbage collection
        (match the checkpointer's ``keep`` so an older checkpoint can still be resumed).
    verbose: print the memory estimate when storage is allocated.
    """

    capacity: int = 1_000_000
    num_streams: int = 1
    within_episode: bool = False
    sampler: str = "uniform"
    seed: int = 0
    recency_half_life: float = 10_000.0
    dfs_tau: float = 10.0
    dfs_imagination_tau: float = 10.0
    dfs_imagination_divisor: float | None = None  # None: imag_batch / batch_size, set by the learner
    dfs_alpha: float = 1.0
    dfs_beta: float = 1.0
    directory: str | None = None
    chunk_size: int = 1024
    compress: bool = False
    keep_commits: int = 2
    verbose: bool = True

    def __post_init__(self) -> None:
        if self.num_streams < 1:
            raise ValueError(f"num_streams must be >= 1, got {self.num_streams}")
        if self.capacity < self.num_streams:
            raise ValueError(f"capacity ({self.capacity}) must be >= num_streams ({self.num_streams})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.directory is not None and self.chunk_size > self.stream_capacity:
            raise ValueError(
                f"chunk_size ({self.chunk_size}) must not exceed the per-stream capacity "
                f"capacity // num_streams = {self.stream_capacity}"
            )
        for name in ("recency_half_life", "dfs_tau", "dfs_imagination_tau", "dfs_imagination_divisor"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.keep_commits < 1:
            raise ValueError(f"keep_commits must be >= 1, got {self.keep_commits}")

    @property
    def stream_capacity(self) -> int:
        return self.capacity // self.num_streams
