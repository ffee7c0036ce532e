"""The torch module and kernels against references nobody here wrote: float64 NumPy, SDPA(enable_gqa=True),
nn.MultiheadAttention."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mqa_edu import numpy_attention as na
from mqa_edu.attention import (
    DECODE_KERNELS,
    TRITON_KERNEL,
    GroupedQueryAttention,
    grouped_attention,
    grouped_attention_math,
    make_mask,
)
from mqa_edu.heads import HeadConfig
from tests.helpers import raises_naming

TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 3e-2}
# On a GPU, DECODE_KERNELS also holds notebook 12's Triton kernel: decode shapes only (one query per row), tested in
# tests/test_decode_kernel.py; the tests here also give several queries per row.
KERNELS = [grouped_attention_math, *(f for name, f in DECODE_KERNELS.items() if name != TRITON_KERNEL)]


def random_qkv(b, h, hkv, tq, tk, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda heads, t: torch.randn(b, heads, t, d, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    return mk(h, tq), mk(hkv, tk), mk(hkv, tk)


def check_against_sdpa(kernel, pairs, dtypes=(torch.float64,), shapes=((1, 1, 9), (3, 5, 5), (2, 4, 11))):
    """Compare ``kernel`` with PyTorch's own GQA attention; AssertionError on the first disagreement."""
    for n_heads, n_kv in pairs:
        for b, tq, tk in shapes:
            for dtype in dtypes:
                q, k, v = random_qkv(b, n_heads, n_kv, tq, tk, 8, dtype, seed=n_heads * 100 + n_kv)
                mask = make_mask(tq, tk)
                ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask,
                                                     enable_gqa=True)
                out = kernel(q, k, v, mask)
                assert out.dtype == dtype
                torch.testing.assert_close(out.double(), ref, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_kernels_match_sdpa_enable_gqa(kernel, dtype, head_pair):
    check_against_sdpa(kernel, [head_pair], dtypes=(dtype,))


def wrong_tile_order(q, k, v, mask=None):
    """A planted bug: Tensor.repeat tiles KV heads (0,1,0,1,...) instead of interleaving them (0,0,1,1,...)."""
    g = q.shape[1] // k.shape[1]
    return F.scaled_dot_product_attention(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1), attn_mask=mask)


def test_suite_catches_tile_order_bug():
    from tests.helpers import HEAD_PAIRS
    check_against_sdpa(wrong_tile_order, [(8, 8), (8, 1)])  # MHA and MQA cannot tell the orders apart...
    with pytest.raises(AssertionError):  # ...but the GQA shapes in the suite do
        check_against_sdpa(wrong_tile_order, HEAD_PAIRS)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("batch, seq", [(1, 1), (1, 7), (3, 6)])
def test_module_matches_numpy_float64(head_pair, bias, batch, seq):
    n_heads, n_kv = head_pair
    head_dim = 5 if n_heads == 71 else 6  # explicit head_dim != d_model / n_heads on purpose
    cfg = HeadConfig(24, n_heads, n_kv, head_dim=head_dim)
    p = na.init_attention_params(cfg, bias=bias, seed=n_heads + n_kv)
    m = GroupedQueryAttention(24, n_heads, n_kv, head_dim=head_dim, bias=bias, dtype=torch.float64).load_numpy(p)
    x = np.random.default_rng(seq).normal(size=(batch, seq, 24))
    mask = np.ones((batch, seq), dtype=bool)
    mask[-1, : seq // 2] = False  # left padding in the last row
    ref = na.grouped_query_attention(x, p, cfg, attention_mask=mask)
    out = m(torch.tensor(x), attention_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(m.numpy_params()["w_k"], p["w_k"])


@pytest.mark.parametrize("causal", [True, False])
def test_mha_matches_nn_multiheadattention(causal):
    torch.manual_seed(0)
    d, h = 32, 4
    ref = torch.nn.MultiheadAttention(d, h, bias=True, batch_first=True, dtype=torch.float64)
    ours = GroupedQueryAttention(d, h, h, bias=True, dtype=torch.float64)
    with torch.no_grad():
        wq, wk, wv = ref.in_proj_weight.chunk(3)
        bq, bk, bv = ref.in_proj_bias.chunk(3)
        for lin, w, b in ((ours.q_proj, wq, bq), (ours.k_proj, wk, bk), (ours.v_proj, wv, bv),
                          (ours.o_proj, ref.out_proj.weight, ref.out_proj.bias)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    x = torch.randn(3, 6, d, dtype=torch.float64)
    pad = torch.ones(3, 6, dtype=torch.bool)
    pad[1, :2] = False
    # nn.MultiheadAttention masks are the other way round: True means "do NOT attend".
    causal_block = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1) if causal else None
    expected, _ = ref(x, x, x, key_padding_mask=~pad, attn_mask=causal_block, need_weights=False)
    torch.testing.assert_close(ours(x, attention_mask=pad, causal=causal), expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("n_kv", [8, 2, 1])
def test_padding_content_does_not_leak(n_kv):
    torch.manual_seed(1)
    m = GroupedQueryAttention(32, 8, n_kv, dtype=torch.float64)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, :3] = False
    mask[1, 5:] = False  # right padding too
    y1 = m(x, attention_mask=mask)
    x2 = x.clone()
    x2[~mask] = 1e6 * torch.randn(int((~mask).sum()), 32, dtype=torch.float64)
    y2 = m(x2, attention_mask=mask)
    torch.testing.assert_close(y1[mask], y2[mask], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
def test_fully_masked_row_gives_zero_not_nan(kernel):
    q, k, v = random_qkv(2, 4, 2, 3, 3, 8, torch.float32)
    mask = make_mask(3, 3, attention_mask=torch.tensor([[0, 0, 1], [1, 1, 1]], dtype=torch.bool))
    out = kernel(q, k, v, mask)
    assert not out.isnan().any()
    assert (out[0, :, :2] == 0).all()  # rows 0 and 1 of batch 0 see no key at all


def test_module_all_padding_row_no_nan():
    m = GroupedQueryAttention(16, 4, 1)
    y = m(torch.randn(2, 3, 16), attention_mask=torch.tensor([[0, 0, 0], [1, 1, 1]]))
    assert not y.isnan().any()


@settings(max_examples=40, deadline=None)
@given(n_kv=st.sampled_from([1, 2, 3, 6]), mult=st.sampled_from([1, 2, 4]), b=st.integers(1, 3),
       tq=st.integers(1, 6), extra=st.integers(0, 5), d=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**16))
def test_property_grouped_attention_equals_sdpa(n_kv, mult, b, tq, extra, d, seed):
    n_heads = n_kv * mult
    q, k, v = random_qkv(b, n_heads, n_kv, tq, tq + extra, d, seed=seed)
    pad = torch.rand(b, tq + extra, generator=torch.Generator().manual_seed(seed)) > 0.3
    pad[:, -1] = True
    mask = make_mask(tq, tq + extra, attention_mask=pad)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    expected = expected.masked_fill(~mask.any(-1, keepdim=True), 0.0)
    torch.testing.assert_close(grouped_attention(q, k, v, mask), expected, atol=1e-10, rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(n_heads=st.sampled_from([1, 2, 3, 4, 6, 12]), data=st.data(), seq=st.integers(1, 6),
       head_dim=st.sampled_from([None, 3, 8]))
def test_property_module_equals_numpy(n_heads, data, seq, head_dim):
    n_kv = data.draw(st.sampled_from([d for d in range(1, n_heads + 1) if n_heads % d == 0]))
    cfg = HeadConfig(12, n_heads, n_kv, head_dim)
    p = na.init_attention_params(cfg, seed=seq)
    m = GroupedQueryAttention(12, n_heads, n_kv, head_dim, dtype=torch.float64).load_numpy(p)
    x = np.random.default_rng(seq).normal(size=(2, seq, 12))
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), na.grouped_query_attention(x, p, cfg),
                               atol=1e-12)


# ---------------------------------------------------------------- bad input gets a clear error
@pytest.mark.parametrize("make, exc, words", [
    (lambda: GroupedQueryAttention(64, 8, 3), ValueError, ["n_kv_heads", "[1, 2, 4, 8]"]),
    (lambda: GroupedQueryAttention(60, 8, 2), ValueError, ["d_model=60", "head_dim"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(64)), ValueError, ["(batch, seq, d_model=64)"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 32)), ValueError, ["d_model=64"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(np.zeros((2, 3, 64))), TypeError, ["torch.Tensor"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64, dtype=torch.float64)), TypeError, ["dtype"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64, device="meta")), ValueError, ["meta", "cpu"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64), attention_mask=torch.ones(2, 4)), ValueError,
     ["attention_mask", "(2, 3)"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64), attention_mask=torch.ones(2, 3)), TypeError,
     ["attention_mask", "bool or integer"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64), attention_mask=[[1, 1, 1]] * 2), TypeError,
     ["attention_mask"]),
    (lambda: GroupedQueryAttention(64, 8, 2)(torch.randn(2, 3, 64), attention_mask=torch.full((2, 3), 2)),
     ValueError, ["0 (padding)"]),
    (lambda: grouped_attention(*random_qkv(1, 8, 3, 2, 2, 4)), ValueError, ["n_kv_heads=3", "n_heads=8"]),
    (lambda: grouped_attention(*random_qkv(1, 8, 2, 2, 2, 4)[:2], torch.randn(1, 2, 2, 5, dtype=torch.float64)),
     ValueError, ["same shape"]),
    (lambda: grouped_attention(*random_qkv(1, 8, 2, 2, 5, 4), torch.ones(1, 1, 2, 4, dtype=torch.bool)), ValueError,
     ["mask", "(1, 1, 2, 5)"]),
    (lambda: grouped_attention(*random_qkv(1, 8, 2, 2, 5, 4), torch.ones(1, 1, 2, 5)), TypeError, ["bool"]),
    (lambda: grouped_attention(*random_qkv(1, 4, 2, 2, 5, 4)[:2], random_qkv(1, 4, 2, 2, 5, 4)[2].float()),
     TypeError, ["dtype"]),
])
def test_bad_input_raises_named_error(make, exc, words):
    with raises_naming(exc, *words):
        make()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("n_kv", [8, 2, 1])
def test_cuda_matches_cpu(n_kv):
    torch.manual_seed(0)
    m = GroupedQueryAttention(64, 8, n_kv)
    x = torch.randn(2, 9, 64)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :4] = False
    expected = m(x, attention_mask=mask)
    out = m.cuda()(x.cuda(), attention_mask=mask.cuda()).cpu()
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- CUDA conditions, built on a CPU
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_kernels_with_fused_sdpa_output_layout(kernel, dtype, head_pair, cuda_like_sdpa):
    """On CUDA, flash / memory-efficient SDPA return a transposed view; a .view() over the folded group then fails
    at every GQA ratio. The fixture makes SDPA return that layout here."""
    check_against_sdpa(kernel, [head_pair], dtypes=(dtype,), shapes=((1, 1, 9), (2, 4, 11)))


def test_fused_layout_fixture_reproduces_the_gpu_failure(cuda_like_sdpa):
    """The old reshape (.view) fails under the simulated layout, as it did on a GPU: the fixture is not a no-op."""
    q, k, v = random_qkv(1, 8, 2, 3, 5, 4)
    out = F.scaled_dot_product_attention(q.reshape(1, 2, 12, 4), k, v)
    assert not out.is_contiguous()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        out.view(1, 8, 3, 4)


@pytest.mark.parametrize("n_kv", [8, 4, 2, 1])
def test_module_fp16_under_fused_layout_matches_float64(n_kv, cuda_like_sdpa):
    torch.manual_seed(n_kv)
    m = GroupedQueryAttention(64, 8, n_kv, dtype=torch.float64)
    x = torch.randn(2, 9, 64, dtype=torch.float64)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :4] = False
    expected = m(x, attention_mask=mask)
    out = m.half()(x.half(), attention_mask=mask)
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=2e-2)


def test_masks_are_built_where_the_key_mask_lives():
    """Notebook 05 built a decode mask from cache.key_mask without device=: a CPU causal part met a CUDA key mask.
    The meta device stands in for CUDA: any CPU tensor mixed with it raises, as a CUDA one would."""
    keys = torch.ones(3, 6, dtype=torch.bool, device="meta")
    assert make_mask(1, 6, q_start=5, attention_mask=keys).device.type == "meta"
    assert make_mask(2, 6, attention_mask=keys, device="meta").shape == (3, 1, 2, 6)
    with raises_naming(ValueError, "attention_mask is on meta", "device=cpu"):
        make_mask(1, 6, attention_mask=keys, device="cpu")
    q, k, v = (t.to("meta") for t in random_qkv(3, 4, 2, 1, 6, 8))
    with raises_naming(ValueError, "mask is on cpu", "meta"):
        grouped_attention(q, k, v, make_mask(1, 6))


# ---------------------------------------------------------------- the comparison kernels check their input too
@pytest.mark.parametrize("kernel", KERNELS[1:], ids=lambda f: f.__name__)
@pytest.mark.parametrize("make, exc, words", [
    (lambda: random_qkv(1, 8, 3, 2, 2, 4), ValueError, ["n_kv_heads=3", "n_heads=8", "[1, 2, 4, 8]"]),
    (lambda: random_qkv(1, 2, 4, 2, 2, 4), ValueError, ["n_kv_heads=4", "n_heads=2"]),  # more KV than query heads
    (lambda: (*random_qkv(1, 8, 2, 2, 5, 4)[:2], torch.randn(1, 2, 5, 3, dtype=torch.float64)), ValueError,
     ["same shape"]),
    (lambda: (random_qkv(1, 8, 2, 2, 5, 4)[0], *random_qkv(1, 8, 2, 2, 5, 6)[1:]), ValueError, ["head_dim"]),
    (lambda: (*random_qkv(1, 8, 2, 2, 5, 4), torch.ones(1, 1, 2, 4, dtype=torch.bool)), ValueError,
     ["mask", "(1, 1, 2, 5)"]),
    (lambda: (*random_qkv(1, 8, 2, 2, 5, 4), torch.ones(1, 1, 2, 5, dtype=torch.float64)), TypeError,
     ["bool", "ADDED"]),  # a float 0/1 mask would be added to the scores, silently
])
def test_comparison_kernels_name_the_problem(kernel, make, exc, words):
    with raises_naming(exc, *words):
        kernel(*make())


def test_decode_kernels_are_the_one_list():
    """Notebooks 04 and 07 and benchmarks/attention_bench.py take their kernels from DECODE_KERNELS."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for path in (root / "notebooks" / "04_batched_pytorch_attention.ipynb",
                 root / "notebooks" / "07_decode_speed.ipynb", root / "benchmarks" / "attention_bench.py"):
        text = path.read_text()
        assert "DECODE_KERNELS" in text, path.name
        assert "attention_repeat_interleave," not in text, path.name


# ---------------------------------------------------------------- one attention path
def test_module_forward_is_the_models_attention():
    """The model's blocks call GroupedQueryAttention.forward (rotary + cache + mask), the same code notebook 04
    teaches: a model whose attention forward is replaced gives other logits."""
    from mqa_edu.model import ModelConfig, Transformer
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=1, d_model=32, n_heads=4, n_kv_heads=2, vocab_size=11, max_seq_len=8),
                        dtype=torch.float64).eval()
    tokens = torch.randint(0, 11, (1, 5))
    calls = []
    original = GroupedQueryAttention.forward

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    GroupedQueryAttention.forward = spy
    try:
        model(tokens)
    finally:
        GroupedQueryAttention.forward = original
    assert len(calls) == 1 and calls[0]["rope"] is not None


def test_module_forward_with_cache_equals_without():
    from mqa_edu.kv_cache import LayerKVCache
    torch.manual_seed(3)
    m = GroupedQueryAttention(32, 4, 2, dtype=torch.float64)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    full = m(x)
    cache = LayerKVCache(2, 2, 7, 8, dtype=torch.float64)
    first = m(x[:, :4], cache=cache, mask=make_mask(4, 4))
    rest = m(x[:, 4:], cache=cache, start=4, mask=make_mask(3, 7))
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-12, rtol=0)
    with raises_naming(ValueError, "start=4", "needs a cache"):
        m(x, start=4)
    with raises_naming(ValueError, "attention_mask", "mask"):
        m(x, attention_mask=torch.ones(2, 7, dtype=torch.bool), mask=make_mask(7, 7))
    with raises_naming(ValueError, "with a cache", "mask="):
        m(x, attention_mask=torch.ones(2, 7, dtype=torch.bool), cache=cache)
