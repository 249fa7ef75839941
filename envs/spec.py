"""What an environment offers a learner, as one typed value: :class:`EnvSpec`, built by :func:`env_spec`.

Learners (the Dreamer agent, offline evaluation) and the world-model builder read an env's observations and
actions from an ``EnvSpec`` instead of from its gymnasium spaces. Observation keys are the rollout engine's
(``ssmrl/rollout/engine.py``): a Dict observation space keeps its keys; a bare Box is ``"image"`` when it is uint8
with rank >= 3 (H, W, C), otherwise ``"vector"``. This module needs gymnasium and numpy only (no torch).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class ObservationSpec:
    """One observation key.

    key: ``"image"``, ``"vector"`` or the env's own Dict key.
    shape: one step's shape, without a batch: images ``(H, W, C)``, vectors ``(D,)``.
    dtype: the numpy dtype's name as the env declares it: ``"uint8"`` for images, ``"float32"`` (or ``"float64"``)
        for vectors.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class EnvSpec:
    """An environment's observations and actions.

    observations: one :class:`ObservationSpec` per key, sorted by key.
    action_dim: discrete: the number of actions (an action is an index in ``[0, action_dim)``, one-hot of size
        ``action_dim`` for the networks); continuous: the size ``A`` of the action vector ``(A,)``.
    discrete: whether actions are indices (gymnasium ``Discrete``) or vectors (a 1-D ``Box``).
    action_low, action_high: continuous: the per-dimension bounds ``(A,)``; None for discrete actions.
    """

    observations: tuple[ObservationSpec, ...]
    action_dim: int
    discrete: bool
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        keys = [o.key for o in self.observations]
        if not keys or keys != sorted(set(keys)):
            raise ValueError(f"EnvSpec.observations must hold distinct keys in sorted order, got {keys}")
        if self.action_dim < 1:
            raise ValueError(f"EnvSpec.action_dim must be >= 1, got {self.action_dim}")
        bounds = (self.action_low, self.action_high)
        if self.discrete and bounds != (None, None):
            raise ValueError("EnvSpec: discrete actions have no action_low / action_high")
        if not self.discrete and any(b is None or len(b) != self.action_dim for b in bounds):
            raise ValueError(f"EnvSpec: continuous actions need action_low and action_high of length "
                             f"action_dim={self.action_dim}, got {bounds}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The observation keys, sorted."""
        return tuple(o.key for o in self.observations)

    def observation(self, key: str) -> ObservationSpec | None:
        """The spec of observation ``key``; None when the env has no such key."""
        return next((o for o in self.observations if o.key == key), None)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(H, W, C)`` of the ``"image"`` observation; None without one."""
        image = self.observation("image")
        return None if image is None else image.shape  # type: ignore[return-value]

    @property
    def vector_dim(self) -> int | None:
        """Number of entries of the ``"vector"`` observation (its shape's product); None without one."""
        vector = self.observation("vector")
        return None if vector is None else int(np.prod(vector.shape))


def _observation(key: str, space: gym.Space) -> ObservationSpec:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"observation {key!r}: EnvSpec describes Box observations, got {space}")
    return ObservationSpec(key=key, shape=tuple(int(s) for s in space.shape), dtype=np.dtype(space.dtype).name)


def env_spec(env: gym.Env | gym.vector.VectorEnv) -> EnvSpec:
    """The :class:`EnvSpec` of ``env`` (of one copy for a vector env), from its observation and action spaces.

    Raises ValueError for what it cannot describe: non-Box observations, actions other than ``Discrete`` or a
    1-D ``Box``.
    """
    vector = isinstance(env, gym.vector.VectorEnv)
    obs_space = env.single_observation_space if vector else env.observation_space
    act_space = env.single_action_space if vector else env.action_space
    if isinstance(obs_space, gym.spaces.Dict):
        spaces = dict(obs_space.spaces)
    else:
        is_image = obs_space.dtype == np.uint8 and len(obs_space.shape) >= 3
        spaces = {"image" if is_image else "vector": obs_space}
    observations = tuple(_observation(key, spaces[key]) for key in sorted(spaces))
    if isinstance(act_space, gym.spaces.Discrete):
        return EnvSpec(observations, action_dim=int(act_space.n), discrete=True)
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return EnvSpec(observations, action_dim=int(act_space.shape[0]), discrete=False,
                       action_low=tuple(float(x) for x in act_space.low), action_high=tuple(float(x) for x in act_space.high))
    raise ValueError(f"unsupported action space {act_space}: EnvSpec describes Discrete and 1-D Box actions")
