"""One PyTorch module for MHA, GQA and MQA (notebook 04).

The idea that makes MQA/GQA fast at decode time lives in :func:`grouped_attention`: instead of copying each KV head
``group_size`` times so that every query head has "its own" K and V, we *view* the query heads as
``(n_kv_heads, group_size)`` and fold the group into the query-rows axis. One matmul per KV head then serves all of
its query heads, and K/V are read from memory once.

Shapes: q (batch, n_heads, q_len, head_dim); k, v (batch, n_kv_heads, kv_len, head_dim);
mask: bool, True = may attend, broadcastable to (batch, 1, q_len, kv_len).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .heads import HeadConfig
from .rotary import apply_rotary

# --------------------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------------------

def check_attention_mask(attention_mask, batch: int, kv_len: int, device) -> torch.Tensor:
    """Validate a (batch, kv_len) padding mask (1/True = real token, 0/False = padding); return it as bool."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor of shape (batch, seq), got "
                        f"{type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != (batch, kv_len):
        raise ValueError(f"attention_mask must have shape (batch, seq) = {(batch, kv_len)}, "
                         f"got {tuple(attention_mask.shape)}")
    if attention_mask.device.type != torch.device(device).type:
        raise ValueError(f"attention_mask is on {attention_mask.device} but the inputs are on {device}")
    if attention_mask.dtype != torch.bool:
        if attention_mask.is_floating_point() or attention_mask.is_complex():
            raise TypeError(f"attention_mask must be bool or integer 0/1, got {attention_mask.dtype}")
        if ((attention_mask != 0) & (attention_mask != 1)).any():
            raise ValueError("attention_mask must contain only 0 (padding) and 1 (real token)")
        attention_mask = attention_mask.bool()
    return attention_mask.to(device)


def make_mask(q_len: int, kv_len: int, *, causal: bool = True, attention_mask=None, q_start=None,
              device=None):
    """Boolean mask (batch or 1, 1, q_len, kv_len), or None when nothing is masked.

    The queries sit at slots ``q_start .. q_start+q_len-1`` of the key sequence; by default they are its last
    ``q_len`` slots (``q_start = kv_len - q_len``), which is what decoding after a cache needs. Causal means key slot
    j is visible to the query at slot i when j <= i. ``attention_mask`` (batch, kv_len) hides padded keys.
    The mask is built where ``attention_mask`` lives (a CUDA key mask gives a CUDA mask); ``device`` defaults to
    that, else the CPU.
    """
    if attention_mask is not None:
        if device is not None and torch.device(device).type != attention_mask.device.type:
            raise ValueError(f"make_mask: attention_mask is on {attention_mask.device} but device={device}")
        device = attention_mask.device
    device = "cpu" if device is None else device
    if q_start is None:
        q_start = kv_len - q_len
    mask = None
    if causal:
        q_slots = torch.arange(q_len, device=device) + q_start
        mask = (torch.arange(kv_len, device=device)[None, :] <= q_slots[:, None])[None, None]
    if attention_mask is not None:
        keys = attention_mask[:, None, None, :]
        mask = keys if mask is None else mask & keys
    return mask


# --------------------------------------------------------------------------------------------------------------
# Attention kernels over already-projected heads
# --------------------------------------------------------------------------------------------------------------

def _check_qkv(q, k, v, mask):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have 4 dims (batch, heads, seq, head_dim), got shape {tuple(t.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    (b, h, tq, d), (bk, hkv, tk, dk) = q.shape, k.shape
    if b != bk or d != dk:
        raise ValueError(f"q (batch={b}, head_dim={d}) and k (batch={bk}, head_dim={dk}) disagree")
    if h % hkv:
        allowed = [n for n in range(1, h + 1) if h % n == 0]
        raise ValueError(f"n_kv_heads={hkv} (k.shape[1]) must divide n_heads={h} (q.shape[1]); allowed n_kv_heads: "
                         f"{allowed}")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.device != k.device or q.device != v.device:
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a bool torch.Tensor (True = may attend), got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}; a float 0/1 mask would be ADDED to the "
                            "scores, so convert it with mask.bool()")
        if mask.device != q.device:
            raise ValueError(f"mask is on {mask.device} but q, k, v are on {q.device}")
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, b) or mask.shape[2] not in (1, tq) \
                or mask.shape[3] != tk:
            raise ValueError(f"mask must have shape (batch or 1, 1, q_len, kv_len) = ({b}, 1, {tq}, {tk}), "
                             f"got {tuple(mask.shape)}")
    return b, h, hkv, tq, tk, d


def _zero_empty_rows(out, mask):
    """Rows whose keys are all masked (a padded query) become 0 instead of NaN or a uniform average."""
    if mask is None:
        return out
    return out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def grouped_attention(q, k, v, mask=None):
    """Attention for any head ratio that reads each KV head once.

    The query heads of one group are folded into the rows: q (b, n_kv_heads*g, tq, d) -> (b, n_kv_heads, g*tq, d),
    so one fused attention call per KV head covers its whole group and K/V are never repeated. Two shapes take a
    shortcut: group_size == 1 (MHA) needs no folding, and a single row per KV head on a CPU (an MHA decode step) is
    a matrix-vector product done faster by :func:`_single_row_attention`.
    """
    b, h, hkv, tq, tk, d = _check_qkv(q, k, v, mask)
    g = h // hkv
    if g * tq == 1 and q.device.type == "cpu":
        return _single_row_attention(q, k, v, mask)
    if g == 1:
        return _zero_empty_rows(F.scaled_dot_product_attention(q, k, v, attn_mask=mask), mask)
    q_folded = q.reshape(b, hkv, g * tq, d)  # heads h = kv*g + j, so each kv's group is contiguous
    mask_folded = None
    if mask is not None:  # the same (tq, tk) mask for each of the g folded query heads
        mask = mask.expand(mask.shape[0], 1, tq, tk)
        mask_folded = mask.unsqueeze(2).expand(mask.shape[0], 1, g, tq, tk).reshape(mask.shape[0], 1, g * tq, tk)
    out = F.scaled_dot_product_attention(q_folded, k, v, attn_mask=mask_folded)
    # reshape, not view: CUDA's flash and memory-efficient kernels return (b, rows, n_kv_heads, d) memory seen as
    # (b, n_kv_heads, rows, d), which cannot be viewed as (b, n_heads, tq, d) once there are several KV heads.
    return _zero_empty_rows(out.reshape(b, h, tq, d), mask)


def _single_row_attention(q, k, v, mask):
    """One query row per KV head (an MHA decode step): a batched matrix-VECTOR product. Written as k @ q^T, the BLAS
    streams each K as the tall matrix, which on a CPU reads memory about 1.5x faster than SDPA's flash kernel
    (benchmarks/attention_bench.py)."""
    d = q.shape[-1]
    scores = (k @ (q * d ** -0.5).transpose(-1, -2)).transpose(-1, -2)  # (b, h, 1, tk)
    return _zero_empty_rows(masked_softmax(scores, mask) @ v, mask)


def masked_softmax(scores, mask):
    """softmax over keys with masked scores at -inf, in at least fp32; fully masked rows give 0, not NaN."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    upcast = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
    return torch.softmax(upcast, dim=-1).nan_to_num(0.0).to(scores.dtype)


def grouped_attention_math(q, k, v, mask=None):
    """The same as :func:`grouped_attention`, spelled out with matmuls (what the fused kernel does inside)."""
    b, h, hkv, tq, tk, d = _check_qkv(q, k, v, mask)
    g = h // hkv
    qg = q.reshape(b, hkv, g, tq, d) * d ** -0.5  # (b, n_kv_heads, group_size, tq, d)
    scores = qg @ k.unsqueeze(2).transpose(-1, -2)  # (b, n_kv_heads, group_size, tq, tk); k broadcast, not copied
    weights = masked_softmax(scores, None if mask is None else mask.unsqueeze(2))
    out = weights @ v.unsqueeze(2)  # (b, n_kv_heads, group_size, tq, d)
    return out.reshape(b, h, tq, d)


def repeat_kv_interleave(x, group_size: int):
    """(b, n_kv_heads, t, hd) -> (b, n_kv_heads*group_size, t, hd) with ``repeat_interleave``: always a new tensor
    of ``group_size`` times the bytes (skipped when group_size == 1, as Hugging Face's ``repeat_kv`` does)."""
    return x if group_size == 1 else x.repeat_interleave(group_size, dim=1)


def repeat_kv_expand(x, group_size: int):
    """Hugging Face's ``repeat_kv``: ``expand`` (a free view) then ``reshape``. The reshape must copy whenever
    n_kv_heads > 1; with a single KV head (MQA) it can stay a view with stride 0 over the heads."""
    if group_size == 1:
        return x
    b, hkv, t, d = x.shape
    return x[:, :, None].expand(b, hkv, group_size, t, d).reshape(b, hkv * group_size, t, d)


def attention_repeat_interleave(q, k, v, mask=None):
    """The common approach: materialise K/V for every query head, then run ordinary attention. Correct, but it
    copies ``group_size`` times the cache and throws away the bandwidth MQA/GQA saved."""
    _, h, hkv, *_ = _check_qkv(q, k, v, mask)
    g = h // hkv
    out = F.scaled_dot_product_attention(q, repeat_kv_interleave(k, g), repeat_kv_interleave(v, g), attn_mask=mask)
    return _zero_empty_rows(out, mask)


def attention_expand(q, k, v, mask=None):
    """Expand + reshape (Hugging Face's ``repeat_kv``), then ordinary attention."""
    _, h, hkv, *_ = _check_qkv(q, k, v, mask)
    g = h // hkv
    out = F.scaled_dot_product_attention(q, repeat_kv_expand(k, g), repeat_kv_expand(v, g), attn_mask=mask)
    return _zero_empty_rows(out, mask)


def attention_sdpa_gqa(q, k, v, mask=None):
    """PyTorch's built-in GQA support (``enable_gqa=True``, PyTorch >= 2.5)."""
    _check_qkv(q, k, v, mask)
    return _zero_empty_rows(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True), mask)


# The implementations notebooks 04 and 07, the tests and benchmarks/attention_bench.py compare, by display name.
# All take (q, k, v, mask=None) with the shapes at the top of this file and give the same answer.
DECODE_KERNELS = {
    "repeat_interleave": attention_repeat_interleave,
    "expand+reshape": attention_expand,
    "sdpa enable_gqa": attention_sdpa_gqa,
    "grouped view (course)": grouped_attention,
}
TRITON_KERNEL = "triton (course)"


def register_triton_kernel(kernels: dict = DECODE_KERNELS) -> bool:
    """Add notebook 12's Triton kernel to ``kernels`` when it runs compiled (a GPU with Triton). On a CPU Triton can
    only interpret, seconds per call, so it stays out of the tables that time the kernels (it is tested there all the
    same: tests/test_decode_kernel.py). Returns whether it was added."""
    from . import decode_kernel

    if decode_kernel.compiled():
        kernels[TRITON_KERNEL] = decode_kernel.gqa_decode_attention
    return TRITON_KERNEL in kernels


if torch.cuda.is_available():  # only a GPU can compile it; without one, importing Triton here would buy nothing
    register_triton_kernel()


# --------------------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------------------

class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``n_kv_heads`` shared K/V heads: MHA (n_kv_heads = n_heads), GQA, MQA (1)."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, head_dim: int | None = None,
                 bias: bool = False, device=None, dtype=None, computes_kv: bool = True):
        super().__init__()
        self.cfg = HeadConfig(d_model, n_heads, n_kv_heads, head_dim)
        c, kw = self.cfg, {"bias": bias, "device": device, "dtype": dtype}
        self.computes_kv = computes_kv  # False: cross-layer attention, this layer reads the K/V of the one below
        self.q_proj = nn.Linear(c.d_model, c.q_width, **kw)
        if computes_kv:
            self.k_proj = nn.Linear(c.d_model, c.kv_width, **kw)  # the only K/V weights: n_kv_heads of them
            self.v_proj = nn.Linear(c.d_model, c.kv_width, **kw)
        self.o_proj = nn.Linear(c.q_width, c.d_model, **kw)

    def check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (batch, seq, d_model), got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.cfg.d_model:
            raise ValueError(f"x must have shape (batch, seq, d_model={self.cfg.d_model}), got {tuple(x.shape)}")
        w = self.q_proj.weight
        if x.dtype != w.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the weights are {w.dtype}: convert one with .to()")
        if x.device != w.device:
            raise ValueError(f"x is on {x.device} but the weights are on {w.device}: move one with .to()")

    def queries(self, x):
        """x (b, t, d_model) -> q (b, n_heads, t, hd)."""
        b, t, _ = x.shape
        return self.q_proj(x).view(b, t, self.cfg.n_heads, self.cfg.head_dim).transpose(1, 2)

    def project(self, x):
        """x (b, t, d_model) -> q (b, n_heads, t, hd), k and v (b, n_kv_heads, t, hd)."""
        b, t, _ = x.shape
        c = self.cfg
        q = self.queries(x)
        k = self.k_proj(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        return q, k, v

    def merge(self, out):
        """(b, n_heads, t, hd) -> (b, t, d_model) through the output projection."""
        b, _, t, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.cfg.q_width))

    def forward(self, x, attention_mask=None, causal: bool = True, *, rope=None, cache=None, start: int = 0,
                mask=None, shared_kv=None, kv_out: list | None = None):
        """x: (batch, seq, d_model) -> (batch, seq, d_model).

        On its own (notebook 04): ``attention_mask`` (batch, seq), 1 = real token, 0 = padding, and ``causal``.
        Inside the model (notebook 05), as gpt-fast's ``Attention.forward``: ``rope`` = (cos, sin) rotates q and k
        before caching, so cached keys keep their positions; ``cache`` is a layer cache whose slots ``start ..
        start+seq-1`` receive the new K/V (only the n_kv_heads heads, never repeated); ``mask`` is the model's
        prebuilt (batch or 1, 1, seq, start+seq) bool mask, shared by all layers, or None for "see everything".
        Cross-layer attention (notebook 11): ``shared_kv`` = the (K, V) a layer below read, used instead of this
        layer's own; ``kv_out``, a list, receives the (K, V) this layer read, for a layer above to share (the output
        stays one tensor, so hooks on this module see what they always saw).
        """
        self.check_input(x)
        b, t, _ = x.shape
        if mask is not None and attention_mask is not None:
            raise ValueError("pass either attention_mask (a (batch, seq) padding mask) or mask (a prebuilt 4-d "
                             "attention mask), not both")
        if cache is None and shared_kv is None:
            if start:
                raise ValueError(f"start={start} needs a cache: without one the keys are just these {t} tokens")
            if mask is None:
                if attention_mask is not None:
                    attention_mask = check_attention_mask(attention_mask, b, t, x.device)
                mask = make_mask(t, t, causal=causal, attention_mask=attention_mask, device=x.device)
        elif attention_mask is not None:
            raise ValueError("with a cache, pass mask= covering the cached slots too (Transformer.forward builds it), "
                             "not attention_mask")
        out, kv = self._attend(x, rope, cache, start, mask, shared_kv)
        if kv_out is not None:
            kv_out.append(kv)
        return out

    def _attend(self, x, rope, cache, start, mask, shared_kv):
        if shared_kv is None and not self.computes_kv:
            raise ValueError("this layer has no K/V projections (cross-layer attention): it reads the K/V of the "
                             "layer below, passed as shared_kv")
        if shared_kv is not None:  # cross-layer attention: only the queries are this layer's own
            q, (k, v) = self.queries(x), shared_kv
        else:
            q, k, v = self.project(x)
            if rope is not None:
                k = apply_rotary(k, *rope)  # never v: values carry content, not position
            if cache is not None:
                k, v = cache.update(start, k, v)  # (b, n_kv_heads, start + t, hd) in q's dtype, never repeated
        if rope is not None:
            q = apply_rotary(q, *rope)
        return self.merge(grouped_attention(q, k, v, mask)), (k, v)

    # -- moving weights to and from the NumPy reference (x @ W layout) --
    _NAMES = (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj"))

    @torch.no_grad()
    def load_numpy(self, params: dict):
        """Copy weights from :func:`mqa_edu.numpy_attention.init_attention_params` (w is transposed: x @ W)."""
        for short, name in self._NAMES:
            lin = getattr(self, name)
            w = torch.as_tensor(params["w_" + short]).T
            if tuple(w.shape) != tuple(lin.weight.shape):
                raise ValueError(f"params['w_{short}'] has shape {tuple(w.shape[::-1])}, expected "
                                 f"{tuple(lin.weight.shape[::-1])} for this module's configuration")
            lin.weight.copy_(w)
            if lin.bias is not None:
                if "b_" + short not in params:
                    raise ValueError(f"the module has biases but params has no 'b_{short}'")
                lin.bias.copy_(torch.as_tensor(params["b_" + short]))
        return self

    def numpy_params(self) -> dict:
        """The weights as float64 NumPy arrays in the reference's layout."""
        out = {}
        for short, name in self._NAMES:
            lin = getattr(self, name)
            out["w_" + short] = lin.weight.detach().double().cpu().numpy().T.copy()
            if lin.bias is not None:
                out["b_" + short] = lin.bias.detach().double().cpu().numpy().copy()
        return out
