"""Beyond MQA (notebook 11): multi-head latent attention (MLA, DeepSeek-V2) and what cross-layer sharing (CLA) asks
of a cache.

MLA caches, per token and layer, one compressed latent ``c`` of ``kv_lora_rank`` numbers and one rotary key of
``rope_dim`` numbers shared by every head: ``kv_lora_rank + rope_dim`` numbers, whatever n_heads is. Every head's key
and value are recomputed from the latent by up-projections (``k_up`` = W_UK, ``v_up`` = W_UV):

    score(head h) = (q_nope_h . (W_UK_h c)  +  q_rope_h . k_rope) / sqrt(head_dim + rope_dim)
    out_h         = sum over keys of p_h * (W_UV_h c)

Two ways to run it, equal up to rounding (tested in float64):
- ``naive``: up-project K and V from the cached latents at every step (the cache is small, the step is not);
- ``absorbed``: fold W_UK into the query (q_lat_h = W_UK_hᵀ q_nope_h) and W_UV into the output, so attention runs
  over the latents directly: every head reads the same (length, kv_lora_rank) latent, the K/V bytes of MQA with a
  wide head.

Its cache is ``kv_cache.LatentLayerCache``. Simplifications against DeepSeek-V2 (said here so that nobody mistakes
this for its code): no low-rank query
(``q_lora_rank``), one ``head_dim`` for the no-rope part of q/k and for v, and the rotary tables of the course
(``rotary.py``, the halves layout).
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import make_mask, masked_softmax
from .heads import check_int
from .rotary import apply_rotary


def check_latent(kv_lora_rank: int, rope_dim: int) -> tuple[int, int]:
    """The two numbers MLA caches per token and layer: a latent of kv_lora_rank and a rotary key of rope_dim (even)."""
    kv_lora_rank, rope_dim = check_int("kv_lora_rank", kv_lora_rank), check_int("rope_dim", rope_dim)
    if rope_dim % 2:
        raise ValueError(f"rope_dim must be even for rotary embeddings, got {rope_dim}")
    return kv_lora_rank, rope_dim


class LatentAttention(nn.Module):
    """Causal multi-head latent attention. Same call as GroupedQueryAttention inside the model: ``rope`` rotates the
    rotary parts, ``cache`` is a LatentLayerCache, ``mask`` the model's prebuilt mask. ``absorbed`` picks the path."""

    computes_kv = True

    def __init__(self, d_model: int, n_heads: int, head_dim: int, kv_lora_rank: int, rope_dim: int,
                 absorbed: bool = False, device=None, dtype=None):
        super().__init__()
        self.d_model, self.n_heads, self.head_dim = check_int("d_model", d_model), check_int("n_heads", n_heads), \
            check_int("head_dim", head_dim)
        self.kv_lora_rank, self.rope_dim = check_latent(kv_lora_rank, rope_dim)
        self.absorbed = absorbed
        kw = {"bias": False, "device": device, "dtype": dtype}
        self.q_proj = nn.Linear(d_model, n_heads * (head_dim + rope_dim), **kw)
        self.kv_down = nn.Linear(d_model, kv_lora_rank, **kw)  # W_DKV: what is cached
        self.kv_norm = nn.RMSNorm(kv_lora_rank, eps=1e-6, device=device, dtype=dtype)  # DeepSeek's eps
        self.k_rope_proj = nn.Linear(d_model, rope_dim, **kw)  # one rotary key for all heads (cached)
        self.k_up = nn.Linear(kv_lora_rank, n_heads * head_dim, **kw)  # W_UK
        self.v_up = nn.Linear(kv_lora_rank, n_heads * head_dim, **kw)  # W_UV
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, **kw)

    def latents(self, x, rope):
        """What a token leaves in the cache: c (b, t, kv_lora_rank) and the rotated shared key (b, t, rope_dim)."""
        k_rope = self.k_rope_proj(x)[:, None]  # (b, 1, t, rope_dim): one "head"
        if rope is not None:
            k_rope = apply_rotary(k_rope, *rope)
        return self.kv_norm(self.kv_down(x)), k_rope[:, 0]

    def queries(self, x, rope):
        """q_nope (b, h, t, head_dim) and the rotated q_rope (b, h, t, rope_dim)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim + self.rope_dim).transpose(1, 2)
        q_nope, q_rope = q.split([self.head_dim, self.rope_dim], dim=-1)
        return q_nope, (apply_rotary(q_rope, *rope) if rope is not None else q_rope)

    def attend(self, q_nope, q_rope, c, k_rope, mask, absorbed: bool):
        """Attention of the queries over cached latents c (b, L, r) and rotary keys (b, L, rope_dim); -> (b, t, d)."""
        b, h, t, hd = q_nope.shape
        scale = (hd + self.rope_dim) ** -0.5
        w_uk = self.k_up.weight.view(h, hd, self.kv_lora_rank)  # per head: latent -> key
        w_uv = self.v_up.weight.view(h, hd, self.kv_lora_rank)  # per head: latent -> value
        rope_scores = q_rope @ k_rope[:, None].transpose(-1, -2)  # (b, h, t, L): the shared key, all heads
        if absorbed:  # W_UK folded into the query, W_UV into the output: the latents are read as they are
            q_lat = q_nope @ w_uk  # (b, h, t, r)
            p = masked_softmax((q_lat @ c[:, None].transpose(-1, -2) + rope_scores) * scale, mask)
            out = (p @ c[:, None]) @ w_uv.transpose(-1, -2)  # (b, h, t, r) -> (b, h, t, hd)
        else:  # up-project every cached latent to every head's key and value
            k = torch.einsum("blr,hdr->bhld", c, w_uk)
            v = torch.einsum("blr,hdr->bhld", c, w_uv)
            p = masked_softmax((q_nope @ k.transpose(-1, -2) + rope_scores) * scale, mask)
            out = p @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * hd))

    def forward(self, x, *, rope=None, cache=None, start: int = 0, mask=None, shared_kv=None,
                kv_out: list | None = None):
        """x (b, t, d_model) -> (b, t, d_model); ``kv_out``, a list, receives the (latents, rotary keys) it read."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be a tensor of shape (batch, seq, d_model={self.d_model}), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        q_nope, q_rope = self.queries(x, rope)
        if shared_kv is None:
            c, k_rope = self.latents(x, rope)
            if cache is not None:
                c, k_rope = cache.update(start, c, k_rope)
            elif start:
                raise ValueError(f"start={start} needs a cache")
        else:
            c, k_rope = shared_kv
        if mask is None and cache is None and shared_kv is None:  # on its own: causal over these tokens
            mask = make_mask(x.shape[1], x.shape[1], device=x.device)
        out = self.attend(q_nope, q_rope, c, k_rope, mask, self.absorbed)
        if kv_out is not None:
            kv_out.append((c, k_rope))
        return out

