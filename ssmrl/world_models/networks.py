"""Observation encoders/decoders and small building blocks shared by the world-model parts.

Image codec (Drama): conv layers with kernel 5, first stride 1 then stride 2 (64x64 -> 4x4 with channels
16/32/48/64/64), channel LayerNorm + SiLU after each; the decoder mirrors it with transposed convs.
Vector codec: MLP on symlog inputs; the decoder predicts symlog targets.
All modules act on ``(B, L, ...)`` or ``(B, ...)`` alike (leading dims are flattened and restored).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from ssmrl.distributions import symexp, symlog  # noqa: F401  (one definition; re-exported for the world model)
from ssmrl.ssm.blocks import RMSNorm


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "rms":
        return RMSNorm(dim, eps=1e-6)  # computed in float32 under autocast
    if kind == "layer":
        return nn.LayerNorm(dim, eps=1e-6)
    raise ValueError(f"norm kind must be 'rms' or 'layer', got {kind!r}")


def mlp_layers(in_dim: int, hidden: int, layers: int, norm: Callable[[int], nn.Module]) -> list[nn.Module]:
    """``layers`` x (Linear without bias -> ``norm(hidden)`` -> SiLU), DreamerV3's MLP body, as a module list
    (callers wrap it in ``nn.Sequential``, so parameter names and creation order follow the list):
    (..., in_dim) -> (..., hidden), or (..., in_dim) unchanged when ``layers`` is 0."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden, bias=False), norm(hidden), nn.SiLU()]
        d = hidden
    return mods


class MLP(nn.Module):
    """``layers`` x (Linear -> LayerNorm -> SiLU), then an optional Linear to ``out_dim``.

    x: (..., in_dim) -> (..., out_dim or hidden). ``zero_out`` initialises the output layer to zero
    (DreamerV3 does this for the reward and critic heads so that early predictions are 0).
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int | None = None,
                 zero_out: bool = False, norm: str = "layer") -> None:
        super().__init__()
        self.body = nn.Sequential(*mlp_layers(in_dim, hidden, layers, lambda dim: make_norm(norm, dim)))
        d = hidden if layers else in_dim
        self.out = nn.Linear(d, out_dim) if out_dim is not None else None
        self.out_dim = out_dim if out_dim is not None else d
        if self.out is not None and zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        return self.out(x) if self.out is not None else x


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of (N, C, H, W), independently per pixel and per sample."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _codec_autocast(device: torch.device, precision: str):
    """The image codec's compute precision: bfloat16 autocast for convs (and the norms that then see bfloat16
    inputs, which accumulate in float32), or plain float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def _flatten_lead(x: torch.Tensor, n_tail: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    lead = x.shape[: x.dim() - n_tail]
    return x.reshape(-1, *x.shape[x.dim() - n_tail:]), tuple(lead)


def image_to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, C) in [0, 255] -> float (..., H, W, C) in [-0.5, 0.5]; float input is taken as
    already converted."""
    if image.dtype == torch.uint8:
        return image.float() / 255.0 - 0.5
    if not image.is_floating_point():
        raise TypeError(f"image must be uint8 or floating point, got {image.dtype}")
    return image


class ImageEncoder(nn.Module):
    """image: (..., H, W, C) uint8 or float in [-0.5, 0.5] -> embed (..., C_last * H/down * W/down), where
    down = first_stride * 2^(n-1) for n conv layers.

    The convs run in channels-last memory layout: the (H, W, C) input needs no copy to get there, and the
    per-pixel channel LayerNorm then reads contiguous rows (~20% faster fwd+bwd on CPU than NCHW).
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...], kernel: int = 5,
                 first_stride: int = 1, precision: str = "float32") -> None:
        super().__init__()
        h, w, c = image_shape
        self.image_shape = tuple(image_shape)
        self.precision = precision
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            stride = first_stride if i == 0 else 2
            layers += [nn.Conv2d(c, ch, kernel, stride=stride, padding=kernel // 2, bias=False),
                       ChannelNorm(ch), nn.SiLU()]
            c = ch
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        down = first_stride * 2 ** (len(channels) - 1)
        self.out_shape = (channels[-1], h // down, w // down)
        self.out_dim = int(math.prod(self.out_shape))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-3:]) != self.image_shape:
            raise ValueError(f"image must end in shape (H, W, C) = {self.image_shape}, got {tuple(image.shape)}")
        x, lead = _flatten_lead(image_to_float(image), 3)
        with _codec_autocast(x.device, self.precision):
            x = self.net(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
        return x.float().reshape(*lead, self.out_dim)


class ImageDecoder(nn.Module):
    """features (..., in_dim) -> image (..., H, W, C) float, the mean of x/255 - 0.5 (MSE target)."""

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 kernel: int = 5, first_stride: int = 1, precision: str = "float32") -> None:
        super().__init__()
        h, w, c_img = image_shape
        self.image_shape = tuple(image_shape)
        self.precision = precision
        down = first_stride * 2 ** (len(channels) - 1)
        self.start_shape = (channels[-1], h // down, w // down)
        self.inp = nn.Linear(in_dim, int(math.prod(self.start_shape)))
        layers: list[nn.Module] = []
        # Mirror of the encoder: encoder layer i maps channels[i-1] -> channels[i] with stride s_i;
        # the decoder maps channels[i] -> channels[i-1] with the same stride, last layer to the image.
        for i in reversed(range(len(channels))):
            out_ch = channels[i - 1] if i > 0 else c_img
            stride = first_stride if i == 0 else 2
            conv = nn.ConvTranspose2d(channels[i], out_ch, kernel, stride=stride, padding=kernel // 2,
                                      output_padding=stride - 1, bias=(i == 0))
            layers += [conv] if i == 0 else [conv, ChannelNorm(out_ch), nn.SiLU()]
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x, lead = _flatten_lead(feat, 1)
        # the input projection stays float32 (only the convs and their norms follow ``precision``): the
        # reconstruction gradient into the features, most of the world model's gradient, is computed here
        x = self.inp(x).reshape(-1, *self.start_shape).contiguous(memory_format=torch.channels_last)
        with _codec_autocast(x.device, self.precision):
            x = self.net(x).permute(0, 2, 3, 1)
        return x.float().reshape(*lead, *self.image_shape)


class VectorEncoder(nn.Module):
    """vector (..., D) -> embed (..., units) through symlog and an MLP."""

    def __init__(self, dim: int, units: int, layers: int) -> None:
        super().__init__()
        self.dim = dim
        self.net = MLP(dim, units, max(layers, 1))
        self.out_dim = self.net.out_dim

    def forward(self, vector: torch.Tensor) -> torch.Tensor:
        if vector.shape[-1] != self.dim:
            raise ValueError(f"vector must have last dim {self.dim}, got shape {tuple(vector.shape)}")
        return self.net(symlog(vector.float()))


class VectorDecoder(nn.Module):
    """features (..., in_dim) -> predicted symlog(vector) (..., D)."""

    def __init__(self, in_dim: int, dim: int, units: int, layers: int) -> None:
        super().__init__()
        self.net = MLP(in_dim, units, max(layers, 1), out_dim=dim)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)


class MultiEncoder(nn.Module):
    """obs dict with ``image`` (B, L, H, W, C) and/or ``vector`` (B, L, D) -> embed (B, L, E) (concatenated)."""

    def __init__(self, image_shape, vector_dim, image_cfg, vector_cfg) -> None:
        super().__init__()
        self.image = ImageEncoder(image_shape, image_cfg.channels, image_cfg.kernel, image_cfg.first_stride,
                                  image_cfg.precision) if image_shape else None
        self.vector = VectorEncoder(vector_dim, vector_cfg.units, vector_cfg.layers) if vector_dim else None
        self.out_dim = (self.image.out_dim if self.image else 0) + (self.vector.out_dim if self.vector else 0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(obs, dict):
            raise TypeError(f"obs must be a dict with keys 'image' and/or 'vector', got {type(obs).__name__}")
        parts = []
        for key, enc in (("image", self.image), ("vector", self.vector)):
            if enc is None:
                continue
            if key not in obs:
                raise KeyError(f"obs is missing key {key!r} (the model was built with a {key} observation)")
            parts.append(enc(obs[key]))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]


class MultiDecoder(nn.Module):
    """features (B, L, F) -> dict with ``image`` (B, L, H, W, C) and/or ``vector`` (B, L, D) (symlog space)."""

    def __init__(self, in_dim, image_shape, vector_dim, image_cfg, vector_cfg) -> None:
        super().__init__()
        self.image = ImageDecoder(in_dim, image_shape, image_cfg.channels, image_cfg.kernel,
                                  image_cfg.first_stride, image_cfg.precision) if image_shape else None
        self.vector = VectorDecoder(in_dim, vector_dim, vector_cfg.units, vector_cfg.layers) if vector_dim else None

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.image is not None:
            out["image"] = self.image(feat)
        if self.vector is not None:
            out["vector"] = self.vector(feat)
        return out
