"""'Your turn' tasks of notebooks 06-12 (the second half): sizing a cache from a config, the decode floor and its
arithmetic intensity, comparing heads, the training step, and pooling a real model's layer by hand. Like the tasks of
01-05 (yourturn.py), each check runs public cases at once and names every known mistake.

None of them is a graded exercise under another name: where a graded question asks about the same idea, it asks a
harder variant (ex01 sizes from explicit arguments with hidden traps, ex02 takes JS from masked scores, ex03 pools into
any number of groups, ex04 adds the weights to the floor); tests/test_your_turn.py runs every task on the graded
questions' cases to keep it so. The references are written here; the tests check them against the package.
"""
from __future__ import annotations

import math

import numpy as np

from .questions import Mistake, Question

GB, GiB = 10**9, 2**30


# ---------------------------------------------------------------------------------------------- 06: sizing
def _config_layers(config, kv_key="num_key_value_heads", explicit_head_dim=True, windows="types"):
    """[(n_kv_heads, head_dim, window or None)] per layer, read from a Hugging Face-style config dict."""
    heads = config["num_attention_heads"]
    n_kv = config.get(kv_key) or heads if kv_key else heads
    head_dim = config.get("head_dim") if explicit_head_dim else None
    head_dim = head_dim or config["hidden_size"] // heads
    window = config.get("sliding_window", None)
    types = config.get("layer_types") if windows == "types" else None
    layers = []
    for i in range(config["num_hidden_layers"]):
        sliding = window is not None and windows != "none" and (types is None or types[i] == "sliding_attention")
        layers.append((n_kv, head_dim, window if sliding else None))
    return layers


def _cache_bytes(config, context, batch=1, bytes_per_element=2, factor=2, **read):
    """K and V of every layer: a windowed layer keeps at most `window` tokens, a global one all of them."""
    return sum(factor * n_kv * hd * (min(context, w) if w else context)
               for n_kv, hd, w in _config_layers(config, **read)) * batch * bytes_per_element


def _max_context(config, budget_bytes, batch=1, bytes_per_element=2, how="exact"):
    """The longest context, up to the model's max_position_embeddings, whose cache fits the budget (0 if none).
    When every layer slides and the full windows fit, every context fits: the model's own limit is the answer."""
    read = {"windows": "none"} if how == "no_window" else {}
    size = lambda n: _cache_bytes(config, n, batch, bytes_per_element, **read)  # noqa: E731
    limit = config["max_position_embeddings"]
    if how == "round":  # the budget over the first token's bytes, rounded to the nearest
        return min(limit, round(budget_bytes / size(1)))
    lo, hi = 0, limit + 1  # size(lo) fits (0 tokens cost nothing); hi is past the model's limit
    while hi - lo > 1:  # the cache grows with the context, so bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) <= budget_bytes else (lo, mid)
    return lo


_BASE = {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8, "max_position_embeddings": 4096}


def _configs():
    return [
        {**_BASE, "num_key_value_heads": 2},  # GQA-4
        {**_BASE, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 64},  # head_dim given: not 256/16
        {**_BASE},  # no num_key_value_heads: MHA
        {**_BASE, "num_key_value_heads": 1, "sliding_window": 64},  # every layer windowed (Mistral v0.1's kind)
        {**_BASE, "num_key_value_heads": 2, "sliding_window": 32,  # some layers windowed (Gemma-2/3's kind)
         "layer_types": ["sliding_attention", "full_attention"] * 2},
    ]


def _sizing_cases(rng):
    configs = _configs()
    return [(configs[0], 100), (configs[1], 50, 2), (configs[2], 10, 1, 4), (configs[3], 100), (configs[3], 40, 3),
            (configs[4], 200), (configs[4], 20, 1, 1)]


def _context_cases(rng):
    configs = _configs()
    return [(configs[0], 1_000_000), (configs[1], 3_000_000, 2), (configs[2], 5_000_000, 1, 4),
            (configs[4], 700_000), (configs[4], 300_000, 1, 1), (configs[3], 10_000), (configs[3], 1_000_000)]


# ---------------------------------------------------------------------------------------------- 07: decode floor
def _floor_us(batch, n_heads, n_kv_heads, context, head_dim, bytes_per_element, bandwidth_gb_s, heads="kv",
              factor=2, unit=GB, scale=1e6):
    """One layer's decode attention at the memory floor: its K and V cache read once at full bandwidth (µs)."""
    n = n_kv_heads if heads == "kv" else n_heads
    return factor * batch * n * context * head_dim * bytes_per_element / (bandwidth_gb_s * unit) * scale


def _intensity(batch, n_heads, n_kv_heads, context, head_dim, bytes_per_element, flops_per_mac=2, bytes_heads="kv",
               kv_factor=2):
    """FLOP per byte of decode attention: q.k and p.v over the context for every query head, over the K/V bytes."""
    flops = 2 * flops_per_mac * batch * n_heads * context * head_dim
    n = n_kv_heads if bytes_heads == "kv" else n_heads
    return flops / (kv_factor * batch * n * context * head_dim * bytes_per_element)


def _floor_cases(rng):
    return [(1, 32, 8, 8192, 128, 2, 3350), (8, 32, 32, 1024, 128, 2, 2039), (4, 71, 1, 2048, 64, 2, 900),
            (2, 8, 2, 500, 64, 4, 30)]


def _intensity_cases(rng):
    return [(1, 32, 8, 4096, 128, 2), (8, 32, 32, 1024, 128, 2), (4, 71, 1, 2048, 64, 2), (2, 8, 2, 500, 64, 4),
            (3, 9, 3, 100, 16, 1)]


# ---------------------------------------------------------------------------------------------- 08: comparing heads
def _kl_rows(p, q):
    p, q = (np.asarray(m, dtype=np.float64) for m in (p, q))
    safe = lambda a: np.where(p > 0, a, 1.0)  # noqa: E731  0 log 0 = 0
    with np.errstate(divide="ignore"):  # KL(p || q) is infinite where q is 0 and p is not (the "kl" mistake)
        return np.where(p > 0, p * (np.log(safe(p)) - np.log(safe(q))), 0.0).sum(axis=-1)


def _js(p, q):
    """Per row of two probability arrays (..., n): JS(p, q) in nats, with 0 log 0 = 0."""
    m = 0.5 * (np.asarray(p, dtype=np.float64) + np.asarray(q, dtype=np.float64))
    return 0.5 * _kl_rows(p, m) + 0.5 * _kl_rows(q, m)


def _js_naive(p, q):  # p log(p/m) computed straight: 0 * log 0 gives NaN
    p, q = (np.asarray(m, dtype=np.float64) for m in (p, q))
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def _rows(seed, n, zeros=True):
    rng = np.random.default_rng(seed)
    p = rng.random((n, n)) ** 3
    if zeros:
        p = np.tril(p)  # causal rows: the future keys have weight 0
    return (p / p.sum(-1, keepdims=True)).round(12)


def _js_cases(rng):
    return [(np.array([0.5, 0.5]), np.array([0.9, 0.1])), (_rows(1, 5), _rows(2, 5)), (_rows(3, 4, False),
                                                                                       _rows(3, 4, False)),
            (np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))]


def _map_cosine(a, b, how="flat"):
    """Cosine similarity of two heads' attention maps ((queries, keys) each), flattened into one vector each."""
    a, b = (np.asarray(m, dtype=np.float64) for m in (a, b))
    if how == "rows":  # one cosine per query row, then their mean
        return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).mean())
    a, b = a.ravel(), b.ravel()
    dot = float(a @ b)
    return {"flat": dot / (np.linalg.norm(a) * np.linalg.norm(b)), "dot": dot,
            "no_sqrt": dot / float((a @ a) * (b @ b))}[how]


def _cosine_cases(rng):
    return [(_rows(4, 5), _rows(5, 5)), (_rows(6, 3, False), _rows(6, 3, False)),
            (np.array([[1.0, 0.0], [0.5, 0.5], [0.1, 0.9]]), np.array([[1.0, 0.0], [0.9, 0.1], [0.2, 0.8]]))]


# ---------------------------------------------------------------------------------------------- 09: training
def _torch():
    import torch  # only the torch tasks' checks import it

    return torch


def _windows(tokens, starts, seq_len, shift=1, extra=0):
    """(inputs, targets), each (len(starts), seq_len): targets are the inputs moved one token on."""
    torch = _torch()
    tokens = torch.as_tensor(tokens)
    x = torch.stack([tokens[s:s + seq_len + extra] for s in starts])
    y = torch.stack([tokens[s + shift:s + shift + seq_len + extra] for s in starts])
    return x, y


def _window_cases(rng):
    torch = _torch()
    return [(torch.arange(20), [0, 5], 4), (torch.arange(100, 140), [3, 30, 11], 6), (torch.tensor([7, 3, 9, 1, 4]),
                                                                                     [1], 3)]


def train_step(model, optimizer, inputs, targets, grad_clip, order="right", clip=True, flatten=True):
    """One training step: forward, mean next-token cross-entropy, backward, clip the gradient norm, optimizer step.
    Returns the loss as a float. Written here in its own words; mqa_edu.train.train_step is the package's."""
    torch = _torch()
    logits = model(inputs)
    if flatten:
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
    else:  # every position's loss summed, not averaged
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
    if order != "no_zero":
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), grad_clip)
    if order != "no_step":
        optimizer.step()
    return loss.item()


def training_run(step, seed=0, steps=4):
    """Train a tiny fresh model for a few steps with ``step`` (a learner's train step) and return what was measured:
    the loss of every step and the final weights' sum. A fresh model per call, so a check can run the reference and
    the learner's step on the same start."""
    torch = _torch()
    from mqa_edu.model import ModelConfig, Transformer

    torch.manual_seed(seed)
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, vocab_size=11, max_seq_len=8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        tokens = torch.randint(0, 11, (3, 9), generator=gen)
        loss = step(model, optimizer, tokens[:, :-1], tokens[:, 1:], 0.2)
        losses.append(float(loss))
    weights = float(sum(p.detach().double().sum() for p in model.parameters()))
    return [round(v, 10) for v in losses] + [round(weights, 8)]


def runs_of(step):
    """What a check cell passes for the train-step task: the learner's step, run from a fresh model per case."""
    return lambda seed, steps: training_run(step, seed, steps)


# ---------------------------------------------------------------------------------------------- 10: a real layer
def _pool_mqa(weight, n_kv_heads, how="mean"):
    """(n_kv_heads * head_dim, d_model) K or V projection weight -> (head_dim, d_model): the mean of its heads."""
    torch = _torch()
    w = torch.as_tensor(weight, dtype=torch.float64)
    heads = w.reshape(n_kv_heads, w.shape[0] // n_kv_heads, w.shape[1])
    if how == "head_minor":  # the rows read as (head_dim, n_kv_heads)
        heads = w.reshape(w.shape[0] // n_kv_heads, n_kv_heads, w.shape[1]).transpose(0, 1)
    if how == "columns":  # pooled over the input side (d_model), as if the weight were (d_model, out)
        return w.reshape(w.shape[0], n_kv_heads, -1).mean(1)
    return {"mean": heads.mean(0), "sum": heads.sum(0), "first": heads[0]}.get(how, heads.mean(0))


def _pool_cases(rng):
    torch = _torch()
    gen = torch.Generator().manual_seed(5)
    return [(torch.randn(3 * 4, 6, generator=gen, dtype=torch.float64), 3),
            (torch.randn(2 * 2, 4, generator=gen, dtype=torch.float64), 2),
            (torch.randn(4 * 2, 8, generator=gen, dtype=torch.float64), 4)]


def _perplexity(logits, ids, how="right"):
    """e to the mean next-token cross-entropy of (1, T, V) logits on (1, T) ids: position t predicts id t + 1."""
    torch = _torch()
    logits, ids = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(ids)
    if how == "no_shift":
        pred, target = logits, ids
    else:
        pred, target = logits[:, :-1], ids[:, 1:]
    nll = torch.nn.functional.cross_entropy(pred.flatten(0, 1), target.flatten(), reduction="none")
    if how == "mean_of_exp":
        return float(nll.exp().mean())
    if how == "base2":  # 2 to the loss in nats: mixes the bases
        return float(2 ** nll.mean())
    return float(nll.mean().exp())


def _ppl_cases(rng):
    torch = _torch()
    gen = torch.Generator().manual_seed(9)
    return [(torch.randn(1, 6, 5, generator=gen, dtype=torch.float64) * 2, torch.tensor([[0, 3, 1, 4, 4, 2]])),
            (torch.randn(1, 10, 7, generator=gen, dtype=torch.float64), torch.randint(0, 7, (1, 10), generator=gen))]


# ---------------------------------------------------------------------------------------------- 11: MLA
def _mla_case(seed, h, hd, r, dr, length):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(h, hd)).round(4), rng.normal(size=(h, dr)).round(4), rng.normal(size=(length, r)).round(4),
            rng.normal(size=(length, dr)).round(4), (rng.normal(size=(h, hd, r)) / np.sqrt(r)).round(4),
            (rng.normal(size=(h, hd, r)) / np.sqrt(r)).round(4))


def _up_project(c, w_up, how="right"):
    """Cached latents c (length, r) -> per-head vectors (h, length, hd) through w_up (h, hd, r)."""
    c, w_up = np.asarray(c, dtype=np.float64), np.asarray(w_up, dtype=np.float64)
    if how == "no_transpose":  # c @ w_up read as (h, r, hd): the rows and columns of each head's matrix swapped
        return c @ w_up.reshape(w_up.shape[0], w_up.shape[2], w_up.shape[1])
    if how == "shared":  # one matrix for all heads (the first head's)
        return np.repeat((c @ w_up[0].T)[None], w_up.shape[0], axis=0)
    return np.einsum("lr,hdr->hld", c, w_up)


def _step(q_nope, q_rope, c, k_rope, w_uk, w_uv, scale="both", rope=True, absorbed=True):
    """One decode step of MLA for one token: (h, hd) out. With ``absorbed``, W_UK goes into the query and W_UV after
    the weighted sum of latents, so no per-head key or value is ever built."""
    q_nope, q_rope, c, k_rope, w_uk, w_uv = (np.asarray(a, dtype=np.float64) for a in
                                             (q_nope, q_rope, c, k_rope, w_uk, w_uv))
    hd, dr = q_nope.shape[-1], q_rope.shape[-1]
    q_lat = np.einsum("hd,hdr->hr", q_nope, w_uk)  # (h, r)
    scores = q_lat @ c.T + (q_rope @ k_rope.T if rope else 0.0)  # (h, length)
    scores = scores / np.sqrt({"both": hd + dr, "nope": hd}[scale])
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    return np.einsum("hr,hdr->hd", p @ c, w_uv)


# ---------------------------------------------------------------------------------------------- 12: the kernel
KERNEL_BLOCK = 16  # the slots per block of the notebook's launcher (a mistake in the online softmax shows per block)


def _decode_case(seed, b, h, hkv, d, slots, pad=()):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in ((b, h, d), (b, hkv, slots, d), (b, hkv, slots, d)))
    k[:, :, slots // 2:] += 3.0  # later keys score higher: the running max grows from block to block
    mask = np.ones((b, slots), dtype=bool)
    for row, n in enumerate(pad):
        mask[row, :n] = False  # left padding
    return q, k, v, mask


def _decode_cases(rng):
    return [_decode_case(1, 2, 4, 4, 16, 40, pad=(0, 7)), _decode_case(2, 2, 8, 2, 16, 37, pad=(5, 0)),
            _decode_case(3, 1, 8, 1, 32, 50), _decode_case(4, 2, 6, 2, 16, 33, pad=(0, 20))]


def _gqa_decode(q, k, v, key_mask, how="right"):
    """One decode step of GQA in float64: q (b, h, d), k/v (b, n_kv, slots, d), key_mask (b, slots) -> (b, h, d)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    key_mask = np.asarray(key_mask, dtype=bool)
    b, h, d = q.shape
    hkv = k.shape[1]
    g = h // hkv
    out = np.zeros_like(q)
    for i in range(b):
        real = np.ones_like(key_mask[i]) if how == "no_mask" else key_mask[i]
        for j in range(h):
            kv = j % hkv if how == "interleaved" else j // g
            s = k[i, kv] @ q[i, j] * (1.0 if how == "no_scale" else d ** -0.5)
            s = np.where(real, s, -np.inf)
            if how == "no_rescale":  # the online softmax without rescaling the old sums when the max grows
                m, acc, total = -np.inf, np.zeros(d), 0.0
                for first in range(0, len(s), KERNEL_BLOCK):
                    blk = s[first:first + KERNEL_BLOCK]
                    m = max(m, blk.max())
                    p = np.exp(blk - m) if np.isfinite(m) else np.zeros_like(blk)
                    acc, total = acc + p @ v[i, kv, first:first + KERNEL_BLOCK], total + p.sum()
                out[i, j] = acc / total if total else 0.0
                continue
            if real.any():
                p = np.exp(s - s.max())
                out[i, j] = p / p.sum() @ v[i, kv]
    return out


def _merge(m, sums, acc, how="right"):
    """Flash-decoding's merge for one query head: chunk maxima m (s,), sums l (s,) and accumulators acc (s, d), each
    taken under its own chunk's max, -> the attention output (d,). An empty chunk has m = -inf, l = 0, acc = 0."""
    m, sums, acc = (np.asarray(a, dtype=np.float64) for a in (m, sums, acc))
    if how == "average":  # each chunk's own output, averaged
        own = acc[sums > 0] / sums[sums > 0][:, None]
        return own.mean(0)
    top = m.max()
    w = np.ones_like(m) if how == "no_rescale" else np.exp(m - top) if np.isfinite(top) else np.zeros_like(m)
    total = sums.sum() if how == "acc_only" else w @ sums
    return (w @ acc) / total if total else np.zeros(acc.shape[1])


def _merge_case(seed, s, d, empty=()):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=s).round(3) * 4
    sums = rng.uniform(1, 6, size=s).round(3)
    acc = rng.normal(size=(s, d)).round(3) * sums[:, None]
    for i in empty:  # a chunk of padding only: nothing summed
        m[i], sums[i], acc[i] = -np.inf, 0.0, 0.0
    return m, sums, acc


QUESTIONS = {
    "nb06": [
        Question(
            "nb06.yt_config_bytes", "your turn: a model's KV cache from its config", 1, "function", "my_cache_bytes",
            reference=_cache_bytes, public_cases=_sizing_cases,
            mistakes=[
                Mistake("n_heads", lambda c, *a: _cache_bytes(c, *a, kv_key=None),
                        "you sized the cache with num_attention_heads; the cache holds num_key_value_heads heads (the "
                        "query heads are never cached)."),
                Mistake("no_factor_2", lambda c, *a: _cache_bytes(c, *a, factor=1),
                        "the cache holds K AND V: multiply by 2."),
                Mistake("head_dim", lambda c, *a: _cache_bytes(c, *a, explicit_head_dim=False),
                        "when the config gives head_dim, use it: it is not always hidden_size / num_attention_heads "
                        "(Gemma's is not)."),
                Mistake("no_window", lambda c, *a: _cache_bytes(c, *a, windows="none"),
                        "a layer with a sliding window keeps only its last `sliding_window` tokens: min(context, "
                        "window) per windowed layer."),
                Mistake("window_everywhere", lambda c, *a: _cache_bytes(c, *a, windows="all"),
                        "`layer_types` says which layers slide; the 'full_attention' layers keep every token."),
                Mistake("missing_kv_is_one", lambda c, *a: _cache_bytes(
                            {**c, "num_key_value_heads": c.get("num_key_value_heads", 1)}, *a),
                        "a config without num_key_value_heads is multi-head attention: as many K/V heads as query "
                        "heads, not one."),
            ],
            hint="per layer: 2 * n_kv_heads * head_dim * tokens kept (min(context, window) if the layer slides, else "
                 "context); sum over layers; times batch and bytes_per_element.",
            after="The notebook goes on with the package's sizing.from_hf_config and kv_cache_bytes."),
        Question(
            "nb06.yt_max_context", "your turn: the longest context that fits", 1, "function", "my_max_context",
            reference=_max_context, public_cases=_context_cases,
            mistakes=[
                Mistake("rounded", lambda *a: _max_context(*a, how="round"),
                        "a context that does not fit is no answer, and with windows the bytes per token change once "
                        "the windows are full: find the LARGEST whole number of tokens whose cache is <= the budget "
                        "(search; a division gives it only without windows, rounded down)."),
                Mistake("no_window", lambda *a: _max_context(*a, how="no_window"),
                        "once a layer's window is full it stops growing, so more context fits than the windowless "
                        "formula says: size each candidate context with the windows (your my_cache_bytes)."),
            ],
            hint="the cache grows with the context, so bisect between 0 (fits) and max_position_embeddings + 1, "
                 "sizing each candidate with my_cache_bytes; the answer never exceeds max_position_embeddings.",
            after="The notebook goes on with the package's sizing.max_context."),
    ],
    "nb07": [
        Question(
            "nb07.yt_floor", "your turn: the memory floor of one layer's decode attention", 1, "function",
            "my_attention_floor_us", reference=_floor_us, rel_tol=1e-9, public_cases=_floor_cases,
            mistakes=[
                Mistake("n_heads", lambda *a: _floor_us(*a, heads="q"),
                        "the step reads the CACHE, which holds n_kv_heads heads; the query heads share them and are "
                        "not read from memory."),
                Mistake("k_only", lambda *a: _floor_us(*a, factor=1), "the step reads K and V: multiply by 2."),
                Mistake("gib", lambda *a: _floor_us(*a, unit=GiB),
                        "bandwidth in GB/s means 10**9 bytes per second (not 2**30)."),
                Mistake("ms", lambda *a: _floor_us(*a, scale=1e3),
                        "that is in milliseconds; the answer is in microseconds (x 1e6 from seconds)."),
            ],
            hint="bytes = 2 * batch * n_kv_heads * context * head_dim * bytes_per_element; seconds = bytes / "
                 "(bandwidth_gb_s * 1e9); return microseconds.",
            after="The notebook goes on with the package's numbers."),
        Question(
            "nb07.yt_intensity", "your turn: arithmetic intensity of decode attention", 1, "function",
            "my_decode_intensity", reference=_intensity, rel_tol=1e-9, public_cases=_intensity_cases,
            mistakes=[
                Mistake("macs", lambda *a: _intensity(*a, flops_per_mac=1),
                        "a multiply-add is 2 FLOPs: q.k costs 2 * head_dim per key and p.v another 2 * head_dim."),
                Mistake("n_heads_bytes", lambda *a: _intensity(*a, bytes_heads="q"),
                        "you counted bytes for every query head, as if K/V were copied per head; the group shares "
                        "one K/V head, read once: bytes use n_kv_heads."),
                Mistake("k_only_bytes", lambda *a: _intensity(*a, kv_factor=1),
                        "the step reads K AND V from the cache: 2 * ... bytes."),
            ],
            hint="FLOPs = 4 * batch * n_heads * context * head_dim (q.k and p.v); bytes = 2 * batch * n_kv_heads * "
                 "context * head_dim * bytes_per_element; intensity = FLOPs / bytes.",
            after="The notebook goes on with the package's bench.decode_attention_intensity."),
    ],
    "nb08": [
        Question(
            "nb08.yt_js", "your turn: Jensen-Shannon divergence of two attention rows", 1, "function", "my_js",
            reference=_js, rel_tol=1e-9, public_cases=_js_cases,
            mistakes=[
                Mistake("zero_log_zero", _js_naive,
                        "a weight of 0 gave 0 * log 0 = NaN: define 0 * log 0 = 0 (np.where(p > 0, ..., 0), or "
                        "scipy.special.xlogy)."),
                Mistake("kl", lambda p, q: _kl_rows(p, q), "that is KL(p || q): not symmetric, and infinite where q "
                                                           "is 0 but p is not; JS compares each with m = (p + q) / 2."),
                Mistake("log2", lambda p, q: _js(p, q) / math.log(2), "that is in bits; use the natural log (nats)."),
                Mistake("no_half", lambda p, q: 2 * _js(p, q),
                        "JS is the AVERAGE of KL(p || m) and KL(q || m): halve their sum."),
            ],
            hint="m = (p + q) / 2; JS = KL(p || m) / 2 + KL(q || m) / 2 per row (sum over the last axis), with "
                 "0 * log 0 = 0.",
            after="The notebook goes on with the package's redundancy.js_divergence."),
        Question(
            "nb08.yt_cosine", "your turn: cosine similarity of two heads' maps", 1, "function", "my_map_cosine",
            reference=_map_cosine, rel_tol=1e-9, public_cases=_cosine_cases,
            mistakes=[
                Mistake("dot", lambda a, b: _map_cosine(a, b, "dot"),
                        "that is the dot product; divide it by the two vectors' lengths (norms) to get the cosine."),
                Mistake("no_sqrt", lambda a, b: _map_cosine(a, b, "no_sqrt"),
                        "you divided by the squared lengths (a.a)(b.b); a vector's length is the SQUARE ROOT of a.a."),
                Mistake("rows", lambda a, b: _map_cosine(a, b, "rows"),
                        "you averaged one cosine per query row; the course's measure flattens each map into one "
                        "vector and takes one cosine (rows with more weight then count more)."),
            ],
            hint="a, b = a.ravel(), b.ravel(); return a @ b / (norm(a) * norm(b)) as a float.",
            after="The notebook goes on with the package's redundancy.map_cosine."),
    ],
    "nb09": [
        Question(
            "nb09.yt_windows", "your turn: inputs and targets for next-token training", 1, "function", "my_windows",
            reference=_windows, public_cases=_window_cases,
            mistakes=[
                Mistake("no_shift", lambda t, s, n: _windows(t, s, n, shift=0),
                        "the targets equal the inputs, so the model learns to copy: each target is the NEXT token, "
                        "tokens[s + 1 : s + 1 + seq_len]."),
                Mistake("shift_back", lambda t, s, n: _windows(t, s, n, shift=-1),
                        "you shifted the targets backwards (the previous token); the target of position t is "
                        "token t + 1."),
                Mistake("too_long", lambda t, s, n: _windows(t, s, n, extra=1),
                        "each of inputs and targets is seq_len tokens long; the window of seq_len + 1 tokens is "
                        "split into the first seq_len (inputs) and the last seq_len (targets)."),
            ],
            hint="for each start s: inputs tokens[s : s + seq_len], targets tokens[s + 1 : s + seq_len + 1]; "
                 "torch.stack them into (len(starts), seq_len).",
            after="The notebook goes on with the package's data.text_batch."),
        Question(
            "nb09.yt_train_step", "your turn: one training step", 1, "function", "my_train_step",
            reference=runs_of(train_step), rel_tol=1e-5, public_cases=lambda rng: [(0, 3), (1, 2)],
            runs_course_code=True,
            mistakes=[
                Mistake("no_zero_grad", runs_of(lambda *a: train_step(*a, order="no_zero")),
                        "the gradients of every step piled up: call optimizer.zero_grad() before loss.backward() "
                        "(backward ADDS to .grad)."),
                Mistake("no_step", runs_of(lambda *a: train_step(*a, order="no_step")),
                        "the weights never changed: call optimizer.step() after backward."),
                Mistake("no_clip", runs_of(lambda *a: train_step(*a, clip=False)),
                        "clip the gradient norm to grad_clip (torch.nn.utils.clip_grad_norm_) after backward and "
                        "before the step."),
                Mistake("sum_loss", runs_of(lambda *a: train_step(*a, flatten=False)),
                        "the loss was summed over positions; take the mean (cross_entropy's default), so the step "
                        "size does not grow with batch and seq_len."),
            ],
            hint="logits = model(inputs); loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()); "
                 "optimizer.zero_grad(); loss.backward(); clip_grad_norm_(model.parameters(), grad_clip); "
                 "optimizer.step(); return loss.item().",
            after="The notebook goes on with the package's train.train_step in the live run below."),
    ],
    "nb10": [
        Question(
            "nb10.yt_pool_mqa", "your turn: pool a layer's K/V heads into one", 1, "function", "my_pool_to_mqa",
            reference=_pool_mqa, rel_tol=1e-9, public_cases=_pool_cases,
            mistakes=[
                Mistake("sum", lambda w, n: _pool_mqa(w, n, "sum"), "you summed the heads; take their mean (a sum "
                                                                    "scales K and V by n_kv_heads)."),
                Mistake("first", lambda w, n: _pool_mqa(w, n, "first"),
                        "you kept the first head only; Ainslie et al.'s conversion averages all of them."),
                Mistake("head_minor", lambda w, n: _pool_mqa(w, n, "head_minor"),
                        "you read the rows as (head_dim, n_kv_heads); the first head_dim rows are head 0: reshape to "
                        "(n_kv_heads, head_dim, d_model)."),
                Mistake("columns", lambda w, n: _pool_mqa(w, n, "columns"),
                        "you averaged over the input side; an nn.Linear weight is (out_features, in_features), and "
                        "the heads are on the OUT side (the rows)."),
            ],
            hint="weight.reshape(n_kv_heads, head_dim, d_model).mean(0), where head_dim = weight.shape[0] // "
                 "n_kv_heads.",
            after="The notebook goes on with the package's pooled_kv_layers."),
        Question(
            "nb10.yt_perplexity", "your turn: perplexity from logits", 1, "function", "my_perplexity",
            reference=_perplexity, rel_tol=1e-9, public_cases=_ppl_cases,
            mistakes=[
                Mistake("no_shift", lambda lg, ids: _perplexity(lg, ids, "no_shift"),
                        "position t's logits predict token t + 1: score logits[:, :-1] against ids[:, 1:]."),
                Mistake("mean_of_exp", lambda lg, ids: _perplexity(lg, ids, "mean_of_exp"),
                        "perplexity is exp of the MEAN loss, not the mean of exp(loss) per token."),
                Mistake("base2", lambda lg, ids: _perplexity(lg, ids, "base2"),
                        "you raised 2 to the loss in nats; perplexity is e ** (mean loss in nats)."),
            ],
            hint="nll = F.cross_entropy(logits[0, :-1], ids[0, 1:]); return math.exp(nll).",
            after="The notebook goes on with the package's uptrain.perplexity."),
    ],
    "nb11": [
        Question(
            "nb11.yt_up_project", "your turn: keys (or values) from the cached latents", 1, "function",
            "my_up_project", reference=_up_project, rel_tol=1e-9,
            public_cases=lambda rng: [(_mla_case(1, 2, 3, 4, 2, 5)[2], _mla_case(1, 2, 3, 4, 2, 5)[4]),
                                      (_mla_case(2, 3, 2, 5, 2, 4)[2], _mla_case(2, 3, 2, 5, 2, 4)[4]),
                                      (_mla_case(3, 1, 4, 4, 2, 3)[2], _mla_case(3, 1, 4, 4, 2, 3)[5])],
            mistakes=[
                Mistake("no_transpose", lambda c, w: _up_project(c, w, "no_transpose"),
                        "each head's matrix maps a latent (r numbers) to a head_dim vector: it is (head_dim, r), so "
                        "a latent row c multiplies its TRANSPOSE: c @ w_up[h].T."),
                Mistake("shared", lambda c, w: _up_project(c, w, "shared"),
                        "every head has its own up-projection w_up[h]: the heads share the latent, not the matrix."),
            ],
            hint="for each head h: c @ w_up[h].T, stacked into (n_heads, length, head_dim) "
                 "(np.einsum('lr,hdr->hld', c, w_up)).",
            after="The notebook goes on with the package's LatentAttention."),
        Question(
            "nb11.yt_absorbed_step", "your turn: the absorbed decode step", 1, "function", "my_absorbed_step",
            reference=_step, rel_tol=1e-9,
            public_cases=lambda rng: [_mla_case(4, 2, 4, 6, 2, 5), _mla_case(5, 3, 2, 4, 2, 1),
                                      _mla_case(6, 4, 4, 8, 4, 7)],
            mistakes=[
                Mistake("scale_nope", lambda *a: _step(*a, scale="nope"),
                        "the query and key are head_dim + rope_dim wide (the no-rope part and the rotary part): "
                        "divide the scores by sqrt(head_dim + rope_dim)."),
                Mistake("no_rope", lambda *a: _step(*a, rope=False),
                        "add the rotary part of the score: q_rope . k_rope, with the ONE rotary key every head "
                        "shares."),
            ],
            hint="q_lat[h] = q_nope[h] @ w_uk[h] (r numbers); scores = (q_lat @ c.T + q_rope @ k_rope.T) / "
                 "sqrt(head_dim + rope_dim); softmax per head; out[h] = (p[h] @ c) @ w_uv[h].T.",
            after="The notebook goes on with the package's LatentAttention (absorbed=True)."),
    ],
    "nb12": [
        Question(
            "nb12.yt_kernel", "your turn: the GQA decode kernel", 1, "function", "my_gqa_decode",
            reference=_gqa_decode, rel_tol=1e-4, public_cases=_decode_cases,
            mistakes=[
                Mistake("no_scale", lambda *a: _gqa_decode(*a, how="no_scale"),
                        "multiply the scores by sm_scale = 1 / sqrt(head_dim) before the softmax."),
                Mistake("no_mask", lambda *a: _gqa_decode(*a, how="no_mask"),
                        "padding slots were attended: load the key mask for the block and set the scores of slots "
                        "where it is 0 to -inf (tl.where), as well as the slots past n_slots."),
                Mistake("interleaved", lambda *a: _gqa_decode(*a, how="interleaved"),
                        "query head j belongs to KV head j // group_size (heads kv*G .. kv*G + G-1), not j % "
                        "n_kv_heads: this program's heads are kv_head * G + tl.arange(0, BLOCK_G)."),
                Mistake("no_rescale", lambda *a: _gqa_decode(*a, how="no_rescale"),
                        "when a block raises the running max, what was summed under the old max is too large: "
                        "multiply the running sum and the accumulator by exp(m_old - m_new) before adding the "
                        "block."),
            ],
            hint="per block: s = tl.dot(q, tl.trans(k)) * sm_scale, -inf where the slot is masked; m_new = max(m, "
                 "row max of s); alpha = exp(m - m_new); p = exp(s - m_new[:, None]); l = l * alpha + sum(p); acc = "
                 "acc * alpha[:, None] + tl.dot(p, v); after the loop store acc / l (0 where l is 0).",
            after="The notebook goes on with the package's decode_kernel.gqa_decode."),
        Question(
            "nb12.yt_merge", "your turn: merge split-K chunks", 1, "function", "my_merge_chunks",
            reference=_merge, rel_tol=1e-9,
            public_cases=lambda rng: [_merge_case(1, 3, 4), _merge_case(2, 5, 3, empty=(0,)),
                                      _merge_case(3, 2, 6), _merge_case(4, 4, 2, empty=(3,))],
            mistakes=[
                Mistake("no_rescale", lambda *a: _merge(*a, how="no_rescale"),
                        "each chunk summed exp(score - its own max): bring every chunk to the common max first, "
                        "weighting its l and acc by exp(m_chunk - max(m))."),
                Mistake("acc_only", lambda *a: _merge(*a, how="acc_only"),
                        "the sums l were taken under the chunks' own maxima too: rescale them by the same "
                        "exp(m_chunk - max(m)) as the accumulators."),
                Mistake("average", lambda *a: _merge(*a, how="average"),
                        "averaging the chunks' own outputs gives every chunk the same weight; a chunk's weight is "
                        "its share of the total softmax mass, exp(m_chunk - max(m)) * l_chunk."),
            ],
            hint="w = exp(m - m.max()); return (w @ acc) / (w @ l). An empty chunk (m = -inf) gets w = 0.",
            after="The notebook goes on with the package's merge kernel."),
    ],
}
