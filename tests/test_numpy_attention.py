import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mqa_edu import numpy_attention as na
from mqa_edu.heads import HeadConfig


def test_softmax_stable_where_naive_overflows():
    x = np.array([[1000.0, 1001.0, 1002.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(na.naive_softmax(x)).any()
    np.testing.assert_allclose(na.softmax(x), na.naive_softmax(x - 1002.0))
    np.testing.assert_allclose(na.softmax(x).sum(-1), 1.0)


def test_softmax_fully_masked_row_is_zero_not_nan():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(na.softmax(x), [[0.0, 0.0], [1.0, 0.0]])


def test_causal_mask_with_offset():
    m = na.causal_mask(2, 4)
    np.testing.assert_array_equal(m, [[1, 1, 1, 0], [1, 1, 1, 1]])
    with pytest.raises(ValueError, match="n_keys"):
        na.causal_mask(4, 2)


def test_sdpa_matches_torch_float64():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(2, 3, 5, 8)), rng.normal(size=(2, 3, 7, 8)), rng.normal(size=(2, 3, 7, 8))
    mask = na.causal_mask(5, 7)
    ours = na.scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)), attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-12)


def test_gqa_equals_per_head_loop(head_pair):
    """Independent of repeat_kv: loop over query heads and pick KV head h // group_size by hand."""
    n_heads, n_kv = head_pair
    cfg = HeadConfig(n_heads * 4, n_heads, n_kv)
    p = na.init_attention_params(cfg, seed=3)
    x = np.random.default_rng(1).normal(size=(2, 5, cfg.d_model))
    q = x @ p["w_q"]
    k = x @ p["w_k"]
    v = x @ p["w_v"]
    hd, g = cfg.head_dim, cfg.group_size
    heads = []
    for h in range(n_heads):
        kv = h // g
        sl, kl = slice(h * hd, (h + 1) * hd), slice(kv * hd, (kv + 1) * hd)
        s = q[..., sl] @ np.swapaxes(k[..., kl], -1, -2) / np.sqrt(hd)
        s = np.where(np.tril(np.ones((5, 5), bool)), s, -np.inf)
        w = np.exp(s - s.max(-1, keepdims=True))
        heads.append((w / w.sum(-1, keepdims=True)) @ v[..., kl])
    expected = np.concatenate(heads, axis=-1) @ p["w_o"]
    np.testing.assert_allclose(na.grouped_query_attention(x, p, cfg), expected, atol=1e-12)


def test_unbatched_input_and_weights():
    cfg = HeadConfig(16, 4, 2)
    p = na.init_attention_params(cfg)
    x = np.random.default_rng(0).normal(size=(6, 16))
    y, w = na.grouped_query_attention(x, p, cfg, return_weights=True)
    assert y.shape == (6, 16) and w.shape == (1, 4, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w[0, 0], 1) == 0)  # causal: no weight on the future


def test_numpy_bad_input():
    cfg = HeadConfig(16, 4, 2)
    p = na.init_attention_params(cfg)
    with pytest.raises(ValueError, match="d_model=16"):
        na.grouped_query_attention(np.zeros((2, 3, 15)), p, cfg)
    with pytest.raises(ValueError, match="attention_mask"):
        na.grouped_query_attention(np.zeros((2, 3, 16)), p, cfg, attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="n_kv_heads == n_heads"):
        na.multi_head_attention(np.zeros((2, 3, 16)), p, cfg)


@pytest.mark.parametrize("other", [HeadConfig(16, 4, 4), HeadConfig(16, 4, 1), HeadConfig(16, 4, 2, head_dim=3)],
                         ids=["more kv heads", "fewer kv heads", "other head_dim"])
def test_weights_for_another_config_are_refused(other):
    cfg = HeadConfig(16, 4, 2)
    p = na.init_attention_params(other, bias=True)
    with pytest.raises(ValueError, match=r"params\['w_.'\] has shape .* expected .* another configuration"):
        na.grouped_query_attention(np.zeros((2, 3, 16)), p, cfg)
    with pytest.raises(ValueError, match="no 'w_o'"):
        na.grouped_query_attention(np.zeros((2, 3, 16)), {k: v for k, v in p.items() if k != "w_o"}, other)
