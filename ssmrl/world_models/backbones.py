"""Sequence backbones of the world model: one interface, three kinds chosen by config.

Every backbone maps backbone inputs ``u`` (B, L, d_model) to deterministic features ``h`` (B, L, d_model):

    forward(u, first=None, state=None) -> (h, state)      # parallel (or internally looped) over L
    step(u_t, first_t, state) -> (h_t, state)             # one token, constant cost
    initial_state(batch_size, device=None) -> state

with ``first`` bool (B, L): the state is zeroed before step t consumes ``u_t`` where ``first[:, t]``.
``forward`` over a sequence equals ``step`` token by token (this is what ``imagine`` relies on).

Kinds (``WorldModelConfig.backbone``):
- ``ssm``: S4D / S5 / Mamba / Mamba-2 layers from :mod:`ssmrl.ssm` stacked with :class:`ssmrl.ssm.blocks.SSMStack`,
  either pre-norm residual blocks (Drama) or S4WM blocks (two SSM layers + MLP).
- ``gru``: DreamerV3's LayerNorm GRU cell (RSSM's deterministic path).
- ``transformer``: causal pre-norm transformer; attention sees the last ``window`` tokens of the same episode
  (resets are attention masks) with relative (ALiBi) position biases; stepping keeps a KV cache of ``window`` tokens.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GRUConfig, SSMConfig, TransformerConfig

# Each SSM layer kind: its module and class (imported lazily so that the other backbones work without them) and the
# ``SSMConfig`` fields it is built with, passed by name. The other fields are other layers' settings and are not
# passed; a field named here that the class does not take is an error naming it.
_SSM_LAYERS = {
    "mamba2": ("ssmrl.ssm.mamba2", "Mamba2", ("d_state", "expand", "headdim", "d_conv", "chunk_size", "backend")),
    "mamba": ("ssmrl.ssm.mamba", "Mamba", ("d_state", "expand", "d_conv", "backend")),
    "s4d": ("ssmrl.ssm.s4d", "S4D", ("d_state", "backend")),
    "s5": ("ssmrl.ssm.s5", "S5", ("d_state", "backend")),
}


def _first_or_zeros(first: torch.Tensor | None, shape: tuple[int, ...], device) -> torch.Tensor:
    if first is None:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    if tuple(first.shape) != tuple(shape):
        raise ValueError(f"first must have shape {tuple(shape)}, got {tuple(first.shape)}")
    return first.bool()


def _check_u(u: torch.Tensor, d_model: int, dims: int, name: str) -> None:
    if u.dim() != dims or u.shape[-1] != d_model:
        desc = "(B, L, d_model)" if dims == 3 else "(B, d_model)"
        raise ValueError(f"{name} must have shape {desc} with d_model={d_model}, got {tuple(u.shape)}")


# ---------------------------------------------------------------------------------------------- SSM


def ssm_layer_options(cfg: SSMConfig) -> dict[str, Any]:
    """The keyword arguments a layer of kind ``cfg.layer`` is built with: its ``SSMConfig`` fields (``_SSM_LAYERS``)."""
    if cfg.layer not in _SSM_LAYERS:
        raise ValueError(f"ssm.layer must be one of {tuple(_SSM_LAYERS)}, got {cfg.layer!r}")
    return {name: getattr(cfg, name) for name in _SSM_LAYERS[cfg.layer][2]}


def ssm_layer_factory(cfg: SSMConfig, d_model: int) -> Callable[[], nn.Module]:
    """A zero-argument constructor of one SSM layer of kind ``cfg.layer`` with :func:`ssm_layer_options`, passed as
    they are: an option the class does not take raises ``TypeError`` naming it when a layer is built."""
    options = ssm_layer_options(cfg)
    module_name, class_name, _ = _SSM_LAYERS[cfg.layer]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:  # pragma: no cover - only while the layer is missing
        raise ImportError(f"ssm.layer={cfg.layer!r} needs {module_name}.{class_name}: {e}") from e
    return lambda: cls(d_model, **options)


class S4WMBlock(nn.Module):
    """S4WM block: x + Linear(GELU(SSM(LN(x)))) twice, then x + MLP(LN(x)). State: [state1, state2].

    x: (B, L, d_model) -> (B, L, d_model); the block interface of :class:`ssmrl.ssm.blocks.SSMBlock`.
    """

    def __init__(self, make_layer: Callable[[], nn.Module], d_model: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList([make_layer(), make_layer()])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model), nn.LayerNorm(d_model)])
        self.outs = nn.ModuleList([nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)])
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))

    def _states(self, state):
        return [None, None] if state is None else list(state)

    def forward(self, x: torch.Tensor, first: torch.Tensor | None = None, state: Any = None):
        new = []
        for layer, norm, out, s in zip(self.layers, self.norms, self.outs, self._states(state)):
            y, s = layer(norm(x), first=first, state=s)
            x = x + out(F.gelu(y))
            new.append(s)
        return x + self.mlp(self.mlp_norm(x)), new

    def step(self, x_t: torch.Tensor, first_t: torch.Tensor | None, state: Any):
        new = []
        for layer, norm, out, s in zip(self.layers, self.norms, self.outs, self._states(state)):
            y, s = layer.step(norm(x_t), first_t, s)
            x_t = x_t + out(F.gelu(y))
            new.append(s)
        return x_t + self.mlp(self.mlp_norm(x_t)), new

    def initial_state(self, batch_size: int, device=None):
        return [layer.initial_state(batch_size, device=device) for layer in self.layers]


class SSMBackbone(nn.Module):
    """Stack of SSM layers. ``make_layer`` overrides the layer constructor (tests use a stand-in layer)."""

    def __init__(self, cfg: SSMConfig, d_model: int, make_layer: Callable[[], nn.Module] | None = None) -> None:
        super().__init__()
        from ssmrl.ssm.blocks import SSMBlock, SSMStack

        self.d_model = d_model
        make_layer = make_layer or ssm_layer_factory(cfg, d_model)
        if cfg.block == "prenorm":
            blocks = [SSMBlock(make_layer(), d_model, mlp_ratio=0.0, norm="rms") for _ in range(cfg.n_layers)]
            self.stack = SSMStack(blocks, final_norm="rms")
        elif cfg.block == "s4wm":
            blocks = [S4WMBlock(make_layer, d_model, cfg.mlp_ratio) for _ in range(cfg.n_layers)]
            self.stack = SSMStack(blocks, final_norm="layer")
        else:
            raise ValueError(f"ssm.block must be 'prenorm' or 's4wm', got {cfg.block!r}")

    def forward(self, u: torch.Tensor, first: torch.Tensor | None = None, state: Any = None):
        _check_u(u, self.d_model, 3, "u")
        return self.stack(u, first=first, state=state)

    def step(self, u_t: torch.Tensor, first_t: torch.Tensor | None, state: Any):
        _check_u(u_t, self.d_model, 2, "u_t")
        if state is None:
            state = self.initial_state(u_t.shape[0], u_t.device)
        return self.stack.step(u_t, first_t, state)

    def initial_state(self, batch_size: int, device=None):
        return self.stack.initial_state(batch_size, device=device)


# ---------------------------------------------------------------------------------------------- GRU


class GRUBackbone(nn.Module):
    """DreamerV3's GRU cell with LayerNorm: from concat(u_t, h_{t-1}) one Linear gives (reset, cand, update);
    h_t = upd * tanh(reset * cand) + (1 - upd) * h_{t-1} with upd = sigmoid(update - 1) (biased towards
    keeping the state). State: h (B, d_model), zeroed where ``first``."""

    def __init__(self, cfg: GRUConfig, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        pre: list[nn.Module] = []
        for _ in range(cfg.layers):
            pre += [nn.Linear(d_model, d_model, bias=False), nn.LayerNorm(d_model, eps=1e-6), nn.SiLU()]
        self.pre = nn.Sequential(*pre)
        self.gates = nn.Linear(2 * d_model, 3 * d_model, bias=False)
        self.norm = nn.LayerNorm(3 * d_model, eps=1e-6)

    def _cell(self, u_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.gates(torch.cat([self.pre(u_t), h], -1)))
        reset, cand, update = parts.chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h

    def step(self, u_t: torch.Tensor, first_t: torch.Tensor | None, state: torch.Tensor | None):
        _check_u(u_t, self.d_model, 2, "u_t")
        h = self.initial_state(u_t.shape[0], u_t.device) if state is None else state
        if first_t is not None:
            h = h * (~_first_or_zeros(first_t, (u_t.shape[0],), u_t.device)).to(h.dtype).unsqueeze(-1)
        h = self._cell(u_t, h)
        return h, h

    def forward(self, u: torch.Tensor, first: torch.Tensor | None = None, state: torch.Tensor | None = None):
        _check_u(u, self.d_model, 3, "u")
        first = _first_or_zeros(first, tuple(u.shape[:2]), u.device)
        outs = []
        # unbind/stack: indexing u[:, t] under autograd is much slower in backward on CPU
        # (docs/references.md#cpu-loops-under-autograd)
        for u_t, f_t in zip(u.unbind(1), first.unbind(1)):
            h_t, state = self.step(u_t, f_t, state)
            outs.append(h_t)
        return torch.stack(outs, 1), state

    def initial_state(self, batch_size: int, device=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.d_model, device=device)


# ---------------------------------------------------------------------------------------------- Transformer


@dataclass
class KVCache:
    """Transformer state: the last ``window`` tokens' keys/values per layer, k/v (n_layers, B, H, W, Dh);
    ``valid`` (B, W) marks tokens of the current episode. Tokens are in time order, the most recent last."""

    k: torch.Tensor
    v: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def cat(cls, caches: list["KVCache"]) -> "KVCache":
        """Join caches along the batch (dim 1 of k/v, dim 0 of valid)."""
        return cls(k=torch.cat([c.k for c in caches], 1), v=torch.cat([c.v for c in caches], 1),
                   valid=torch.cat([c.valid for c in caches], 0))


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes 2^(-8 h / H), h = 1..H (Press et al. 2022): head h adds -slope_h * distance to
    its attention logits, so attention depends on how far back a token is, never on its absolute position."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


class _TransformerLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))

    def forward(self, x, k_cache, v_cache, bias):
        """x (B, L, D); k/v_cache (B, H, C, Dh); bias (B, H, L, C + L) float (-inf where masked) -> x, k, v."""
        b, l, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, l, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        keys, values = torch.cat([k_cache.to(k.dtype), k], 2), torch.cat([v_cache.to(v.dtype), v], 2)
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias.to(q.dtype))
        x = x + self.proj(att.transpose(1, 2).reshape(b, l, d))
        return x + self.mlp(self.norm2(x)), k, v


class TransformerBackbone(nn.Module):
    """Causal transformer with episode-masked, windowed attention and a KV cache.

    Token t attends to tokens s with t - window < s <= t in the same episode (no token before the last
    ``first`` at or before t). Positions are relative: each head adds ``-slope * (t - s)`` to its logits (ALiBi),
    so a token sees the same thing whether it is step 5 of a training window or step 1,000 of an episode being
    acted in (absolute positions made training windows, which start at 0, disagree with acting). ``forward``
    with a carried cache equals ``step`` token by token, and costs O(L * (window + L)); ``step`` costs
    O(window) per token.
    """

    def __init__(self, cfg: TransformerConfig, d_model: int) -> None:
        super().__init__()
        if cfg.window < 1:
            raise ValueError(f"transformer.window must be >= 1, got {cfg.window}")
        self.d_model, self.window = d_model, cfg.window
        self.n_heads, self.head_dim = cfg.n_heads, d_model // cfg.n_heads
        self.layers = nn.ModuleList(_TransformerLayer(d_model, cfg.n_heads, cfg.mlp_ratio)
                                    for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)

    def initial_state(self, batch_size: int, device=None) -> KVCache:
        shape = (len(self.layers), batch_size, self.n_heads, self.window, self.head_dim)
        return KVCache(k=torch.zeros(shape, device=device), v=torch.zeros(shape, device=device),
                       valid=torch.zeros(batch_size, self.window, dtype=torch.bool, device=device))

    def forward(self, u: torch.Tensor, first: torch.Tensor | None = None, state: KVCache | None = None):
        _check_u(u, self.d_model, 3, "u")
        b, l, _ = u.shape
        dev = u.device
        first = _first_or_zeros(first, (b, l), dev)
        nl = len(self.layers)
        if state is None:  # no cache: attend only within the new tokens
            c = 0
            k_cache = u.new_zeros(nl, b, self.n_heads, 0, self.head_dim)
            v_cache = k_cache
            cache_valid = torch.zeros(b, 0, dtype=torch.bool, device=dev)
        else:
            if state.valid.shape != (b, self.window):
                raise ValueError(f"state.valid must have shape {(b, self.window)}, got {tuple(state.valid.shape)}")
            c = self.window
            k_cache, v_cache, cache_valid = state.k, state.v, state.valid
        idx = torch.arange(l, device=dev)
        seg = torch.cumsum(first.long(), 1)  # episode id of each new token; the cache is episode 0
        key_seg = torch.cat([torch.zeros(b, c, dtype=torch.long, device=dev), seg], 1)
        key_valid = torch.cat([cache_valid, torch.ones(b, l, dtype=torch.bool, device=dev)], 1)
        key_time = torch.cat([torch.arange(-c, 0, device=dev), idx])  # time of each key relative to u[:, 0]
        delta = idx.unsqueeze(1) - key_time.unsqueeze(0)  # (L, C + L)
        mask = (key_valid.unsqueeze(1) & (key_seg.unsqueeze(1) == seg.unsqueeze(2))
                & ((delta >= 0) & (delta < self.window)).unsqueeze(0))
        distance = -self.slopes[:, None, None] * delta.to(self.slopes.dtype)  # (H, L, C + L)
        bias = distance.unsqueeze(0).masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, H, L, C + L)
        x = u
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, k_cache[i], v_cache[i], bias)
            ks.append(torch.cat([k_cache[i].to(k.dtype), k], 2))
            vs.append(torch.cat([v_cache[i].to(v.dtype), v], 2))
        # new cache: the last `window` keys (left-padded when fewer), valid if in the last token's episode
        new_valid = key_valid & (key_seg == seg[:, -1:])
        k_all, v_all = torch.stack(ks), torch.stack(vs)
        total = c + l
        if total >= self.window:
            k_all, v_all = k_all[:, :, :, total - self.window:], v_all[:, :, :, total - self.window:]
            new_valid = new_valid[:, total - self.window:]
        else:
            pad = self.window - total
            k_all = F.pad(k_all, (0, 0, pad, 0))
            v_all = F.pad(v_all, (0, 0, pad, 0))
            new_valid = F.pad(new_valid, (pad, 0), value=False)
        return self.norm(x), KVCache(k=k_all, v=v_all, valid=new_valid)

    def step(self, u_t: torch.Tensor, first_t: torch.Tensor | None, state: KVCache | None):
        _check_u(u_t, self.d_model, 2, "u_t")
        if state is None:
            state = self.initial_state(u_t.shape[0], u_t.device)
        f = None if first_t is None else first_t.reshape(-1, 1)
        h, state = self.forward(u_t.unsqueeze(1), f, state)
        return h[:, 0], state


def make_backbone(kind: str, d_model: int, ssm: SSMConfig, gru: GRUConfig, transformer: TransformerConfig,
                  make_layer: Callable[[], nn.Module] | None = None) -> nn.Module:
    """Build the backbone named by ``kind`` (``ssm`` | ``gru`` | ``transformer``)."""
    if kind == "ssm":
        return SSMBackbone(ssm, d_model, make_layer)
    if kind == "gru":
        return GRUBackbone(gru, d_model)
    if kind == "transformer":
        return TransformerBackbone(transformer, d_model)
    raise ValueError(f"backbone must be 'ssm', 'gru' or 'transformer', got {kind!r}")
