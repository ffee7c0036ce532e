"""Attention in plain NumPy, float64: the reference every faster version is checked against (notebooks 01-03).

Conventions: a boolean mask is True where a query MAY attend to a key. Shapes are written in comments as
``(batch, heads, seq, head_dim)``. A query row whose keys are all masked produces zeros (never NaN).
"""
from __future__ import annotations

import numpy as np

from .heads import HeadConfig, check_int


def naive_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)): the textbook formula. Overflows to inf/nan once scores pass ~709 in float64."""
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax: subtract the row maximum first (same result, exp never sees a large positive number).

    Rows that are entirely ``-inf`` (everything masked) give all zeros instead of 0/0 = nan.
    """
    x = np.asarray(x, dtype=np.float64)
    row_max = np.max(x, axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.exp(x - row_max)
    total = e.sum(axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def causal_mask(n_queries: int, n_keys: int | None = None) -> np.ndarray:
    """Boolean ``(n_queries, n_keys)``: query i may see key j when j <= i + (n_keys - n_queries).

    With ``n_keys > n_queries`` the queries are the LAST ``n_queries`` positions (decoding after a cache).
    """
    n_queries = check_int("n_queries", n_queries)
    n_keys = n_queries if n_keys is None else check_int("n_keys", n_keys)
    if n_keys < n_queries:
        raise ValueError(f"n_keys must be >= n_queries={n_queries}, got {n_keys}")
    offset = n_keys - n_queries
    return np.arange(n_keys)[None, :] <= np.arange(n_queries)[:, None] + offset


def scaled_dot_product_attention(q, k, v, mask=None, return_weights: bool = False):
    """softmax(q k^T / sqrt(head_dim)) v over the last two axes.

    q: (..., n_q, head_dim); k, v: (..., n_k, head_dim); mask: bool broadcastable to (..., n_q, n_k).
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"expected q (..., n_q, d), k (..., n_k, d), v (..., n_k, d_v); got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


def init_attention_params(cfg: HeadConfig, bias: bool = False, seed: int = 0) -> dict:
    """Random projections in the ``x @ W`` layout: w_q (d_model, n_heads*head_dim), w_k and w_v
    (d_model, n_kv_heads*head_dim), w_o (n_heads*head_dim, d_model); optional b_q, b_k, b_v, b_o."""
    rng = np.random.default_rng(seed)
    d = cfg.d_model
    shapes = {"w_q": (d, cfg.q_width), "w_k": (d, cfg.kv_width), "w_v": (d, cfg.kv_width), "w_o": (cfg.q_width, d)}
    params = {name: rng.normal(0.0, shape[0] ** -0.5, size=shape) for name, shape in shapes.items()}
    if bias:
        for name, width in (("b_q", cfg.q_width), ("b_k", cfg.kv_width), ("b_v", cfg.kv_width), ("b_o", d)):
            params[name] = rng.normal(0.0, 0.1, size=width)
    return params


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """(batch, seq, n_heads*head_dim) -> (batch, n_heads, seq, head_dim)."""
    b, t, width = x.shape
    return x.reshape(b, t, n_heads, width // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(batch, n_heads, seq, head_dim) -> (batch, seq, n_heads*head_dim): the inverse of split_heads."""
    b, h, t, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * hd)


def repeat_kv(x: np.ndarray, group_size: int) -> np.ndarray:
    """(batch, n_kv_heads, seq, hd) -> (batch, n_kv_heads*group_size, seq, hd) in repeat_interleave order.

    Used only by this reference, which favours obviousness over speed; the torch version never does this.
    """
    return np.repeat(x, group_size, axis=1)


def check_params(params: dict, cfg: HeadConfig) -> None:
    """Raise a ValueError naming the weight whose shape does not fit ``cfg`` (x @ W layout)."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of weight arrays (see init_attention_params), got "
                        f"{type(params).__name__}")
    d = cfg.d_model
    expected = {"w_q": (d, cfg.q_width), "w_k": (d, cfg.kv_width), "w_v": (d, cfg.kv_width),
                "w_o": (cfg.q_width, d), "b_q": (cfg.q_width,), "b_k": (cfg.kv_width,), "b_v": (cfg.kv_width,),
                "b_o": (d,)}
    for name, shape in expected.items():
        if name not in params:
            if name.startswith("w_"):
                raise ValueError(f"params has no {name!r}; expected shape {shape}")
            continue
        got = np.shape(params[name])
        if got != shape:
            raise ValueError(
                f"params[{name!r}] has shape {got}, expected {shape} for d_model={d}, n_heads={cfg.n_heads}, "
                f"n_kv_heads={cfg.n_kv_heads}, head_dim={cfg.head_dim}: were the weights built for another "
                f"configuration?")


def grouped_query_attention(x, params: dict, cfg: HeadConfig, causal: bool = True, attention_mask=None,
                            return_weights: bool = False):
    """Multi-head attention with ``cfg.n_kv_heads`` shared K/V heads (MHA, GQA and MQA in one function).

    x: (batch, seq, d_model) or (seq, d_model). attention_mask: optional (batch, seq) of 1/True for real tokens and
    0/False for padding (the Hugging Face convention). Returns (batch, seq, d_model) [and weights
    (batch, n_heads, seq, seq)].
    """
    x = np.asarray(x, dtype=np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != cfg.d_model:
        raise ValueError(f"x must have shape (batch, seq, d_model={cfg.d_model}) or (seq, d_model); got {x.shape}")
    check_params(params, cfg)
    b, t, _ = x.shape

    def proj(name):
        y = x @ params["w_" + name]
        return y + params["b_" + name] if "b_" + name in params else y

    q = split_heads(proj("q"), cfg.n_heads)  # (b, n_heads, t, hd)
    k = split_heads(proj("k"), cfg.n_kv_heads)  # (b, n_kv_heads, t, hd)
    v = split_heads(proj("v"), cfg.n_kv_heads)
    k, v = repeat_kv(k, cfg.group_size), repeat_kv(v, cfg.group_size)

    mask = np.ones((b, 1, t, t), dtype=bool)
    if causal:
        mask &= causal_mask(t)
    if attention_mask is not None:
        am = np.asarray(attention_mask)
        if am.shape != (b, t):
            raise ValueError(f"attention_mask must have shape (batch, seq) = {(b, t)}, got {am.shape}")
        mask &= am.astype(bool)[:, None, None, :]
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    y = merge_heads(out) @ params["w_o"]
    if "b_o" in params:
        y = y + params["b_o"]
    y = y[0] if unbatched else y
    return (y, weights) if return_weights else y


def multi_head_attention(x, params: dict, cfg: HeadConfig, **kwargs):
    """MHA is grouped-query attention with one KV head per query head."""
    if cfg.n_kv_heads != cfg.n_heads:
        raise ValueError(f"multi_head_attention needs n_kv_heads == n_heads, got {cfg.n_kv_heads} != {cfg.n_heads}")
    return grouped_query_attention(x, params, cfg, **kwargs)
