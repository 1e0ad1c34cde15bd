"""``nn.MultiheadAttention`` on crossbars: projections through :class:`AnalogLayer`, attention exact.

The input projection (``<name>.in_proj``: the packed ``3E x E`` matrix, or ``q_proj``/``k_proj``/``v_proj``
when key and value dimensions differ) and the output projection (``<name>.out_proj``) are weights fixed
during inference, so they compute through their crossbars; QK^T, the mask, softmax and AV multiply two
activations and run digitally, exactly (float), as the workload puts them on the digital unit
(``docs/simulator.md``, "What goes where"). The arithmetic follows
``torch.nn.functional.multi_head_attention_forward`` in eval mode (no dropout): queries scaled by
``1/sqrt(head_dim)``, boolean masks ``True`` = not allowed, float masks added, ``bias_k``/``bias_v`` and
``add_zero_attn`` appended to the keys and values.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812

from rnc.simulator.analog_layers import AnalogLayer
from rnc.simulator.hardware import HardwareConfig


class AnalogMultiheadAttention(nn.Module):
    """An eval-mode ``nn.MultiheadAttention`` whose projections are :class:`AnalogLayer` s (same call signature)."""

    def __init__(self, name: str, mha: nn.MultiheadAttention, hw: HardwareConfig, *, seed: int) -> None:
        super().__init__()
        self.name = name
        self.embed_dim, self.num_heads, self.batch_first = mha.embed_dim, mha.num_heads, mha.batch_first
        self.head_dim = mha.embed_dim // mha.num_heads
        self.packed = mha._qkv_same_embed_dim
        device = mha.out_proj.weight.device
        if self.packed:
            linear = _linear(mha.in_proj_weight, mha.in_proj_bias)
            self.in_proj = AnalogLayer(f"{name}.in_proj", linear, hw, seed=seed).to(device)
        else:
            bias = mha.in_proj_bias
            parts = (bias.chunk(3) if bias is not None else (None, None, None))
            for part, weight, b in zip(("q_proj", "k_proj", "v_proj"),
                                       (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight), parts, strict=True):
                setattr(self, part, AnalogLayer(f"{name}.{part}", _linear(weight, b), hw, seed=seed).to(device))
        self.out_proj = AnalogLayer(f"{name}.out_proj", mha.out_proj, hw, seed=seed).to(device)
        self.bias_k = None if mha.bias_k is None else mha.bias_k.detach().clone()
        self.bias_v = None if mha.bias_v is None else mha.bias_v.detach().clone()
        self.add_zero_attn = mha.add_zero_attn

    def _project(self, query, key, value):
        e = self.embed_dim
        if not self.packed:
            return self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if query is key and key is value:
            return self.in_proj(query).split(e, dim=-1)
        q = self.in_proj(query)[..., :e]
        if key is value:
            k, v = self.in_proj(key)[..., e:].split(e, dim=-1)
            return q, k, v
        return q, self.in_proj(key)[..., e:2 * e], self.in_proj(value)[..., 2 * e:]

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            same_kv = key is value
            same = query is key and same_kv
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
            if same:
                key = value = query
            elif same_kv:
                value = key
        q, k, v = self._project(query, key, value)  # (L, N, E), (S, N, E)
        seq_q, batch, _ = q.shape
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.to(k.dtype).repeat(1, batch, 1)])
            v = torch.cat([v, self.bias_v.to(v.dtype).repeat(1, batch, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        heads, d = self.num_heads, self.head_dim
        q = q.reshape(seq_q, batch * heads, d).transpose(0, 1)
        k = k.reshape(k.shape[0], batch * heads, d).transpose(0, 1)
        v = v.reshape(v.shape[0], batch * heads, d).transpose(0, 1)
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(batch * heads, 1, d)], dim=1)
            v = torch.cat([v, v.new_zeros(batch * heads, 1, d)], dim=1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        scores = torch.bmm(q * (1.0 / math.sqrt(d)), k.transpose(1, 2))  # (N*h, L, S)
        scores = scores + self._mask(attn_mask, key_padding_mask, is_causal, scores, batch)
        weights = torch.softmax(scores, dim=-1)
        out = torch.bmm(weights, v).transpose(0, 1).reshape(seq_q, batch, self.embed_dim)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = weights.view(batch, heads, seq_q, -1)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, (weights.squeeze(0) if unbatched else weights)

    def _mask(self, attn_mask, key_padding_mask, is_causal, scores, batch) -> torch.Tensor | float:
        """The additive mask ``(N*h, L, S)`` (0 where allowed, -inf where not)."""
        total: torch.Tensor | float = 0.0
        seq_q, seq_k = scores.shape[-2:]
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(seq_q, seq_k, dtype=torch.bool, device=scores.device).triu(1)
        for mask, shape in ((attn_mask, None), (key_padding_mask, (batch, 1, 1, seq_k))):
            if mask is None:
                continue
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill(
                    mask, float("-inf"))
            if shape is not None:  # key padding: per sample, every head and query
                mask = mask.view(shape).expand(batch, self.num_heads, 1, seq_k).reshape(-1, 1, seq_k)
            total = total + mask.to(scores.dtype)
        return total


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A plain ``nn.Linear`` holding ``weight`` (out, in) and ``bias``, to build an :class:`AnalogLayer`."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight.detach())
    if bias is not None:
        linear.bias = nn.Parameter(bias.detach())
    return linear
