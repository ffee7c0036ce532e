"""The KV cache (notebook 05): keys and values of past tokens, kept so each new token is projected once.

Per layer, two preallocated buffers of shape (batch, n_kv_heads, max_len, head_dim): only the KV heads are stored,
never K/V repeated to the query heads, so an MQA cache is n_heads times smaller than an MHA one. How many bytes that
is for any model is :func:`mqa_edu.heads.kv_cache_elements` times the element size; ``nbytes`` here measures the
buffers actually allocated, and the tests check that the two agree.

The cache may be stored in a lower precision than the model computes in (fp16, bf16, fp8): K/V are cast on write
and read back in the compute dtype. That halves (fp16/bf16) or quarters (fp8) the bytes; notebook 05 measures what it
costs in logit error.

Slots vs positions. All rows of a batch write to the same *slots* (0 .. length-1); with left padding, a row's first
slots hold padding. The rotary *position* of a row's token counts only its real tokens (cumsum(attention_mask) - 1),
so the cache keeps, per row, which slots are real (``key_mask``) and the position its next token will get
(``next_pos``).
"""
from __future__ import annotations

import torch
from torch import nn

from .heads import check_int
from .latent import check_latent

# Storage dtypes a cache accepts. fp8 is stored without a scale (values are saturated to its finite range, +-448 for
# e4m3), which is fine for activations of the size K and V have; production fp8 caches add a per-tensor scale.
CACHE_DTYPES = tuple(d for d in (torch.float64, torch.float32, torch.bfloat16, torch.float16,
                                 getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None))
                     if d is not None)


def check_cache_dtype(dtype) -> torch.dtype:
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"dtype must be one of {[str(d) for d in CACHE_DTYPES]} (the cache's storage dtype), "
                         f"got {dtype!r}")
    return dtype


def _store(x, dtype):
    """x cast to the storage dtype; fp8 saturates instead of turning large values into NaN."""
    if x.dtype == dtype:
        return x
    if dtype.itemsize == 1:
        limit = torch.finfo(dtype).max
        x = x.clamp(-limit, limit)
    return x.to(dtype)


class LayerKVCache(nn.Module):
    """One layer's static cache. ``update(start, k, v)`` writes slots [start, start+t) and returns K, V up to there."""

    def __init__(self, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None):
        super().__init__()
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start: int, k, v):
        """k, v: (batch, n_kv_heads, t, head_dim) for slots start..start+t-1. Returns K, V (b, n_kv, start+t, hd)
        in k's dtype: views of the buffers when the dtypes agree, a cast copy when the cache is stored narrower.
        ``start`` may also be a long tensor of t slot indices (the compiled static step): then the WHOLE buffers are
        returned, max_len slots, so that the shapes never change; the model's mask hides the slots not yet filled."""
        if k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]:
            raise ValueError(f"k has shape {tuple(k.shape)}; this cache holds (batch, n_kv_heads, *, head_dim) = "
                             f"{tuple(self.k.shape[:2])} + (*, {self.k.shape[3]})")
        if isinstance(start, torch.Tensor):  # the static step (notebook 12): slot(s) as a tensor, whole buffers out
            self.k.index_copy_(2, start, _store(k, self.k.dtype))
            self.v.index_copy_(2, start, _store(v, self.v.dtype))
            return self.k.to(k.dtype), self.v.to(v.dtype)
        end = start + k.shape[2]
        self.k[:, :, start:end] = _store(k, self.k.dtype)
        self.v[:, :, start:end] = _store(v, self.v.dtype)
        return self.k[:, :, :end].to(k.dtype), self.v[:, :, :end].to(v.dtype)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def truncate(self, length: int):
        """Slots from ``length`` on are simply overwritten by the next update: nothing to do."""


class LatentLayerCache(nn.Module):
    """One MLA layer's static cache (notebook 11, latent.py): the latents (batch, max_len, kv_lora_rank) and the
    shared rotary keys (batch, max_len, rope_dim). ``update(start, c, k_rope)`` writes slots [start, start+t) and
    returns both up to there, like LayerKVCache.update does for K and V (and stores narrower dtypes the same way)."""

    def __init__(self, batch, kv_lora_rank, rope_dim, max_len, dtype=torch.float32, device=None):
        super().__init__()
        self.register_buffer("c", torch.zeros(batch, max_len, kv_lora_rank, dtype=dtype, device=device),
                             persistent=False)
        self.register_buffer("k_rope", torch.zeros(batch, max_len, rope_dim, dtype=dtype, device=device),
                             persistent=False)

    def update(self, start: int, c, k_rope):
        if isinstance(start, torch.Tensor):  # the static step, as in LayerKVCache.update
            self.c.index_copy_(1, start, _store(c, self.c.dtype))
            self.k_rope.index_copy_(1, start, _store(k_rope, self.k_rope.dtype))
            return self.c.to(c.dtype), self.k_rope.to(k_rope.dtype)
        end = start + c.shape[1]
        if c.shape[0] != self.c.shape[0] or c.shape[2] != self.c.shape[2] or k_rope.shape[2] != self.k_rope.shape[2]:
            raise ValueError(f"c has shape {tuple(c.shape)} and k_rope {tuple(k_rope.shape)}; this cache holds "
                             f"(batch={self.c.shape[0]}, *, kv_lora_rank={self.c.shape[2]}) and (*, *, rope_dim="
                             f"{self.k_rope.shape[2]})")
        self.c[:, start:end] = _store(c, self.c.dtype)
        self.k_rope[:, start:end] = _store(k_rope, self.k_rope.dtype)
        return self.c[:, :end].to(c.dtype), self.k_rope[:, :end].to(k_rope.dtype)

    @property
    def nbytes(self) -> int:
        return self.c.nbytes + self.k_rope.nbytes

    def truncate(self, length: int):
        """Slots from ``length`` on are overwritten by the next update: nothing to do."""


class ConcatLayerKVCache(nn.Module):
    """The naive growing cache (like Hugging Face's DynamicCache): torch.cat each step copies the whole cache, so the
    cost per token grows with the context. Here only to be measured against the static one in notebook 05."""

    def __init__(self, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None):
        super().__init__()
        self.dtype = dtype
        self.k = self.v = None

    def update(self, start: int, k, v):
        k_new, v_new = _store(k, self.dtype), _store(v, self.dtype)
        self.k = k_new if self.k is None else torch.cat([self.k, k_new], dim=2)
        self.v = v_new if self.v is None else torch.cat([self.v, v_new], dim=2)
        return self.k.to(k.dtype), self.v.to(v.dtype)

    @property
    def nbytes(self) -> int:
        return 0 if self.k is None else self.k.nbytes + self.v.nbytes

    def truncate(self, length: int):
        if self.k is not None:
            self.k, self.v = (None, None) if length == 0 else (self.k[:, :, :length], self.v[:, :, :length])


class KVCache(nn.Module):
    """A whole model's cache: one layer cache per layer, plus the per-row bookkeeping shared by all layers."""

    def __init__(self, n_layers, batch, n_kv_heads, max_len, head_dim, dtype=torch.float32, device=None,
                 growing: bool = False, latent: tuple | None = None):
        """``n_layers``: the layers that cache K/V (with cross-layer attention, fewer than the model has).
        ``latent`` = (kv_lora_rank, rope_dim): an MLA cache, one latent and one rotary key per token and layer."""
        super().__init__()
        for name, val in (("n_layers", n_layers), ("batch", batch), ("n_kv_heads", n_kv_heads),
                          ("max_len", max_len), ("head_dim", head_dim)):
            check_int(name, val)
        self.dtype = check_cache_dtype(dtype)
        if latent is not None:
            if growing:
                raise ValueError("growing=True is the naive K/V cache of notebook 05; an MLA cache is static")
            rank, rope_dim = check_latent(*latent)
            self.layers = nn.ModuleList(LatentLayerCache(batch, rank, rope_dim, max_len, dtype, device)
                                        for _ in range(n_layers))
        else:
            layer_cls = ConcatLayerKVCache if growing else LayerKVCache
            self.layers = nn.ModuleList(layer_cls(batch, n_kv_heads, max_len, head_dim, dtype, device)
                                        for _ in range(n_layers))
        self.latent = None if latent is None else (rank, rope_dim)
        self.batch, self.n_kv_heads, self.max_len, self.head_dim = batch, n_kv_heads, max_len, head_dim
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
        return cls(cfg.n_kv_layers, batch, cfg.n_kv_heads, max_len, cfg.head_dim, dtype or torch.float32, device,
                   growing, cfg.latent)

    @property
    def device(self):
        return self.key_mask.device

    @property
    def nbytes(self) -> int:
        """Bytes held by the K and V buffers of every layer (measured from the tensors)."""
        return sum(lc.nbytes for lc in self.layers)

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
            lc.truncate(length)

    def check_fits(self, cfg):
        """Raise unless this cache was built for a model of configuration ``cfg``."""
        latent, layers = cfg.latent, cfg.n_kv_layers
        if self.n_kv_heads != cfg.n_kv_heads or self.head_dim != cfg.head_dim or len(self.layers) != layers \
                or self.latent != latent:
            raise ValueError(f"this cache was built for another model configuration: it holds n_layers="
                             f"{len(self.layers)}, n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, latent="
                             f"{self.latent}; the model caches n_layers={layers}, n_kv_heads={cfg.n_kv_heads}, "
                             f"head_dim={cfg.head_dim}, latent={latent}")

    def reserve(self, attention_mask):
        """Claim the next slots for t new tokens of each row; return (start, positions (b, t), key_mask (b, end)).

        attention_mask: (batch, t) bool, True for real tokens. Every check runs before anything is written, so a
        rejected call leaves the cache as it was.
        """
        b, t = attention_mask.shape
        if b != self.batch:
            raise ValueError(f"this cache was built for batch={self.batch}, got a batch of {b}")
        if attention_mask.device != self.device:
            raise ValueError(f"the cache is on {self.device} but the tokens are on {attention_mask.device}: build "
                             f"the cache with device= the model's device")
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
