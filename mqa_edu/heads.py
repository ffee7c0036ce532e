"""Query heads, KV heads and what they cost.

Everything here is plain Python (no NumPy, no torch) so it imports instantly and both the NumPy and the torch
implementations, the sizing code and the graded checks can share one definition of the words:

- ``n_heads``: query heads; ``n_kv_heads``: key/value heads; ``group_size = n_heads // n_kv_heads``.
- ``head_dim``: width of one head. Usually ``d_model // n_heads``, but real models (Gemma, Qwen3) set it explicitly.
- MHA: ``n_kv_heads == n_heads``; GQA: ``1 < n_kv_heads < n_heads``; MQA: ``n_kv_heads == 1``.
- Query head ``h`` reads KV head ``h // group_size`` (the ``repeat_interleave`` order).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral


def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise a TypeError/ValueError that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def divisors(n: int) -> list[int]:
    """All valid ``n_kv_heads`` for ``n`` query heads: the divisors of n, from MQA (1) to MHA (n)."""
    n = check_int("n_heads", n)
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class HeadConfig:
    """The shape of one attention layer. Construct it to validate a configuration."""

    d_model: int
    n_heads: int
    n_kv_heads: int | None = None  # None means MHA
    head_dim: int | None = None  # None means d_model // n_heads

    def __post_init__(self):
        check_int("d_model", self.d_model)
        check_int("n_heads", self.n_heads)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        check_int("n_kv_heads", self.n_kv_heads)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads must divide n_heads={self.n_heads}; allowed values are {divisors(self.n_heads)}, "
                f"got n_kv_heads={self.n_kv_heads}")
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: pass head_dim explicitly "
                    f"or choose n_heads from {divisors(self.d_model)}")
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        check_int("head_dim", self.head_dim)

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv_heads

    @property
    def kind(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else f"GQA-{self.n_kv_heads}"

    @property
    def q_width(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.head_dim

    def kv_head_of(self, query_head: int) -> int:
        return kv_head_of(query_head, self.n_heads, self.n_kv_heads)


def kv_head_of(query_head: int, n_heads: int, n_kv_heads: int) -> int:
    """Which KV head query head ``query_head`` reads: ``query_head // group_size``.

    Neighbouring query heads share a KV head (heads 0..g-1 -> KV 0, g..2g-1 -> KV 1, ...). This is the order of
    ``torch.repeat_interleave`` and of ``scaled_dot_product_attention(enable_gqa=True)``; ``Tensor.repeat`` (tile
    order, ``query_head % n_kv_heads``) pairs the wrong heads.
    """
    cfg = HeadConfig(d_model=n_heads, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=1)
    query_head = check_int("query_head", query_head, minimum=0)
    if query_head >= n_heads:
        raise ValueError(f"query_head must be in [0, {n_heads - 1}], got {query_head}")
    return query_head // cfg.group_size


def head_mapping(n_heads: int, n_kv_heads: int) -> list[int]:
    """``[kv_head_of(h) for h in range(n_heads)]``."""
    return [kv_head_of(h, n_heads, n_kv_heads) for h in range(n_heads)]


# ---------------------------------------------------------------------------------------------------------------
# Accounting. One layer unless n_layers says otherwise. A multiply-add counts as 2 FLOPs.
# ---------------------------------------------------------------------------------------------------------------

def param_count(cfg: HeadConfig, bias: bool = False) -> dict:
    """Parameters of the four projections W_q, W_k, W_v, W_o (and their biases)."""
    d, q, kv = cfg.d_model, cfg.q_width, cfg.kv_width
    counts = {"q": d * q + (q if bias else 0), "k": d * kv + (kv if bias else 0),
              "v": d * kv + (kv if bias else 0), "o": q * d + (d if bias else 0)}
    counts["total"] = sum(counts.values())
    return counts


def forward_flops(cfg: HeadConfig, seq_len: int, kv_len: int | None = None, batch: int = 1) -> dict:
    """FLOPs of one attention layer's forward pass for ``seq_len`` new query tokens attending to ``kv_len`` keys.

    ``kv_len`` defaults to ``seq_len`` (prefill); a decode step is ``seq_len=1, kv_len=<cache length>``.
    The score and value terms count every (query, key) pair (no causal discount), and they depend on ``n_heads``,
    not ``n_kv_heads``: sharing K/V saves projection work and memory traffic, never score arithmetic.
    """
    seq_len = check_int("seq_len", seq_len)
    kv_len = seq_len if kv_len is None else check_int("kv_len", kv_len)
    batch = check_int("batch", batch)
    d, hd = cfg.d_model, cfg.head_dim
    flops = {
        "q_proj": 2 * batch * seq_len * d * cfg.q_width,
        "kv_proj": 2 * 2 * batch * seq_len * d * cfg.kv_width,  # only the new tokens are projected
        "scores": 2 * batch * cfg.n_heads * seq_len * kv_len * hd,  # Q K^T
        "values": 2 * batch * cfg.n_heads * seq_len * kv_len * hd,  # P V
        "o_proj": 2 * batch * seq_len * cfg.q_width * d,
    }
    flops["projections"] = flops["q_proj"] + flops["kv_proj"] + flops["o_proj"]
    flops["attention"] = flops["scores"] + flops["values"]
    flops["total"] = flops["projections"] + flops["attention"]
    return flops


def kv_cache_elements(n_kv_heads: int, head_dim: int, tokens: int = 1, batch: int = 1, n_layers: int = 1,
                      latent: int | None = None) -> int:
    """Numbers a KV cache holds: K and V (the 2), for each layer, KV head, head dimension, token and sequence.

    THE formula of the course: sizing (bytes = this x bytes per element), the benchmarks' bytes read per step and
    the cache's measured ``nbytes`` all come back to it. Query heads do not appear: only the n_kv_heads are cached.
    ``n_layers`` counts the layers that cache: with cross-layer attention (CLA) fewer than the model has.
    ``latent`` (MLA, notebook 11): the numbers one token leaves per layer, kv_lora_rank + rope_dim, which replace
    2 x n_kv_heads x head_dim: one latent stands for K and V of every head.
    """
    n_kv_heads, head_dim = check_int("n_kv_heads", n_kv_heads), check_int("head_dim", head_dim)
    tokens, batch = check_int("tokens", tokens, minimum=0), check_int("batch", batch, minimum=0)
    per_token = 2 * n_kv_heads * head_dim if latent is None else check_int("latent", latent)
    return check_int("n_layers", n_layers) * per_token * tokens * batch


def kv_elements_per_token(cfg: HeadConfig, n_layers: int = 1) -> int:
    """Numbers stored in the KV cache for one token: K and V, for each KV head, in each layer."""
    return kv_cache_elements(cfg.n_kv_heads, cfg.head_dim, n_layers=n_layers)
