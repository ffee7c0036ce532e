import pytest

from mqa_edu.heads import HeadConfig, divisors, forward_flops, head_mapping, kv_elements_per_token, kv_head_of, \
    param_count


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
    with pytest.raises(exc) as err:
        HeadConfig(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_kv_head_of_range():
    with pytest.raises(ValueError, match="query_head"):
        kv_head_of(8, 8, 2)


def test_param_count_matches_formula_and_torch():
    torch = pytest.importorskip("torch")
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
