"""The KV cache (notebook 05): keys and values of past tokens, kept so each new token is projected once.

Per layer, two preallocated buffers of shape (batch, n_kv_heads, max_len, head_dim): only the KV heads are stored,
never K/V repeated to the query heads, so an MQA cache is n_heads times smaller than an MHA one.

Slots vs positions. All rows of a batch write to the same *slots* (0 .. length-1); with left padding, a row's first
slots hold padding. The rotary *position* of a row's token counts only its real tokens (cumsum(attention_mask) - 1),
so the cache keeps, per row, which slots are real (``key_mask``) and the position its next token will get
(``next_pos``).
"""
from __future__ import annotations

import torch
from torch import nn

from .heads import check_int


class LayerKVCache(nn.Module):
    """One layer's static cache. ``update(start, k, v)`` writes slots [start, start+t) and returns K, V up to there."""

    def __init__(self, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None):
        super().__init__()
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start: int, k, v):
        """k, v: (batch, n_kv_heads, t, head_dim) for slots start..start+t-1. Returns views (b, n_kv, start+t, hd)."""
        end = start + k.shape[2]
        if k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]:
            raise ValueError(f"k has shape {tuple(k.shape)}; this cache holds (batch, n_kv_heads, *, head_dim) = "
                             f"{tuple(self.k.shape[:2])} + (*, {self.k.shape[3]})")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class ConcatLayerKVCache(nn.Module):
    """The naive growing cache (like Hugging Face's DynamicCache): torch.cat each step copies the whole cache, so the
    cost per token grows with the context. Here only to be measured against the static one in notebook 05."""

    def __init__(self, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None):
        super().__init__()
        self.k = self.v = None

    def update(self, start: int, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


class KVCache(nn.Module):
    """A whole model's cache: one layer cache per layer, plus the per-row bookkeeping shared by all layers."""

    def __init__(self, n_layers, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None,
                 growing: bool = False):
        super().__init__()
        for name, val in (("n_layers", n_layers), ("batch", batch), ("n_kv_heads", n_kv_heads),
                          ("max_len", max_len), ("head_dim", head_dim)):
            check_int(name, val)
        layer_cls = ConcatLayerKVCache if growing else LayerKVCache
        self.layers = nn.ModuleList(layer_cls(batch, n_kv_heads, max_len, head_dim, dtype, device)
                                    for _ in range(n_layers))
        self.batch, self.n_kv_heads, self.max_len, self.head_dim = batch, n_kv_heads, max_len, head_dim
        self.dtype = dtype
        self.register_buffer("key_mask", torch.zeros(batch, max_len, dtype=torch.bool, device=device),
                             persistent=False)
        self.register_buffer("next_pos", torch.zeros(batch, dtype=torch.long, device=device), persistent=False)
        self.length = 0  # slots filled (the same for every row)
        self.has_padding = False  # any slot so far that is padding? (lets decode skip the mask when not)

    @classmethod
    def for_model(cls, cfg, batch: int, max_len: int | None = None, dtype=None, device=None, growing=False):
        """A cache sized for a :class:`mqa_edu.model.ModelConfig`."""
        max_len = cfg.max_seq_len if max_len is None else max_len
        if max_len > cfg.max_seq_len:
            raise ValueError(f"max_len={max_len} exceeds the model's max_seq_len={cfg.max_seq_len}")
        return cls(cfg.n_layers, batch, cfg.n_kv_heads, max_len, cfg.head_dim, dtype or torch.float32, device,
                   growing)

    @property
    def nbytes(self) -> int:
        """Bytes held by the K and V buffers: 2 x n_layers x batch x n_kv_heads x max_len x head_dim x element size."""
        if isinstance(self.layers[0], ConcatLayerKVCache):
            return sum(t.numel() * t.element_size() for lc in self.layers for t in (lc.k, lc.v) if t is not None)
        return sum(lc.k.numel() * lc.k.element_size() + lc.v.numel() * lc.v.element_size() for lc in self.layers)

    def reset(self):
        """Forget every token (buffers are kept; they will be overwritten)."""
        self.truncate(0)

    def truncate(self, length: int):
        """Keep only the first ``length`` slots, as if nothing after them had been written (e.g. to time the same
        decode step again, or to drop rejected draft tokens). Per-row positions follow from the kept key_mask."""
        length = check_int("length", length, minimum=0)
        if length > self.length:
            raise ValueError(f"length must be <= the {self.length} filled slots, got {length}")
        self.key_mask[:, length:] = False
        self.next_pos.copy_(self.key_mask.long().sum(1))
        self.has_padding = not bool(self.key_mask[:, :length].all())
        self.length = length
        for lc in self.layers:
            if isinstance(lc, ConcatLayerKVCache) and lc.k is not None:
                lc.k, lc.v = (None, None) if length == 0 else (lc.k[:, :, :length], lc.v[:, :, :length])

    def reserve(self, attention_mask):
        """Claim the next slots for t new tokens of each row; return (start, positions (b, t), key_mask (b, end)).

        attention_mask: (batch, t) bool, True for real tokens. Raises before anything is written if the cache would
        overflow.
        """
        b, t = attention_mask.shape
        if b != self.batch:
            raise ValueError(f"this cache was built for batch={self.batch}, got a batch of {b}")
        start, end = self.length, self.length + t
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {self.length} cached + {t} new tokens > max_len={self.max_len}; "
                             f"build the cache with a larger max_len (or call reset())")
        positions = (self.next_pos[:, None] + attention_mask.long().cumsum(1) - 1).clamp(min=0)
        self.key_mask[:, start:end] = attention_mask
        self.next_pos += attention_mask.long().sum(1)
        self.has_padding = self.has_padding or not bool(attention_mask.all())
        self.length = end
        return start, positions, self.key_mask[:, :end]
