"""Notebook 12's Triton decode kernel, run by Triton's interpreter on the CPU (TRITON_INTERPRET=1, set by the module
when no GPU is present), against references nobody here wrote: SDPA with enable_gqa=True and float64 NumPy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mqa_edu import attention, decode_kernel
from mqa_edu.attention import grouped_attention

pytestmark = pytest.mark.skipif(not decode_kernel.available(), reason="Triton is not installed (requirements.txt)")

# (n_heads, n_kv_heads, head_dim): MHA, a GQA divisor, MQA, and the odd ones (9/3, 71/1), head_dim not a power of 2
RATIOS = [(4, 4, 16), (8, 2, 16), (8, 1, 32), (9, 3, 64), (71, 1, 64), (6, 2, 48)]


def case(h, hkv, d, slots=45, b=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, 1, d, generator=g).to(dtype)
    k = torch.randn(b, hkv, slots, d, generator=g).to(dtype)
    v = torch.randn(b, hkv, slots, d, generator=g).to(dtype)
    key_mask = torch.ones(b, slots, dtype=torch.bool)
    if b == 3:
        key_mask[1, :9] = False  # left padding
        key_mask[2, :3] = False
        key_mask[2, slots - 5:] = False  # the unfilled end of a static cache
    return q, k, v, key_mask


def numpy_reference(q, k, v, key_mask):
    """float64 NumPy: each query head reads its group's KV head; masked keys get no weight."""
    q, k, v = (t.double().numpy() for t in (q[:, :, 0], k, v))
    b, h, d = q.shape
    g = h // k.shape[1]
    out = np.zeros_like(q)
    for i in range(b):
        real = key_mask[i].numpy()
        for j in range(h):
            s = k[i, j // g, real] @ q[i, j] / np.sqrt(d)
            p = np.exp(s - s.max())
            out[i, j] = (p / p.sum()) @ v[i, j // g, real]
    return out


@pytest.mark.parametrize("h,hkv,d", RATIOS, ids=[f"{h}/{k}/hd{d}" for h, k, d in RATIOS])
@pytest.mark.parametrize("splits", [1, 3])
def test_kernel_matches_sdpa_enable_gqa_with_padding(h, hkv, d, splits):
    q, k, v, key_mask = case(h, hkv, d)
    out = decode_kernel.gqa_decode(q, k, v, key_mask, splits=splits)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :], enable_gqa=True)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(out, grouped_attention(q, k, v, key_mask[:, None, None, :]), atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(out[:, :, 0].double().numpy(), numpy_reference(q, k, v, key_mask), atol=2e-6)


@pytest.mark.parametrize("slots,block_n", [(1, 16), (16, 16), (17, 16), (100, 64)])
def test_block_edges_and_a_3d_query(slots, block_n):
    """Lengths below, at and just past a block, and q without the length-1 axis."""
    q, k, v, key_mask = case(8, 2, 16, slots=slots, b=1)
    out = decode_kernel.gqa_decode(q[:, :, 0], k, v, key_mask, block_n=block_n)
    assert out.shape == (1, 8, 16)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :], enable_gqa=True)[:, :, 0]
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)


def test_strided_cache_views_and_half_precision():
    """The model hands over views of a static cache (slots [:n] of a longer buffer): strides are read, not assumed.
    fp16 in: the kernel accumulates in fp32 and returns fp16."""
    q, k, v, key_mask = case(8, 2, 16, slots=64)
    out = decode_kernel.gqa_decode(q, k[:, :, :40], v[:, :, :40], key_mask[:, :40])
    ref = F.scaled_dot_product_attention(q, k[:, :, :40], v[:, :, :40], attn_mask=key_mask[:, None, None, :40],
                                         enable_gqa=True)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    q16, k16, v16 = q.half(), k.half(), v.half()
    out16 = decode_kernel.gqa_decode(q16, k16, v16, key_mask)
    assert out16.dtype == torch.float16
    ref32 = F.scaled_dot_product_attention(q16.float(), k16.float(), v16.float(),
                                           attn_mask=key_mask[:, None, None, :], enable_gqa=True)
    torch.testing.assert_close(out16.float(), ref32, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("splits", [1, 4])
def test_a_row_with_no_real_key_gives_zero_not_nan(splits):
    q, k, v, key_mask = case(4, 2, 16, slots=20)
    key_mask[0] = False
    out = decode_kernel.gqa_decode(q, k, v, key_mask, splits=splits)
    assert torch.isfinite(out).all() and (out[0] == 0).all()
    torch.testing.assert_close(out[1:], grouped_attention(q, k, v, key_mask[:, None, None, :])[1:], atol=2e-6,
                               rtol=1e-5)


def test_the_decode_kernels_signature_and_registration(monkeypatch):
    """On a GPU the kernel joins DECODE_KERNELS (notebooks 04, 07 and attention_bench time it there); a CPU leaves
    the table as it is. The entry takes the table's (q, k, v, mask) and gives SDPA's answer."""
    q, k, v, key_mask = case(8, 2, 16)
    mask = key_mask[:, None, None, :]
    torch.testing.assert_close(decode_kernel.gqa_decode_attention(q, k, v, mask),
                               attention.attention_sdpa_gqa(q, k, v, mask), atol=2e-6, rtol=1e-5)
    table = dict(attention.DECODE_KERNELS)
    monkeypatch.setattr(decode_kernel, "compiled", lambda: False)
    assert not attention.register_triton_kernel(table)
    monkeypatch.setattr(decode_kernel, "compiled", lambda: True)
    assert attention.register_triton_kernel(table) and table[attention.TRITON_KERNEL] is \
        decode_kernel.gqa_decode_attention
    if not torch.cuda.is_available():
        assert attention.TRITON_KERNEL not in attention.DECODE_KERNELS and decode_kernel.interpreted()


@pytest.mark.parametrize("call,message", [
    (lambda q, k, v, m: decode_kernel.gqa_decode(q.repeat(1, 1, 2, 1), k, v, m), "ONE new token"),
    (lambda q, k, v, m: decode_kernel.gqa_decode(q[:, :7], k, v, m), "multiple of n_kv_heads"),
    (lambda q, k, v, m: decode_kernel.gqa_decode(q, k, v[:, :, :5], m), "same shape"),
    (lambda q, k, v, m: decode_kernel.gqa_decode(q, k, v, m[:, :5]), "key_mask must be"),
    (lambda q, k, v, m: decode_kernel.gqa_decode(q, k, v, m, splits=0), "splits must be"),
    (lambda q, k, v, m: decode_kernel.gqa_decode(q, k, v, m, block_n=24), "block_n must be"),
])
def test_bad_input_names_the_argument(call, message):
    q, k, v, key_mask = case(8, 2, 16)
    with pytest.raises(ValueError, match=message):
        call(q, k, v, key_mask)


def test_decode_bytes_counts_the_cache_once():
    q, k, v, key_mask = case(8, 2, 16)
    assert decode_kernel.decode_bytes(k, v) == 2 * k.numel() * 4
    assert decode_kernel.decode_bytes(k, v, key_mask, q) == 2 * k.numel() * 4 + 2 * q.numel() * 4 + key_mask.numel()


def test_triton_imported_too_early_gets_a_clear_error():
    """Triton imported before TRITON_INTERPRET=1 (here: by hand) cannot interpret on a CPU; the call says what to do
    instead of failing inside the kernel."""
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("on a GPU Triton compiles")
    code = ("import os; os.environ.pop('TRITON_INTERPRET', None); import triton; import torch; "
            "from mqa_edu import decode_kernel as dk; q = torch.randn(1, 2, 16); k = torch.randn(1, 1, 4, 16)\n"
            "try:\n    dk.gqa_decode(q, k, k)\nexcept RuntimeError as e:\n    print(e)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "imported before TRITON_INTERPRET=1" in out.stdout, out.stdout + out.stderr
