"""The image codec in bfloat16 (``wm.overrides.image.precision=bfloat16``) against its float32 reference:
same weights, values and gradients within bfloat16's resolution (8 mantissa bits: ~0.4% per rounding)."""
from __future__ import annotations

import torch

from ssmrl.world_models.networks import ImageDecoder, ImageEncoder

SHAPE, CHANNELS = (32, 32, 3), (8, 16, 16)


def _pair(cls, *args):
    ref = cls(*args, precision="float32")
    low = cls(*args, precision="bfloat16")
    low.load_state_dict(ref.state_dict())
    return ref, low


def _grads(module):
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    err = (a - b).norm() / b.norm()
    assert err < rel, f"relative error {err:.4f} >= {rel}"


def test_bf16_encoder_matches_float32_values_and_gradients():
    torch.manual_seed(0)
    ref, low = _pair(ImageEncoder, SHAPE, CHANNELS, 5, 1)
    image = torch.randint(0, 256, (6, 2, *SHAPE), dtype=torch.uint8)
    target = torch.randn(6, 2, ref.out_dim)
    outs = []
    for model in (ref, low):
        out = model(image)
        assert out.dtype == torch.float32  # the rest of the model sees float32
        ((out - target) ** 2).mean().backward()
        outs.append(out.detach())
    _close(outs[1], outs[0], 0.02)
    _close(_grads(low), _grads(ref), 0.05)
    assert (outs[1] != outs[0]).any()  # the bf16 path really ran in lower precision


def test_bf16_decoder_matches_float32_values_and_gradients():
    torch.manual_seed(1)
    ref, low = _pair(ImageDecoder, 24, SHAPE, CHANNELS, 5, 2)
    feat = torch.randn(6, 24)
    target = torch.rand(6, *SHAPE) - 0.5
    outs, feat_grads = [], []
    for model in (ref, low):
        f = feat.clone().requires_grad_(True)
        out = model(f)
        assert out.dtype == torch.float32 and out.shape == (6, *SHAPE)
        ((out - target) ** 2).mean().backward()
        outs.append(out.detach())
        feat_grads.append(f.grad)
    _close(outs[1], outs[0], 0.02)
    _close(_grads(low), _grads(ref), 0.05)
    _close(feat_grads[1], feat_grads[0], 0.05)


def test_bf16_decoder_projects_the_features_in_float32():
    """Only the convs and their norms follow ``precision``: the input projection (through which the reconstruction
    gradient reaches the latents) runs in float32, so its output equals the float32 decoder's exactly."""
    torch.manual_seed(2)
    ref, low = _pair(ImageDecoder, 24, SHAPE, CHANNELS, 5, 2)
    seen = {}
    low.inp.register_forward_hook(lambda module, args, out: seen.update(low=out))
    ref.inp.register_forward_hook(lambda module, args, out: seen.update(ref=out))
    feat = torch.randn(6, 24)
    low(feat), ref(feat)
    assert seen["low"].dtype == torch.float32 and torch.equal(seen["low"], seen["ref"])
