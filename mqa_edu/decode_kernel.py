"""A GQA decode kernel in Triton (notebook 12): one program per (batch row, KV head) loads each K/V tile ONCE for
the whole group of query heads that share it, so the step reads the cache's bytes once, whatever the group size.

Why a kernel: eager PyTorch can only ask for "attention"; whether K/V are read once per group or once per query head
is decided inside whichever kernel runs. Here it is written down:

- the group's ``group_size`` query heads are one tile (padded to at least 16 rows, the smallest ``tl.dot`` on a GPU);
- K and V stream through in blocks of ``BLOCK_N`` slots with an online softmax (running max ``m``, running sum ``l``,
  and an accumulator rescaled whenever the max grows), so no score row is ever stored;
- a key mask (batch, slots) drops padding and empty slots of a static cache; a row with no real key gives 0;
- optionally the slots are split into ``splits`` chunks, each its own program (flash-decoding): at batch 1 with few
  KV heads, one program per (row, KV head) leaves most of a GPU idle, and splitting the sequence fills it; a second
  kernel merges the chunks' partial results.

Without a GPU, Triton can only interpret: ``TRITON_INTERPRET=1`` (set here when no GPU is present, before Triton is
imported) runs the same kernel, program by program, in NumPy on the CPU. That is slow (seconds, not microseconds) but
exact, so the tests and notebook 12 run it in CI. Triton is optional: without it, ``available()`` is False and
nothing else in the course changes.
"""
from __future__ import annotations

import math
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # read when a kernel is defined: set before Triton is imported

try:
    import triton
    import triton.language as tl
except ImportError:  # the course runs without Triton; only this module's kernels need it
    triton = tl = None


def available() -> bool:
    """Can the kernels run here (compiled on a GPU, interpreted on a CPU)?"""
    return triton is not None


def _check_mode():
    """Triton fixes compiled vs interpreted for its own helpers (those behind tl.max, tl.sum) when it is first
    imported. If something imported it before TRITON_INTERPRET=1 was set (torch's optimizers can), a CPU cannot run
    any kernel: say so instead of failing inside one."""
    if triton is None or not interpreted():
        return
    from triton.language import standard

    if type(standard._sum_combine).__name__ != "InterpretedFunction":
        raise RuntimeError("Triton was imported before TRITON_INTERPRET=1 was set, so it cannot interpret kernels on "
                           "this CPU: restart the kernel (or process) and import mqa_edu.decode_kernel before "
                           "anything else that uses torch, or set TRITON_INTERPRET=1 in the environment")


def interpreted() -> bool:
    """True when Triton runs its interpreter (no GPU): right answers, no meaningful speed."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def compiled() -> bool:
    """True when the kernels compile to GPU code: only then is it worth timing them next to PyTorch's."""
    return available() and torch.cuda.is_available() and not interpreted()


def _pow2(n: int, minimum: int = 16) -> int:
    return max(minimum, 1 << (int(n) - 1).bit_length())


if triton is not None:
    @triton.jit
    def _gqa_decode_kernel(Q, K, V, M, Acc, L, Mx, n_slots, chunk, sm_scale,
                           s_qb, s_qh, s_kb, s_kh, s_kt, s_vb, s_vh, s_vt, s_mb, s_ob, s_oh, s_os, s_lb, s_lh,
                           G: tl.constexpr, D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr,
                           BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
        b, kvh, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        g, d = tl.arange(0, BLOCK_G), tl.arange(0, BLOCK_D)
        g_ok, d_ok = g < G, d < D
        heads = kvh * G + g  # query heads kvh*G .. kvh*G + G-1 share this KV head
        q = tl.load(Q + b * s_qb + heads[:, None] * s_qh + d[None, :], mask=g_ok[:, None] & d_ok[None, :], other=0.0)
        m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)  # running max of each query head's scores
        l_i = tl.zeros([BLOCK_G], tl.float32)  # running sum of exp(score - m_i)
        acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)  # running sum of exp(score - m_i) * v
        lo = split * chunk
        hi = tl.minimum(lo + chunk, n_slots)
        for first in range(lo, hi, BLOCK_N):
            n = first + tl.arange(0, BLOCK_N)
            in_range = n < hi
            real = in_range & (tl.load(M + b * s_mb + n, mask=in_range, other=0) != 0)
            tile = in_range[:, None] & d_ok[None, :]
            k = tl.load(K + b * s_kb + kvh * s_kh + n[:, None] * s_kt + d[None, :], mask=tile, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * sm_scale  # (BLOCK_G, BLOCK_N), fp32
            s = tl.where(real[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # no real key yet: keep exp() away from -inf - -inf
            alpha = tl.exp(m_i - m_use)  # rescales what was summed under the old max
            p = tl.exp(s - m_use[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(V + b * s_vb + kvh * s_vh + n[:, None] * s_vt + d[None, :], mask=tile, other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m_i = m_new
        out_ok = g_ok[:, None] & d_ok[None, :]
        o_ptr = Acc + b * s_ob + heads[:, None] * s_oh + split * s_os + d[None, :]
        stat = b * s_lb + heads * s_lh + split
        tl.store(L + stat, l_i, mask=g_ok)  # with one split, the launcher divides acc by l itself
        tl.store(Mx + stat, m_i, mask=g_ok)
        tl.store(o_ptr, acc, mask=out_ok)

    @triton.jit
    def _merge_splits_kernel(Acc, L, Mx, Out, n_splits, s_ob, s_oh, s_os, s_lb, s_lh, s_rb, s_rh,
                             D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
        b, h = tl.program_id(0), tl.program_id(1)
        sp, d = tl.arange(0, BLOCK_S), tl.arange(0, BLOCK_D)
        sp_ok = sp < n_splits
        m = tl.load(Mx + b * s_lb + h * s_lh + sp, mask=sp_ok, other=float("-inf"))
        l_s = tl.load(L + b * s_lb + h * s_lh + sp, mask=sp_ok, other=0.0)
        m_all = tl.max(m, 0)
        m_use = tl.where(m_all == float("-inf"), 0.0, m_all)
        w = tl.exp(m - m_use)  # each chunk's sums were taken under its own max: bring them to the common one
        acc = tl.load(Acc + b * s_ob + h * s_oh + sp[:, None] * s_os + d[None, :],
                      mask=sp_ok[:, None] & (d[None, :] < D), other=0.0)
        total = tl.sum(l_s * w, 0)
        out = tl.sum(acc * w[:, None], 0) / tl.where(total == 0.0, 1.0, total)
        tl.store(Out + b * s_rb + h * s_rh + d, out, mask=d < D)


def check_decode_inputs(q, k, v, key_mask):
    """Shapes of a decode step: q (batch, n_heads, head_dim) [or (batch, n_heads, 1, head_dim)], k and v (batch,
    n_kv_heads, slots, head_dim), key_mask (batch, slots) bool or None. Returns q as 3-d and the mask (all True when
    None). Errors name the argument and what it must be."""
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)):
        raise TypeError("q, k and v must be torch tensors")
    if q.dim() == 4:
        if q.shape[2] != 1:
            raise ValueError(f"q must hold ONE new token per row (a decode step): got q_len={q.shape[2]}")
        q = q[:, :, 0]
    if q.dim() != 3 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"q must be (batch, n_heads, head_dim) and k, v (batch, n_kv_heads, slots, head_dim) of the "
                         f"same shape; got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    b, h, d = q.shape
    if k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"k must be (batch={b}, n_kv_heads, slots, head_dim={d}), got {tuple(k.shape)}")
    if h % k.shape[1]:
        raise ValueError(f"n_heads={h} must be a multiple of n_kv_heads={k.shape[1]}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if key_mask is None:
        key_mask = torch.ones(b, k.shape[2], dtype=torch.bool, device=k.device)
    elif not isinstance(key_mask, torch.Tensor) or tuple(key_mask.shape) != (b, k.shape[2]):
        raise ValueError(f"key_mask must be a (batch={b}, slots={k.shape[2]}) tensor, True for real keys; got "
                         f"{getattr(key_mask, 'shape', type(key_mask).__name__)}")
    return q, key_mask.to(device=k.device, dtype=torch.bool)


def gqa_decode_partials(q, k, v, key_mask=None, *, splits: int = 1, block_n: int = 32):
    """The first kernel alone: for each row, query head and chunk of slots, the online softmax's state at the end of
    the chunk, (acc (b, h, splits, head_dim), l (b, h, splits), m (b, h, splits)), all fp32: acc and l are sums of
    exp(score - m) weighted by v and by 1. Notebook 12 merges them by hand; :func:`gqa_decode` merges them."""
    if not available():
        raise RuntimeError("Triton is not installed: pip install triton==3.9.0 (requirements.txt has it)")
    _check_mode()
    q, key_mask = check_decode_inputs(q, k, v, key_mask)
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be an int >= 1, got {splits!r}")
    if isinstance(block_n, bool) or not isinstance(block_n, int) or block_n < 16 or block_n & (block_n - 1):
        raise ValueError(f"block_n must be a power of two >= 16, got {block_n!r}")
    b, h, d = q.shape
    hkv, n_slots = k.shape[1], k.shape[2]
    g = h // hkv
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    mask8 = key_mask.to(torch.int8).contiguous()
    chunk = -(-n_slots // splits)
    acc = torch.empty(b, h, splits, d, device=q.device, dtype=torch.float32)
    l_sum = torch.empty(b, h, splits, device=q.device, dtype=torch.float32)
    m_max = torch.empty_like(l_sum)
    precision = "ieee" if q.dtype == torch.float32 else "tf32"  # fp32 in, fp32 math: no TF32 rounding
    _gqa_decode_kernel[(b, hkv, splits)](
        q, k, v, mask8, acc, l_sum, m_max, n_slots, chunk, 1.0 / math.sqrt(d),
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        mask8.stride(0), acc.stride(0), acc.stride(1), acc.stride(2), l_sum.stride(0), l_sum.stride(1),
        G=g, D=d, BLOCK_G=_pow2(g), BLOCK_D=_pow2(d), BLOCK_N=block_n, PRECISION=precision)
    return acc, l_sum, m_max


def gqa_decode(q, k, v, key_mask=None, *, splits: int = 1, block_n: int = 32):
    """One decode step of grouped-query attention with the Triton kernel above.

    q (batch, n_heads, head_dim) or (batch, n_heads, 1, head_dim); k, v (batch, n_kv_heads, slots, head_dim), any
    strides along batch/heads/slots but contiguous along head_dim; key_mask (batch, slots), True where a key is real.
    ``splits`` > 1: flash-decoding, the slots cut into that many chunks, merged by a second kernel.
    Returns (batch, n_heads, head_dim) [or with the 1 kept when q had it] in q's dtype.
    """
    acc, l_sum, m_max = gqa_decode_partials(q, k, v, key_mask, splits=splits, block_n=block_n)
    b, h, _, d = acc.shape
    if splits == 1:
        out = acc[:, :, 0] / torch.where(l_sum == 0, 1.0, l_sum)  # a row with no real key: 0 / 1 = 0
    else:
        out = torch.empty(b, h, d, device=acc.device, dtype=torch.float32)
        _merge_splits_kernel[(b, h)](acc, l_sum, m_max, out, splits, acc.stride(0), acc.stride(1), acc.stride(2),
                                     l_sum.stride(0), l_sum.stride(1), out.stride(0), out.stride(1),
                                     D=d, BLOCK_D=_pow2(d, 1), BLOCK_S=_pow2(splits, 1))
    out = out.to(q.dtype)
    return out[:, :, None] if q.dim() == 4 else out


def gqa_decode_attention(q, k, v, mask=None):
    """:func:`gqa_decode` with the signature of mqa_edu.attention.DECODE_KERNELS: q (b, n_heads, 1, hd), mask None or
    (b or 1, 1, 1, slots) bool."""
    key_mask = None
    if mask is not None:
        key_mask = mask.reshape(mask.shape[0], mask.shape[-1]).expand(q.shape[0], mask.shape[-1])
    return gqa_decode(q, k, v, key_mask)


def decode_bytes(k, v, key_mask=None, q=None) -> int:
    """Bytes one decode step of this kernel must move at least: K and V once each (not once per query head), plus
    the queries, outputs and mask. What the measured time is compared against (GB/s)."""
    extra = 0 if q is None else 2 * q.numel() * q.element_size()
    return k.numel() * k.element_size() + v.numel() * v.element_size() + extra + (
        0 if key_mask is None else key_mask.numel())
