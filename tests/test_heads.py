import pytest

from mqa_edu.heads import (
    HeadConfig,
    divisors,
    forward_flops,
    head_mapping,
    kv_elements_per_token,
    kv_head_of,
    param_count,
)
from tests.helpers import raises_naming


def test_kind_and_group_size():
    assert HeadConfig(512, 8, 8).kind == "MHA"
    assert HeadConfig(512, 8, 2).kind == "GQA-2"
    assert HeadConfig(512, 8, 1).kind == "MQA"
    assert HeadConfig(512, 8).n_kv_heads == 8
    assert HeadConfig(576, 9, 3).group_size == 3
    assert HeadConfig(3072, 16, 16, head_dim=256).head_dim == 256  # Gemma-7B: head_dim != d_model / n_heads


def test_mapping_is_repeat_interleave_order():
    assert head_mapping(8, 2) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert head_mapping(9, 3) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert head_mapping(71, 1) == [0] * 71
    assert head_mapping(4, 4) == [0, 1, 2, 3]
    assert kv_head_of(5, 8, 4) == 2


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(d_model=512, n_heads=8, n_kv_heads=3), ValueError, ["n_kv_heads", "[1, 2, 4, 8]"]),
    (dict(d_model=100, n_heads=8), ValueError, ["d_model", "head_dim"]),
    (dict(d_model=512, n_heads=0), ValueError, ["n_heads"]),
    (dict(d_model=512, n_heads=8.0), TypeError, ["n_heads"]),
    (dict(d_model=512, n_heads=True), TypeError, ["n_heads"]),
    (dict(d_model=512, n_heads=8, n_kv_heads=16), ValueError, ["n_kv_heads"]),
    (dict(d_model=512, n_heads=8, head_dim=-1), ValueError, ["head_dim"]),
])
def test_bad_config_names_the_parameter(kwargs, exc, words):
    with raises_naming(exc, *words):
        HeadConfig(**kwargs)


def test_kv_head_of_range():
    with pytest.raises(ValueError, match="query_head"):
        kv_head_of(8, 8, 2)


def test_param_count_matches_formula_and_torch():
    pytest.importorskip("torch")
    from mqa_edu.attention import GroupedQueryAttention
    for kv in divisors(8):
        for bias in (False, True):
            cfg = HeadConfig(64, 8, kv, head_dim=16)
            m = GroupedQueryAttention(64, 8, kv, head_dim=16, bias=bias)
            assert param_count(cfg, bias)["total"] == sum(p.numel() for p in m.parameters())


def test_flops_scores_do_not_depend_on_kv_heads():
    mha, mqa = HeadConfig(4096, 32, 32), HeadConfig(4096, 32, 1)
    f_mha, f_mqa = forward_flops(mha, 1, 4096), forward_flops(mqa, 1, 4096)
    assert f_mha["attention"] == f_mqa["attention"] == 2 * 2 * 32 * 4096 * 128
    assert f_mqa["kv_proj"] * 32 == f_mha["kv_proj"]
    assert forward_flops(mha, 10)["scores"] == 2 * 32 * 10 * 10 * 128


def test_kv_elements_per_token():
    assert kv_elements_per_token(HeadConfig(4096, 32, 8), n_layers=32) == 2 * 32 * 8 * 128
    assert kv_elements_per_token(HeadConfig(4544, 71, 1)) == 2 * 64  # Falcon-7B, one layer


def test_one_kv_formula_everywhere():
    """sizing, the benchmarks' bytes per step and a real cache's buffers all agree with kv_cache_elements."""
    import torch

    from mqa_edu.bench import kv_bytes
    from mqa_edu.heads import kv_cache_elements
    from mqa_edu.kv_cache import KVCache
    from mqa_edu.sizing import ModelSpec, bytes_per_token, kv_cache_bytes

    assert kv_cache_elements(8, 128, tokens=10, batch=3, n_layers=32) == 2 * 32 * 8 * 128 * 10 * 3
    for n_heads, n_kv in ((9, 3), (71, 1), (8, 8)):
        spec = ModelSpec("m", 3, n_heads * 8, n_heads, n_kv, 8)
        cache = KVCache(3, 2, n_kv, 40, 8, dtype=torch.bfloat16)
        assert cache.nbytes == kv_cache_bytes(spec, 40, 2, "bf16") == 3 * kv_bytes(2, n_kv, 40, 8, torch.bfloat16)
        assert bytes_per_token(spec, "fp32") == 4 * kv_elements_per_token(HeadConfig(n_heads * 8, n_heads, n_kv), 3)
    with raises_naming(ValueError, "tokens"):
        kv_cache_elements(8, 128, tokens=-1)
