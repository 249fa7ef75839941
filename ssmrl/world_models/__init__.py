"""World models with a pluggable sequence backbone: Drama (Mamba-2), S4WM/S5WM (S4D/S5 blocks), the DreamerV3
RSSM (GRU) and a causal Transformer with a KV cache. One class, :class:`WorldModel`; the preset picks the
structure and the backbone (``make_config("drama" | "s4wm" | "s5wm" | "rssm" | "transformer", size)``)."""
from .backbones import GRUBackbone, KVCache, SSMBackbone, TransformerBackbone, make_backbone
from .config import (
    PRESETS,
    SIZES,
    GRUConfig,
    HeadConfig,
    ImageCodecConfig,
    LatentConfig,
    LossConfig,
    SSMConfig,
    TransformerConfig,
    VectorCodecConfig,
    WorldModelConfig,
    config_from_dict,
    config_to_dict,
    make_config,
)
from .heads import ContinueHead, RewardHead
from .latents import CategoricalLatent
from .model import WorldModel, WorldModelState
from .networks import ImageDecoder, ImageEncoder, VectorDecoder, VectorEncoder, symexp, symlog

__all__ = [
    "PRESETS", "SIZES", "WorldModel", "WorldModelState", "WorldModelConfig", "make_config", "config_to_dict",
    "config_from_dict", "GRUConfig", "HeadConfig", "ImageCodecConfig", "LatentConfig", "LossConfig", "SSMConfig",
    "TransformerConfig", "VectorCodecConfig", "SSMBackbone", "GRUBackbone", "TransformerBackbone", "KVCache",
    "make_backbone", "CategoricalLatent", "RewardHead", "ContinueHead", "ImageEncoder", "ImageDecoder",
    "VectorEncoder", "VectorDecoder", "symlog", "symexp",
]
