"""'Your turn' tasks of notebooks 01-05: the learner writes a small function and the check cell right after it judges
it on public cases, naming each known mistake. Every task is followed in the notebook by the package's own
implementation (``after`` says which), so a learner who is stuck can go on.

The references are NumPy, written here in their own words; the tests check them against mqa_edu.numpy_attention.
Checks of NumPy tasks import no torch.
"""
from __future__ import annotations

import numpy as np

from .questions import Mistake, Question


def _stable_softmax(scores):
    s = np.asarray(scores, dtype=np.float64)
    top = s.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(s - top)
    return e / np.sum(e, axis=-1, keepdims=True)


def _naive_softmax(scores):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(scores, dtype=np.float64))
        return e / np.sum(e, axis=-1, keepdims=True)


def _softmax_axis0(scores):
    return _stable_softmax(np.asarray(scores, dtype=np.float64).T).T


def _softmax_whole(scores):
    s = np.asarray(scores, dtype=np.float64)
    e = np.exp(s - s.max())
    return e / e.sum()


def _softmax_global_max(scores):  # one maximum for the whole array: rows far below it underflow to 0/0
    s = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        shifted = np.exp(s - s.max())
        return shifted / shifted.sum(-1)[..., None]


def _mask(n):
    return np.tril(np.ones((n, n), dtype=bool))


def _attention(q, k, v, mask, scale="sqrt_head_dim", fill=-np.inf, axis=-1):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    divide = {"sqrt_head_dim": np.sqrt(q.shape[-1]), "head_dim": q.shape[-1], "sqrt_seq": np.sqrt(k.shape[0])}[scale]
    scores = np.where(mask, q @ k.T / divide, fill)
    weights = _stable_softmax(scores) if axis == -1 else _softmax_axis0(scores)
    return weights @ v


def _attention_no_scale(q, k, v, mask):
    return _attention(np.asarray(q, dtype=np.float64) * np.sqrt(np.shape(q)[-1]), k, v, mask)


def _attention_mask_after(q, k, v, mask):  # softmax over every key, then the future zeroed: rows no longer sum to 1
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    return (_stable_softmax(q @ k.T / np.sqrt(q.shape[-1])) * mask) @ v


def _attention_no_mask(q, k, v, mask):
    return _attention(q, k, v, np.ones(np.shape(mask), dtype=bool))


def _qkv(seed, n, d):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=(n, d)).round(4) for _ in range(3))


def _split(x, n_heads):
    x = np.asarray(x, dtype=np.float64)
    b, t, w = x.shape
    return np.transpose(x.reshape(b, t, n_heads, w // n_heads), (0, 2, 1, 3))


def _split_no_transpose(x, n_heads):  # reshapes straight to (b, heads, t, hd): mixes tokens into heads
    x = np.asarray(x, dtype=np.float64)
    b, t, w = x.shape
    return x.reshape(b, n_heads, t, w // n_heads)


def _split_head_minor(x, n_heads):  # reads each token's vector as (head_dim, heads)
    x = np.asarray(x, dtype=np.float64)
    b, t, w = x.shape
    return np.transpose(x.reshape(b, t, w // n_heads, n_heads), (0, 3, 1, 2))


def _merge(x):
    x = np.asarray(x, dtype=np.float64)
    b, h, t, d = x.shape
    return np.transpose(x, (0, 2, 1, 3)).reshape(b, t, h * d)


def _merge_no_transpose(x):
    x = np.asarray(x, dtype=np.float64)
    b, h, t, d = x.shape
    return x.reshape(b, t, h * d)


def _merge_wrong_transpose(x):  # (b, h, t, d) -> (b, t, d, h): each token's numbers come out head-minor
    x = np.asarray(x, dtype=np.float64)
    b, h, t, d = x.shape
    return np.transpose(x, (0, 2, 3, 1)).reshape(b, t, h * d)


def _mha(x, w_q, w_k, w_v, w_o, n_heads, causal=True, scale="sqrt_head_dim", w_o_transposed=False):
    x = np.asarray(x, dtype=np.float64)
    q, k, v = (_split(x @ np.asarray(w), n_heads) for w in (w_q, w_k, w_v))
    t = x.shape[1]
    divide = np.sqrt(q.shape[-1]) if scale == "sqrt_head_dim" else np.sqrt(x.shape[-1])
    scores = q @ np.swapaxes(k, -1, -2) / divide
    mask = _mask(t) if causal else np.ones((t, t), dtype=bool)
    heads = _stable_softmax(np.where(mask, scores, -np.inf)) @ v
    w_o = np.asarray(w_o)
    return _merge(heads) @ (w_o.T if w_o_transposed else w_o)


def _mha_no_out(x, w_q, w_k, w_v, w_o, n_heads):
    return _mha(x, w_q, w_k, w_v, np.eye(np.shape(w_o)[0]), n_heads)


def _mha_one_head(x, w_q, w_k, w_v, w_o, n_heads):  # one softmax over the whole width: a single big head
    return _mha(x, w_q, w_k, w_v, w_o, 1)


def _mha_case(seed, b, t, d, h):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t, d)).round(4)
    ws = [rng.normal(0, d ** -0.5, size=(d, d)).round(4) for _ in range(4)]
    return (x, *ws, h)


QUESTIONS = {
    "nb01": [
        Question(
            "nb01.yt_softmax", "your turn: a stable softmax", 1, "function", "my_softmax",
            reference=_stable_softmax, rel_tol=1e-9,
            public_cases=lambda rng: [(np.array([[1.0, 2.0, 3.0]]),), (np.array([[1000.0, 1001.0, 1002.0],
                                                                                   [-5.0, 0.0, 5.0]]),),
                                      (np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]]),)],
            mistakes=[
                Mistake("no_max", _naive_softmax, "exp overflowed: subtract each row's maximum before exp (softmax "
                                                  "does not change when a constant is added to a row)."),
                Mistake("axis0", _softmax_axis0, "you normalised down the columns; each ROW (last axis) must sum "
                                                 "to 1."),
                Mistake("whole", _softmax_whole, "you normalised the whole array at once; normalise each row."),
                Mistake("global_max", _softmax_global_max,
                        "you subtracted ONE maximum for the whole array, so a row far below it underflows to 0/0: "
                        "subtract each row's own maximum (max over the last axis, keepdims=True)."),
            ],
            hint="e = exp(s - max of the row); return e / (sum of e over the row), with keepdims=True.",
            after="The notebook goes on with the package's na.softmax."),
        Question(
            "nb01.yt_causal_mask", "your turn: the causal mask", 1, "function", "my_causal_mask",
            reference=_mask, public_cases=lambda rng: [(1,), (4,), (6,)],
            mistakes=[
                Mistake("future", lambda n: _mask(n).T, "that lets each query see the FUTURE keys: query i may see "
                                                        "keys j <= i (lower triangle)."),
                Mistake("no_diagonal", lambda n: np.tril(np.ones((n, n), dtype=bool), -1),
                        "a token may attend to itself: keep the diagonal (j <= i, not j < i)."),
            ],
            hint="True where key j <= query i: np.tril of a boolean (n, n) matrix of ones.",
            after="The notebook goes on with the package's na.causal_mask."),
        Question(
            "nb01.yt_attention", "your turn: scaled dot-product attention", 1, "function", "my_attention",
            reference=_attention, rel_tol=1e-9,
            public_cases=lambda rng: [(*_qkv(1, 4, 8), _mask(4)), (*_qkv(2, 6, 4), _mask(6)),
                                      (*_qkv(3, 3, 16), np.ones((3, 3), dtype=bool))],
            mistakes=[
                Mistake("no_scale", _attention_no_scale, "divide the scores by sqrt(head_dim) before the softmax."),
                Mistake("mask_after", _attention_mask_after,
                        "you masked after the softmax, so the rows no longer sum to 1: set masked scores to -inf "
                        "BEFORE the softmax."),
                Mistake("no_mask", _attention_no_mask, "the mask was ignored: future keys got weight."),
                Mistake("scale_head_dim", lambda q, k, v, m: _attention(q, k, v, m, scale="head_dim"),
                        "you divided the scores by head_dim; divide by its square root, sqrt(head_dim)."),
                Mistake("scale_seq", lambda q, k, v, m: _attention(q, k, v, m, scale="sqrt_seq"),
                        "you divided by the square root of the sequence length; the scale is sqrt(head_dim), the "
                        "length of each query and key vector (q.shape[-1])."),
                Mistake("fill_zero", lambda q, k, v, m: _attention(q, k, v, m, fill=0.0),
                        "masked scores set to 0 still get weight (exp(0) = 1): set them to -inf, so that exp gives 0."),
                Mistake("softmax_axis0", lambda q, k, v, m: _attention(q, k, v, m, axis=0),
                        "your softmax ran down the columns (over queries); each query's row of weights over the keys "
                        "must sum to 1: softmax over the last axis."),
            ],
            hint="scores = q @ k.T / sqrt(head_dim); masked scores -> -inf; softmax over each row; weights @ v.",
            after="The notebook goes on with the package's na.scaled_dot_product_attention."),
    ],
    "nb02": [
        Question(
            "nb02.yt_split_heads", "your turn: split into heads", 1, "function", "my_split_heads",
            reference=_split,
            public_cases=lambda rng: [(np.arange(24.0).reshape(1, 3, 8), 2), (np.arange(48.0).reshape(2, 2, 12), 3)],
            mistakes=[
                Mistake("no_transpose", _split_no_transpose,
                        "you reshaped straight to (batch, n_heads, seq, head_dim), which mixes tokens into heads: "
                        "reshape to (batch, seq, n_heads, head_dim) first, then swap the seq and head axes."),
                Mistake("head_minor", _split_head_minor,
                        "you read each token's vector as (head_dim, n_heads); its first head_dim numbers belong to "
                        "head 0: reshape to (batch, seq, n_heads, head_dim)."),
            ],
            hint="(batch, seq, n_heads * head_dim) -> reshape (batch, seq, n_heads, head_dim) -> transpose "
                 "(0, 2, 1, 3).",
            after="The notebook goes on with the package's na.split_heads."),
        Question(
            "nb02.yt_merge_heads", "your turn: merge the heads back", 1, "function", "my_merge_heads",
            reference=_merge,
            public_cases=lambda rng: [(np.arange(24.0).reshape(1, 2, 3, 4),), (np.arange(36.0).reshape(1, 3, 2, 6),)],
            mistakes=[Mistake("no_transpose", _merge_no_transpose,
                              "swap the head and seq axes back before the reshape, or tokens get mixed."),
                      Mistake("wrong_transpose", _merge_wrong_transpose,
                              "your transpose put head_dim before the heads, so each token's numbers come out "
                              "interleaved across heads: transpose (0, 2, 1, 3), giving (batch, seq, n_heads, "
                              "head_dim), then reshape.")],
            hint="(batch, n_heads, seq, head_dim) -> transpose (0, 2, 1, 3) -> reshape (batch, seq, n_heads * "
                 "head_dim): the exact inverse of splitting.",
            after="The notebook goes on with the package's na.merge_heads."),
        Question(
            "nb02.yt_multi_head", "your turn: a multi-head forward pass", 1, "function", "my_multi_head",
            reference=_mha, rel_tol=1e-9,
            public_cases=lambda rng: [_mha_case(1, 1, 4, 8, 2), _mha_case(2, 2, 5, 12, 3)],
            mistakes=[
                Mistake("no_output_projection", _mha_no_out, "the merged heads still go through w_o."),
                Mistake("one_head", _mha_one_head, "that is ONE head of full width: split q, k and v into n_heads "
                                                   "heads, each with its own softmax."),
                Mistake("no_causal_mask", lambda *a: _mha(*a, causal=False),
                        "no causal mask: every token attended to the tokens after it. Mask each head's scores "
                        "(-inf above the diagonal) before the softmax."),
                Mistake("scale_d_model", lambda *a: _mha(*a, scale="sqrt_d_model"),
                        "you scaled by sqrt(d_model); each head's scores are dot products of head_dim numbers: "
                        "divide by sqrt(head_dim) = sqrt(d_model / n_heads)."),
                Mistake("w_o_transposed", lambda *a: _mha(*a, w_o_transposed=True),
                        "w_o is applied as merged @ w_o (the same convention as x @ w_q), not transposed."),
            ],
            hint="project with w_q, w_k, w_v; split each into heads; causal attention per head; merge; @ w_o.",
            after="The notebook goes on with the package's na.multi_head_attention."),
    ],
}


def _mapping(n_heads, n_kv_heads):
    return [h // (n_heads // n_kv_heads) for h in range(n_heads)]


def _repeat(k, g):
    return np.repeat(np.asarray(k, dtype=np.float64), g, axis=1)


def _tile(k, g):
    return np.tile(np.asarray(k, dtype=np.float64), (1, g, 1, 1))


def _heads_tensor(b, n_kv, t, d):
    """K/V heads whose entries say which head they are (head i is filled around the value i)."""
    rng = np.random.default_rng(n_kv * 7 + t)
    return (np.arange(n_kv)[None, :, None, None] + 0.1 * rng.normal(size=(b, n_kv, t, d))).round(4)


def _grouped(q, k, v, mask, pairing="repeat", scale=True, masked=True):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    g = q.shape[1] // k.shape[1]
    spread = _repeat if pairing == "repeat" else _tile
    k, v = spread(k, g), spread(v, g)
    scores = q @ np.swapaxes(k, -1, -2) / (np.sqrt(q.shape[-1]) if scale else 1.0)
    return _stable_softmax(np.where(mask, scores, -np.inf) if masked else scores) @ v


def _grouped_case(seed, b, h, kv, t, d):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(b, h, t, d)).round(4)
    return (q, _heads_tensor(b, kv, t, d), rng.normal(size=(b, kv, t, d)).round(4), _mask(t))


QUESTIONS["nb03"] = [
    Question(
        "nb03.yt_head_mapping", "your turn: which K/V head each query head reads", 1, "function", "my_head_mapping",
        reference=_mapping, public_cases=lambda rng: [(8, 2), (9, 3), (12, 4), (8, 8), (8, 1)],
        mistakes=[
            Mistake("tile", lambda h, kv: [i % kv for i in range(h)],
                    "that is the tile (Tensor.repeat) order: neighbouring query heads share a K/V head, so head h "
                    "reads h // group_size."),
            Mistake("divide_by_kv", lambda h, kv: [i // kv for i in range(h)],
                    "divide by the group size (n_heads // n_kv_heads), not by n_kv_heads."),
        ],
        hint="group_size = n_heads // n_kv_heads; query head h reads K/V head h // group_size.",
        after="The notebook goes on with the package's head_mapping."),
    Question(
        "nb03.yt_repeat_kv", "your turn: repeat the K/V heads in the right order", 1, "function", "my_repeat_kv",
        reference=_repeat, public_cases=lambda rng: [(_heads_tensor(1, 2, 3, 2), 4), (_heads_tensor(2, 3, 2, 2), 2),
                                                     (_heads_tensor(1, 1, 2, 2), 3)],
        mistakes=[Mistake("tile", _tile, "that copies the whole block of heads (0, 1, 0, 1, ...), the tile order; "
                                         "each head must be copied in place (0, 0, 1, 1, ...): np.repeat along "
                                         "axis 1.")],
        hint="np.repeat(k, group_size, axis=1): (batch, n_kv_heads, seq, hd) -> (batch, n_heads, seq, hd).",
        after="The notebook goes on with the package's na.repeat_kv."),
    Question(
        "nb03.yt_grouped", "your turn: GQA through the grouped view", 1, "function", "my_grouped_attention",
        reference=_grouped, rel_tol=1e-9,
        public_cases=lambda rng: [_grouped_case(1, 1, 8, 2, 4, 4), _grouped_case(2, 2, 9, 3, 5, 2),
                                  _grouped_case(3, 1, 4, 4, 3, 4), _grouped_case(4, 1, 6, 1, 4, 2)],
        mistakes=[
            Mistake("tile", lambda q, k, v, m: _grouped(q, k, v, m, pairing="tile"),
                    "query heads were paired with the wrong K/V heads (the tile order): view q as (batch, "
                    "n_kv_heads, group_size, seq, head_dim), so that neighbouring query heads share one K/V head."),
            Mistake("no_scale", lambda q, k, v, m: _grouped(q, k, v, m, scale=False),
                    "divide the scores by sqrt(head_dim)."),
            Mistake("no_mask", lambda q, k, v, m: _grouped(q, k, v, m, masked=False),
                    "the mask was not applied: in the grouped view the scores are (batch, n_kv_heads, group_size, "
                    "seq, seq), and the (seq, seq) mask broadcasts over the first three axes; -inf where it is "
                    "False."),
        ],
        hint="qg = q.reshape(b, n_kv, g, t, d); k[:, :, None] broadcasts over the group; causal softmax; reshape "
             "the output back to (b, n_heads, t, d).",
        after="The notebook goes on with the package's na.grouped_query_attention."),
]


# ---------------------------------------------------------------------------------------------- 04-05: torch tasks
def _torch():
    import torch  # only the torch tasks' checks import it

    return torch


def _pad_mask(attention_mask, seq, causal=True, pad=True, pad_on="keys"):
    torch = _torch()
    am = torch.as_tensor(attention_mask).bool()
    allowed = torch.ones(am.shape[0], 1, seq, seq, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(seq, seq, dtype=torch.bool).tril()
    if pad:
        allowed = allowed & (am[:, None, None, :] if pad_on == "keys" else am[:, None, :, None])
    return allowed


def _attention_masks():
    torch = _torch()
    return [(torch.tensor([[1, 1, 1], [0, 1, 1]]), 3), (torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]]), 4),
            (torch.tensor([[1, 1]]), 2)]


def _batched(q, k, v, mask, pairing="repeat", nan_rows=False, scale=True, fill=float("-inf"), mask_after=False):
    torch = _torch()
    g = q.shape[1] // k.shape[1]
    if pairing == "repeat":
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    else:
        k, v = k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1)
    scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5 if scale else 1.0)
    if mask_after:  # softmax over every key, then the hidden ones zeroed: rows no longer sum to 1
        return (torch.softmax(scores, dim=-1) * mask) @ v
    weights = torch.softmax(scores.masked_fill(~mask, fill), dim=-1)
    if not nan_rows:
        weights = weights.nan_to_num(0.0)  # a padded query sees no key: its row is defined as zeros
    return weights @ v


def _batched_case(seed, b, h, kv, t, d, lengths):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t, d, generator=gen, dtype=torch.float64)
    k = torch.randn(b, kv, t, d, generator=gen, dtype=torch.float64) + torch.arange(kv, dtype=torch.float64)[
        None, :, None, None]
    v = torch.randn(b, kv, t, d, generator=gen, dtype=torch.float64)
    am = torch.tensor([[0] * (t - n) + [1] * n for n in lengths])
    return (q, k, v, _pad_mask(am, t))


QUESTIONS["nb04"] = [
    Question(
        "nb04.yt_mask", "your turn: causal and padding mask together", 1, "function", "my_mask",
        reference=_pad_mask, public_cases=lambda rng: _attention_masks(),
        mistakes=[
            Mistake("no_padding", lambda am, s: _pad_mask(am, s, pad=False), "the padded keys are still visible: AND "
                                                                             "the causal mask with attention_mask."),
            Mistake("no_causal", lambda am, s: _pad_mask(am, s, causal=False), "queries see their future: AND with "
                                                                               "the lower triangle."),
            Mistake("pad_queries", lambda am, s: _pad_mask(am, s, pad_on="queries"),
                    "you hid padded QUERIES (rows); the padding mask hides padded KEYS: attention_mask[:, None, None, "
                    ":] broadcasts over the rows."),
        ],
        hint="allowed = tril(ones(seq, seq)) & attention_mask[:, None, None, :].bool(), shape (batch, 1, seq, seq).",
        after="The notebook goes on with the package's make_mask."),
    Question(
        "nb04.yt_batched_gqa", "your turn: batched GQA with padding, no NaN", 1, "function", "my_batched_gqa",
        reference=_batched, rel_tol=1e-9,
        public_cases=lambda rng: [_batched_case(1, 2, 8, 2, 4, 4, [4, 2]), _batched_case(2, 3, 4, 4, 3, 2, [3, 1, 2]),
                                  _batched_case(3, 1, 6, 1, 5, 4, [3])],
        mistakes=[
            Mistake("nan_rows", lambda q, k, v, m: _batched(q, k, v, m, nan_rows=True),
                    "a padded query sees no key at all, so its softmax is 0/0 = NaN: set those rows to zero "
                    "(nan_to_num, or where the row has no visible key)."),
            Mistake("tile", lambda q, k, v, m: _batched(q, k, v, m, pairing="tile"),
                    "query heads were paired with the wrong K/V heads: Tensor.repeat tiles the block; use "
                    "repeat_interleave (or the grouped view)."),
            Mistake("no_scale", lambda q, k, v, m: _batched(q, k, v, m, scale=False),
                    "divide the scores by sqrt(head_dim)."),
            Mistake("fill_large_negative", lambda q, k, v, m: _batched(q, k, v, m, fill=-1e9),
                    "a finite fill (-1e9) hides keys from a query that sees some, but a padded query that sees none "
                    "gets a UNIFORM row over the padding instead of zeros: fill with -inf and set rows with no "
                    "visible key to 0."),
            Mistake("mask_after_softmax", lambda q, k, v, m: _batched(q, k, v, m, mask_after=True),
                    "you masked after the softmax, so the rows no longer sum to 1: masked_fill the SCORES with -inf "
                    "before the softmax."),
        ],
        hint="expand K/V with repeat_interleave(group_size, dim=1) (or fold the group into the rows), scores / "
             "sqrt(d), masked_fill(~mask, -inf), softmax, nan_to_num(0), @ v.",
        after="The notebook goes on with the package's GroupedQueryAttention."),
]


def _rope(x, positions, theta=10000.0, offset=0, base_step=2, sign=1, tables="cat"):
    torch = _torch()
    x = torch.as_tensor(x, dtype=torch.float64)
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / (d if base_step == 2 else d / 2))
    angles = (torch.as_tensor(positions, dtype=torch.float64) + offset)[:, None] * inv_freq[None, :]
    if tables == "cat":  # the halves layout: frequency i at i and at i + d/2
        cos, sin = torch.cat([angles.cos(), angles.cos()], -1), torch.cat([angles.sin(), angles.sin()], -1)
    else:  # repeat_interleave: frequency i at 2i and 2i + 1, the interleaved layout's tables
        cos, sin = angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)
    rotated = sign * torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def _rope_pairs(x, positions):  # rotates neighbouring pairs (x0, x1), (x2, x3): the interleaved layout
    torch = _torch()
    x = torch.as_tensor(x, dtype=torch.float64)
    d = x.shape[-1]
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * inv_freq[None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * angles.cos() - b * angles.sin()
    out[..., 1::2] = a * angles.sin() + b * angles.cos()
    return out


def _decode(q, k, v, k_cache, v_cache, length, rotate_v=False, pos_offset=0, rotate_q=True, whole_buffer=False):
    """One decode step of one head: rotate the new q and k at position ``length`` (the cache length BEFORE the write),
    write k and v into slot ``length``, attend over slots 0..length."""
    torch = _torch()
    q, k, v = (torch.as_tensor(t, dtype=torch.float64) for t in (q, k, v))
    pos = [length + pos_offset]
    q, k = (_rope(q[None], pos)[0] if rotate_q else q), _rope(k[None], pos)[0]
    if rotate_v:
        v = _rope(v[None], pos)[0]
    end = len(k_cache) if whole_buffer else length  # whole_buffer: slots past the new token are read too
    keys = torch.cat([torch.as_tensor(k_cache, dtype=torch.float64)[:length], k[None],
                      torch.as_tensor(k_cache, dtype=torch.float64)[length + 1:end + 1]])
    values = torch.cat([torch.as_tensor(v_cache, dtype=torch.float64)[:length], v[None],
                        torch.as_tensor(v_cache, dtype=torch.float64)[length + 1:end + 1]])
    weights = torch.softmax(keys @ q / q.shape[-1] ** 0.5, dim=0)
    return weights @ values


def _decode_case(seed, length, max_len, d):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    k_cache = torch.randn(max_len, d, generator=gen, dtype=torch.float64)
    v_cache = torch.randn(max_len, d, generator=gen, dtype=torch.float64)
    q, k, v = (torch.randn(d, generator=gen, dtype=torch.float64) for _ in range(3))
    return (q, k, v, k_cache, v_cache, length)


QUESTIONS["nb05"] = [
    Question(
        "nb05.yt_rope", "your turn: rotary position embeddings", 1, "function", "my_rope",
        reference=_rope, rel_tol=1e-9,
        public_cases=lambda rng: [(_torch().eye(4, dtype=_torch().float64)[:3] + 1, [0, 1, 2]),
                                  (_torch().arange(16.0).reshape(2, 8) / 10, [5, 9]),
                                  (_torch().ones(3, 8), [0, 100, 1000])],
        mistakes=[
            Mistake("off_by_one", lambda x, p: _rope(x, p, offset=1), "positions start at 0: the first token is not "
                                                                      "rotated at all."),
            Mistake("frequencies", lambda x, p: _rope(x, p, base_step=1),
                    "the frequencies are theta ** (-2i / head_dim) for i = 0 .. head_dim/2 - 1 (the exponent steps by "
                    "2 / head_dim)."),
            Mistake("pairs", _rope_pairs, "you rotated neighbouring pairs (x0, x1), (x2, x3), ...; the course (and "
                                          "Hugging Face) rotate the two halves: x[i] with x[i + head_dim/2]."),
            Mistake("rotate_half_sign", lambda x, p: _rope(x, p, sign=-1),
                    "the sign in rotate-half is flipped, which rotates the wrong way: rotate_half(x) = cat(-x2, x1), "
                    "the minus on the SECOND half."),
            Mistake("tables_interleaved", lambda x, p: _rope(x, p, tables="interleave"),
                    "cos and sin were built with repeat_interleave (frequency i at 2i and 2i+1), the tables of the "
                    "interleaved layout; with rotate-half's halves, frequency i belongs at i and i + head_dim/2: "
                    "cat([cos, cos], -1)."),
            Mistake("wrong_base", lambda x, p: _rope(x, p, theta=500000.0),
                    "the frequency base is theta = 10,000 here (500,000 is Llama 3's): inv_freq = 10000 ** "
                    "(-arange(0, d, 2) / d)."),
        ],
        hint="angles = positions[:, None] * theta ** (-arange(0, d, 2) / d); cos/sin repeated twice along the last "
             "axis; x * cos + cat(-x2, x1) * sin, where x1, x2 are the two halves of x.",
        after="The notebook goes on with the package's rotary module."),
    Question(
        "nb05.yt_decode_step", "your turn: one decode step with a cache", 1, "function", "my_decode_step",
        reference=_decode, rel_tol=1e-9,
        public_cases=lambda rng: [_decode_case(1, 0, 4, 4), _decode_case(2, 3, 8, 8), _decode_case(3, 6, 7, 4)],
        mistakes=[
            Mistake("rotate_v", lambda *a: _decode(*a, rotate_v=True), "only queries and keys are rotated; values "
                                                                       "carry content, not position."),
            Mistake("position_after_write", lambda *a: _decode(*a, pos_offset=1),
                    "the new token's position is the cache length BEFORE the write (it is token number `length`, "
                    "counting from 0), not after it."),
            Mistake("q_not_rotated", lambda *a: _decode(*a, rotate_q=False),
                    "rotate the new query as well as the new key, both at position `length`: the scores q . k then "
                    "depend only on the distance between positions."),
            Mistake("whole_buffer", lambda *a: _decode(*a, whole_buffer=True),
                    "you attended over the whole max_len buffer; the slots after the new token hold no token yet "
                    "(stale or empty memory): attend over slots 0 .. length only."),
        ],
        hint="pos = length; rotate q and k with my_rope at [pos]; keys = cache[:length] then k; the same for values; "
             "softmax(keys @ q / sqrt(d)) @ values.",
        after="The notebook goes on with the package's KVCache and model."),
]
