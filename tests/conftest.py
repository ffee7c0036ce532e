import contextlib
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def head_ratios(n_heads):
    """Every valid n_kv_heads for n_heads: MHA, each divisor in between, MQA."""
    return [d for d in range(1, n_heads + 1) if n_heads % d == 0]


# (n_heads, n_kv_heads) pairs covering every divisor of several head counts, plus the odd real ones.
HEAD_PAIRS = [(h, kv) for h in (1, 4, 6, 8) for kv in head_ratios(h)] + [(9, 3), (9, 1), (9, 9), (71, 1)]


@pytest.fixture(params=HEAD_PAIRS, ids=lambda p: f"h{p[0]}kv{p[1]}")
def head_pair(request):
    return request.param


@contextlib.contextmanager
def raises_naming(exc, *words):
    """pytest.raises(exc), and the message must contain every one of ``words`` (the parameter, the allowed values)."""
    with pytest.raises(exc) as err:
        yield err
    for w in words:
        assert w in str(err.value), f"{w!r} not in the error message: {err.value}"


@pytest.fixture
def cuda_like_sdpa(monkeypatch):
    """SDPA returning its output in the layout CUDA's fused (flash / memory-efficient) kernels use: memory ordered
    (batch, seq, heads, head_dim), seen as (batch, heads, seq, head_dim). No CPU run produces it by itself."""
    import torch.nn.functional as F

    from mqa_edu.device import fused_sdpa_layout

    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: fused_sdpa_layout(sdpa(*a, **k)))


# ---------------------------------------------------------------- small models for the cache and generation tests
RATIOS = [(8, 8), (8, 4), (8, 2), (8, 1), (9, 3), (9, 1)]
PROMPTS = [[5, 9, 2, 7, 1, 3, 3], [4], [8, 8, 1], [11, 2, 9, 9, 9]]


def make_model(n_heads, n_kv_heads, dtype=None, seed=0):
    import torch

    from mqa_edu.model import ModelConfig, Transformer

    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=2, d_model=8 * n_heads, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=8,
                      vocab_size=53, max_seq_len=48)
    return Transformer(cfg, dtype=dtype or torch.float64).eval()
