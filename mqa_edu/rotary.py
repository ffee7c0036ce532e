"""Rotary position embeddings (notebook 05): queries and keys are rotated by an angle that grows with their position,
so the score q·k depends only on how far apart the two tokens are.

"Rotate half" layout (Llama, Hugging Face): dimensions i and i + head_dim/2 form one rotating pair. Values are never
rotated: V carries content, not position.
"""
from __future__ import annotations

import torch
from torch import nn


class Rotary(nn.Module):
    """Precomputed cos/sin tables for positions 0 .. max_seq_len-1."""

    def __init__(self, head_dim, max_seq_len, theta=10000.0, device=None):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim)
        freqs = torch.outer(torch.arange(max_seq_len, device=device).float(), inv_freq)  # (max_seq_len, hd/2)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, positions, dtype):
        """positions (batch, t) -> cos, sin of shape (batch, 1, t, head_dim), broadcast over heads."""
        return self.cos[positions].to(dtype)[:, None], self.sin[positions].to(dtype)[:, None]


def apply_rotary(x, cos, sin):
    """x (batch, heads, t, head_dim) rotated pairwise by the angles of its positions."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
