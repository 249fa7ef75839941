"""Typed configuration of the world model: shared parts, the sequence backbone, and the named presets.

A preset (``drama``, ``s4wm``, ``s5wm``, ``rssm``, ``transformer``) fixes the *structure* (what the posterior,
decoder and heads condition on, how the backbone input is built) and the backbone; a *size* (``debug``,
``small``, ``drama``) fixes the widths. ``make_config(preset, size, env=EnvSpec, **overrides)`` builds one.

The presets' and sizes' values live in ``configs/world_models.yaml`` (``sizes:`` and ``presets:``; a preset's
``at_size:`` holds what it sets at one size only, e.g. S4WM's ``d_state`` 64 at full size), read once by
:func:`load_world_models`; this module holds the dataclasses (whose defaults are the fields no preset or size
sets), the merge, and the checks. The env-dependent fields (``action_dim``, ``image_shape``, ``vector_dim``,
``discrete_actions``) come from the env spec at build time.

Sources of the constants: Drama (ICLR 2025) for the encoder/decoder, the sequence-model input and the Mamba-2
sizes; DreamerV3 for the latents, KL balancing, free bits, two-hot reward head and the GRU cell; S4WM
(NeurIPS 2023) for the S4/S5 block and the image-only posterior (see ``docs/references.md#drama-world-model`` and
``docs/references.md#s4wm``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ssmrl.runs.config import CONFIG_ROOT, load_yaml

STRUCTURES = ("drama", "s4wm", "rssm")
BACKBONES = ("ssm", "gru", "transformer")
SSM_LAYERS = ("mamba2", "mamba", "s4d", "s5")
SSM_BLOCKS = ("prenorm", "s4wm")


@dataclass
class ImageCodecConfig:
    """Conv encoder (first stride 1, then stride 2) and its mirrored transposed-conv decoder."""

    channels: tuple[int, ...] = (16, 32, 48, 64, 64)
    kernel: int = 5
    # Drama's first layer keeps the full resolution (stride 1); 2 halves it like every later layer, which cuts
    # the cost of the two full-resolution convs (encoder in, decoder out) by ~4x for CPU-sized runs.
    first_stride: int = 1
    # Compute dtype of the convs and their channel norms (torch.autocast; the codec returns float32 and every
    # loss stays float32). The codec is ~90% of an image world-model update on CPU; "bfloat16" halves it on
    # CPUs with AVX512-BF16/AMX and on GPUs (docs/results.md, "Training throughput").
    precision: str = "float32"

    @property
    def downsample(self) -> int:
        """Total spatial reduction of the encoder (H and W must be divisible by it)."""
        return self.first_stride * 2 ** (len(self.channels) - 1)


@dataclass
class VectorCodecConfig:
    """MLP encoder/decoder for vector observations (inputs and targets in symlog space)."""

    units: int = 512
    layers: int = 2


@dataclass
class LatentConfig:
    """Stochastic latent: ``groups`` categoricals of ``classes`` each, mixed with ``unimix`` uniform."""

    groups: int = 32
    classes: int = 32
    unimix: float = 0.01

    @property
    def dim(self) -> int:
        """Length of a flattened latent sample (groups x classes)."""
        return self.groups * self.classes


@dataclass
class HeadConfig:
    """Reward (symlog two-hot), continuation (Bernoulli) and prior heads."""

    hidden: int = 256
    layers: int = 1
    reward_bins: int = 255
    reward_low: float = -20.0
    reward_high: float = 20.0
    # hidden layers (width d_model) of the prior p(z|h) and the posterior nets; 0 = a single Linear
    # (Drama's dynamics head and STORM/Drama's posterior on the image embedding)
    latent_layers: int = 1


@dataclass
class LossConfig:
    """Loss weights: recon + reward + cont + dyn * KL(sg(q)||p) + rep * KL(q||sg(p)), each KL >= free_bits."""

    recon: float = 1.0
    reward: float = 1.0
    cont: float = 1.0
    dyn: float = 1.0
    rep: float = 0.1
    free_bits: float = 1.0


@dataclass
class SSMConfig:
    """``ssm`` backbone: a stack of S4D/S5/Mamba/Mamba2 layers.

    ``block="prenorm"``: x + layer(RMSNorm(x)) per layer, final RMSNorm (Drama / mamba-ssm style).
    ``block="s4wm"``: per block x + Linear(layer(LN(x))) twice, then x + MLP(LN(x)) (S4WM).
    """

    layer: str = "mamba2"
    block: str = "prenorm"
    n_layers: int = 2  # prenorm: number of layers; s4wm: number of blocks (2 SSM layers each)
    d_state: int = 16
    expand: int = 2
    headdim: int = 64
    d_conv: int = 4
    chunk_size: int = 256
    mlp_ratio: int = 2  # s4wm block MLP width multiplier
    backend: str | None = None  # kernel backend (None: fastest for the device)


@dataclass
class GRUConfig:
    """``gru`` backbone: DreamerV3's LayerNorm GRU cell (deterministic state size = ``d_model``)."""

    layers: int = 1  # extra Linear+LN+SiLU layers before the cell (DreamerV3 uses 1)


@dataclass
class TransformerConfig:
    """``transformer`` backbone: causal pre-norm transformer, attention limited to the last ``window`` tokens
    of the same episode; stepping keeps a KV cache of ``window`` tokens (constant cost per step)."""

    n_layers: int = 2
    n_heads: int = 8
    window: int = 64
    mlp_ratio: int = 4


@dataclass
class WorldModelConfig:
    """Everything that defines a world model. ``image_shape`` is (H, W, C); ``vector_dim`` the size of a
    vector observation; at least one of them is required. ``validate()`` runs when a model is built (and in
    ``make_config``), not on every intermediate copy."""

    action_dim: int
    image_shape: tuple[int, int, int] | None = (64, 64, 3)
    vector_dim: int | None = None
    discrete_actions: bool = True
    structure: str = "drama"
    backbone: str = "ssm"
    d_model: int = 512  # size of the deterministic feature h_t
    # structure switches (set by the preset; see model.py for their meaning)
    posterior_input: str = "embed"  # "embed" (image-only, Drama/S4WM) | "embed_h" (RSSM)
    decoder_input: str = "z"  # "z" (Drama) | "hz" (S4WM, RSSM)
    head_input: str = "h"  # "h" (Drama) | "hz" (S4WM, RSSM)
    input_norm: str = "rms"  # norm of the backbone input layer: "rms" (Drama) | "layer"
    image: ImageCodecConfig = field(default_factory=ImageCodecConfig)
    vector: VectorCodecConfig = field(default_factory=VectorCodecConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ssm: SSMConfig = field(default_factory=SSMConfig)
    gru: GRUConfig = field(default_factory=GRUConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    def validate(self) -> None:
        def choice(name: str, value: Any, allowed: tuple) -> None:
            if value not in allowed:
                raise ValueError(f"WorldModelConfig.{name} must be one of {allowed}, got {value!r}")

        if not isinstance(self.action_dim, int) or self.action_dim < 1:
            raise ValueError(f"WorldModelConfig.action_dim must be a positive int, got {self.action_dim!r}")
        if self.image_shape is None and self.vector_dim is None:
            raise ValueError("WorldModelConfig needs image_shape and/or vector_dim (got neither)")
        if self.image_shape is not None:
            if len(self.image_shape) != 3:
                raise ValueError(f"WorldModelConfig.image_shape must be (H, W, C), got {self.image_shape!r}")
            if self.image.precision not in ("float32", "bfloat16"):
                raise ValueError(f"WorldModelConfig.image.precision must be 'float32' or 'bfloat16', "
                                 f"got {self.image.precision!r}")
            if self.image.first_stride not in (1, 2):
                raise ValueError(f"WorldModelConfig.image.first_stride must be 1 or 2, got {self.image.first_stride!r}")
            down = self.image.downsample
            h, w, _ = self.image_shape
            if h % down or w % down:
                raise ValueError(
                    f"WorldModelConfig.image_shape {self.image_shape} must be divisible by {down} "
                    f"({len(self.image.channels)} conv layers: the first with stride {self.image.first_stride}, "
                    f"the others with stride 2)"
                )
        sizes = {"d_model": self.d_model, "latent.groups": self.latent.groups, "latent.classes": self.latent.classes,
                 "heads.hidden": self.heads.hidden, "ssm.n_layers": self.ssm.n_layers, "ssm.d_state": self.ssm.d_state,
                 "ssm.expand": self.ssm.expand, "ssm.headdim": self.ssm.headdim, "ssm.chunk_size": self.ssm.chunk_size,
                 "transformer.n_layers": self.transformer.n_layers, "transformer.n_heads": self.transformer.n_heads,
                 "transformer.window": self.transformer.window, "vector.units": self.vector.units,
                 **{f"image.channels[{i}]": c for i, c in enumerate(self.image.channels)}}
        for name, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"WorldModelConfig.{name} must be a positive int, got {value!r}")
        choice("structure", self.structure, STRUCTURES)
        choice("backbone", self.backbone, BACKBONES)
        choice("posterior_input", self.posterior_input, ("embed", "embed_h"))
        choice("decoder_input", self.decoder_input, ("z", "hz"))
        choice("head_input", self.head_input, ("h", "hz"))
        choice("input_norm", self.input_norm, ("rms", "layer"))
        choice("ssm.layer", self.ssm.layer, SSM_LAYERS)
        choice("ssm.block", self.ssm.block, SSM_BLOCKS)
        if self.backbone == "transformer" and self.d_model % self.transformer.n_heads:
            raise ValueError(
                f"WorldModelConfig.d_model ({self.d_model}) must be divisible by transformer.n_heads "
                f"({self.transformer.n_heads})"
            )
        if self.posterior_input == "embed_h" and self.backbone != "gru":
            # The parallel observe pass needs a posterior that does not depend on h; only the
            # sequential GRU path supports posterior q(z_t | h_t, x_t).
            raise ValueError('posterior_input="embed_h" is only supported with backbone="gru"')


def _merge(cfg: Any, overrides: dict[str, Any], path: str = "") -> Any:
    """Return a copy of dataclass ``cfg`` with nested ``overrides`` applied; unknown keys raise."""
    names = {f.name for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in names:
            raise KeyError(f"unknown world-model config key {path + key!r}; expected one of {sorted(names)}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _merge(current, value, f"{path}{key}.")
        else:
            if isinstance(value, list):
                value = tuple(value)
            changes[key] = value
    return dataclasses.replace(cfg, **changes)


def _nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"ssm.d_state": 8}`` into ``{"ssm": {"d_state": 8}}`` (dotted keys as on the command line)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return out


WORLD_MODELS_FILE = CONFIG_ROOT / "world_models.yaml"


def load_world_models(path: Path = WORLD_MODELS_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    """Read the presets and sizes (``{"sizes": {name: values}, "presets": {name: values}}``) from ``path`` and
    check that each one merges into a :class:`WorldModelConfig` (unknown keys are errors naming the file and key)."""
    data = load_yaml(path)
    if set(data) != {"sizes", "presets"} or not all(isinstance(v, dict) and v for v in data.values()):
        raise ValueError(f"{path}: expected the mappings 'sizes' and 'presets' (and nothing else), got {sorted(data)}")
    base = WorldModelConfig(action_dim=1)
    for group, entries in data.items():
        for name, values in entries.items():
            if not isinstance(values, dict):
                raise ValueError(f"{path}: {group}.{name} must be a mapping, got {values!r}")
            values = dict(values)
            at_size = values.pop("at_size", {}) if group == "presets" else {}
            unknown = sorted(set(at_size) - set(data["sizes"]))
            if unknown:
                raise ValueError(f"{path}: {group}.{name}.at_size: unknown sizes {unknown}; "
                                 f"sizes: {sorted(data['sizes'])}")
            for where, part in [(f"{group}.{name}", values),
                                *((f"{group}.{name}.at_size.{s}", v) for s, v in at_size.items())]:
                try:
                    _merge(base, part)
                except KeyError as err:
                    raise KeyError(f"{path}: {where}: {err.args[0]}") from None
    return data


_WORLD_MODELS = load_world_models()
PRESETS: tuple[str, ...] = tuple(_WORLD_MODELS["presets"])
SIZES: tuple[str, ...] = tuple(_WORLD_MODELS["sizes"])


class EnvShapes(Protocol):
    """What the world model reads from an environment: ``envs.spec.EnvSpec`` is one (the world model never imports
    ``envs``; docs/architecture.md: it never knows which environment it serves)."""

    @property
    def image_shape(self) -> tuple[int, int, int] | None: ...  # (H, W, C) or None

    @property
    def vector_dim(self) -> int | None: ...

    @property
    def action_dim(self) -> int: ...

    @property
    def discrete(self) -> bool: ...


_ENV_FIELDS = ("image_shape", "vector_dim", "discrete_actions")


def make_config(preset: str = "drama", size: str = "drama", *, env: EnvShapes | None = None,
                action_dim: int | None = None, **overrides: Any) -> WorldModelConfig:
    """Build the config of a named preset at a named size for an environment, then apply ``overrides``.

    ``env`` (an ``envs.spec.EnvSpec``) sets ``action_dim``, ``image_shape``, ``vector_dim`` and
    ``discrete_actions``: ``make_config("drama", "debug", env=envs.env_spec(env))``. Without an env, give
    ``action_dim`` (and the others as overrides; without ``image_shape`` the size's ``image_shape`` in
    configs/world_models.yaml is used). Overrides are keyword arguments, nested dicts or dotted keys:
    ``make_config("s4wm", "debug", action_dim=4, vector_dim=8, image_shape=None, **{"ssm.d_state": 8})``.
    """
    if env is not None:
        clash = sorted(({"action_dim"} if action_dim is not None else set()) | (set(_ENV_FIELDS) & set(overrides)))
        if clash:
            raise ValueError(f"make_config: {clash} come from env= (its EnvSpec); do not pass them as well")
        action_dim = env.action_dim
        overrides = {"image_shape": env.image_shape, "vector_dim": env.vector_dim, "discrete_actions": env.discrete,
                     **overrides}
    if action_dim is None:
        raise TypeError("make_config needs env= (an envs.spec.EnvSpec) or action_dim=")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    # configs/world_models.yaml: the size (widths), the preset's structure, what the preset sets at this size;
    # then the env's fields and the user's overrides.
    preset_values = dict(_WORLD_MODELS["presets"][preset])
    at_size = preset_values.pop("at_size", {}).get(size, {})
    cfg = WorldModelConfig(action_dim=action_dim)
    for values in (_WORLD_MODELS["sizes"][size], preset_values, at_size):
        cfg = _merge(cfg, values)
    cfg = _merge(cfg, _nested(overrides))
    cfg.validate()
    return cfg


def config_to_dict(cfg: WorldModelConfig) -> dict[str, Any]:
    """Plain nested dict (for YAML / checkpoints)."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict[str, Any]) -> WorldModelConfig:
    """Inverse of :func:`config_to_dict`; unknown keys raise."""
    d = dict(d)
    if "action_dim" not in d:
        raise KeyError("world-model config dict needs 'action_dim'")
    image_shape = d.pop("image_shape", (64, 64, 3))
    base = WorldModelConfig(action_dim=d.pop("action_dim"),
                            image_shape=None if image_shape is None else tuple(image_shape),
                            vector_dim=d.pop("vector_dim", None))
    cfg = _merge(base, d)
    cfg.validate()
    return cfg
