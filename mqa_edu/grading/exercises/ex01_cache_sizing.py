"""Exercise ex01 · KV-cache sizing: the questions, their references, hidden-case generators and known mistakes.
PRIVATE: the grader loads it; check cells use the public form written from it (see __init__.py).

References are written here from the formula (not imported from mqa_edu.sizing) so that this file alone defines
the grading; the tests check both agree.
"""
from __future__ import annotations

import math

from ...checks.questions import Cascade, Exercise, Mistake, Question

GB, GiB = 10**9, 2**30
HEAD_DIMS = (32, 64, 80, 96, 128, 256)


def _bpt(n_layers, d_model, n_heads, n_kv_heads, head_dim, bpe):
    return int(2 * n_layers * n_kv_heads * head_dim * bpe)


def _cache(n_layers, d_model, n_heads, n_kv_heads, head_dim, seq_len, batch, bpe, sliding_window=None):
    tokens = min(seq_len, sliding_window) if sliding_window else seq_len
    return int(2 * n_layers * n_kv_heads * head_dim * tokens * batch * bpe)


def _tokens_kept(n_layers, d_model, n_heads, n_kv_heads, head_dim, seq_len, batch, bpe, sliding_window=None):
    return min(seq_len, sliding_window) if sliding_window else seq_len


def _random_model(rng):
    n_kv = rng.choice([1, 2, 4, 8, 16])
    n_heads = n_kv * rng.choice([1, 2, 4, 8])
    head_dim = rng.choice(HEAD_DIMS)
    # half the time head_dim is explicit and differs from d_model / n_heads (Gemma-style)
    d_model = n_heads * (head_dim if rng.random() < 0.5 else rng.choice([h for h in HEAD_DIMS if h != head_dim]))
    return rng.randint(1, 96), d_model, n_heads, n_kv, head_dim


def _bpt_cases(rng, n):
    return [(*_random_model(rng), rng.choice([1, 2, 4])) for _ in range(n)]


def _cache_cases(rng, n):
    out = []
    for _ in range(n):
        model = _random_model(rng)
        seq = rng.randint(1, 131072)
        window = rng.choice([None, None, rng.randint(256, 8192)])
        out.append((*model, seq, rng.randint(1, 64), rng.choice([1, 2, 4]), window))
    return out


def _max_batch(n_layers, n_kv_heads, head_dim, seq_len, bpe, budget, weights):
    per_seq = 2 * n_layers * n_kv_heads * head_dim * seq_len * bpe
    return max(0, int((budget - weights) // per_seq))


def _max_batch_cases(rng, n):
    out = []
    for _ in range(n):
        nl, _, _, nkv, hd = _random_model(rng)
        seq, bpe = rng.randint(512, 65536), rng.choice([1, 2])
        per_seq = 2 * nl * nkv * hd * seq * bpe
        weights = rng.randint(1, 40) * GB
        budget = weights + int(per_seq * (rng.randint(3, 200) + 0.37))  # never an exact multiple
        out.append((nl, nkv, hd, seq, bpe, budget, weights))
    return out


# The models the value questions are about (their published configurations; see notebooks/references.md)
FALCON_7B = {"hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": True, "num_kv_heads": None}
GEMMA_7B = {"hidden_size": 3072, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256,
            "num_hidden_layers": 28}
LLAMA_3_8B = {"n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "head_dim": 128, "weights_bytes": 16_060_000_000}


def _llama_batch(n_kv, budget=80 * GB, weights=LLAMA_3_8B["weights_bytes"]):
    return _max_batch(32, n_kv, 128, 8192, 2, budget, weights)


# design scenario: 32 layers, 32 query heads, head_dim 128, 32k context, >= 16 concurrent sequences, 24 GiB for KV
DESIGN = {"n_layers": 32, "n_heads": 32, "head_dim": 128, "context": 32768, "sequences": 16, "kv_budget": 24 * GiB}


def _design_probes():
    """The kv_cache_bytes calls a design answer makes: every divisor of 32 with fp16 and fp8."""
    d = DESIGN
    return [(d["n_layers"], 4096, d["n_heads"], kv, d["head_dim"], d["context"], d["sequences"], bpe)
            for kv in (1, 2, 4, 8, 16, 32) for bpe in (2, 1)]


def _design_from(sizes):
    """(n_kv_heads, dtype) the design rule picks from a student's own kv_cache_bytes values at the design's probes:
    how a wrong Q2 is counted once, in Q2."""
    fits = {(kv, bpe) for (_, _, _, kv, _, _, _, bpe), size in zip(_design_probes(), sizes)
            if size <= DESIGN["kv_budget"]}
    kv = max((k for k, _ in fits), default=None)
    return kv, None if kv is None else ("fp16" if (kv, 2) in fits else "fp8")


def _design_options():
    d = DESIGN
    fits = []
    for bpe, dtype in ((2, "fp16"), (1, "fp8")):
        for kv in (1, 2, 4, 8, 16, 32):
            if 2 * d["n_layers"] * kv * d["head_dim"] * d["context"] * d["sequences"] * bpe <= d["kv_budget"]:
                fits.append((kv, bpe, dtype))
    best_kv = max(kv for kv, _, _ in fits)
    dtype = max((bpe, dt) for kv, bpe, dt in fits if kv == best_kv)[1]  # keep the wider dtype if it still fits
    return best_kv, dtype


QUESTIONS = [
    Question(
        "ex01.q1", "bytes per token from a config", 15, "function", "kv_bytes_per_token",
        reference=_bpt,
        public_cases=lambda rng: [(32, 4096, 32, 8, 128, 2), (28, 3072, 16, 16, 256, 2), (32, 4544, 71, 1, 64, 2)],
        hidden_cases=lambda rng: _bpt_cases(rng, 12),
        mistakes=[
            Mistake("no_factor_2", lambda nl, d, h, kv, hd, b: _bpt(nl, d, h, kv, hd, b) // 2,
                    "that is half the right answer: the cache stores K AND V (the factor 2)."),
            Mistake("n_heads", lambda nl, d, h, kv, hd, b: _bpt(nl, d, h, h, hd, b),
                    "you counted n_heads; only the n_kv_heads KV heads are cached."),
            Mistake("d_model_head_dim", lambda nl, d, h, kv, hd, b: _bpt(nl, d, h, kv, d // h, b),
                    "you used d_model / n_heads as head_dim; use the configured head_dim (Gemma sets it explicitly)."),
            Mistake("bits", lambda nl, d, h, kv, hd, b: _bpt(nl, d, h, kv, hd, b) * 8,
                    "8x too big: bytes_per_element is already in bytes, not bits."),
            Mistake("one_layer", lambda nl, d, h, kv, hd, b: _bpt(1, d, h, kv, hd, b),
                    "that is one layer's worth: every layer has its own cache."),
        ],
        hint="Multiply: 2 (K and V) x n_layers x n_kv_heads x head_dim x bytes_per_element."),
    Question(
        "ex01.q2", "bytes for a batch of sequences", 15, "function", "kv_cache_bytes",
        reference=_cache,
        public_cases=lambda rng: [(40, 5120, 40, 40, 128, 2048, 1, 2, None), (32, 4096, 32, 8, 128, 32768, 4, 2, 4096),
                                  (18, 2048, 8, 1, 256, 8192, 16, 1, None)],
        hidden_cases=lambda rng: _cache_cases(rng, 12),
        mistakes=[
            Mistake("no_window", lambda nl, d, h, kv, hd, s, b, e, w=None: _cache(nl, d, h, kv, hd, s, b, e),
                    "a sliding window caps the cached tokens at min(seq_len, sliding_window)."),
            Mistake("no_factor_2", lambda *a: _cache(*a) // 2, "half the right answer: K and V are both cached."),
            Mistake("n_heads", lambda nl, d, h, kv, hd, s, b, e, w=None: _cache(nl, d, h, h, hd, s, b, e, w),
                    "you counted n_heads; only the n_kv_heads KV heads are cached."),
            Mistake("d_model_head_dim", lambda nl, d, h, kv, hd, s, b, e, w=None: _cache(nl, d, h, kv, d // h, s, b,
                                                                                            e, w),
                    "you used d_model / n_heads as head_dim; use the configured head_dim."),
            Mistake("no_batch", lambda nl, d, h, kv, hd, s, b, e, w=None: _cache(nl, d, h, kv, hd, s, 1, e, w),
                    "that is one sequence: multiply by batch."),
        ],
        hint="bytes per token (question 1) x tokens kept x batch, with tokens kept = min(seq_len, sliding_window).",
        cascade=Cascade("ex01.q1", probes=lambda nl, d, h, kv, hd, s, b, e, w=None: [(nl, d, h, kv, hd, e)],
                        combine=lambda case, v: v[0] * _tokens_kept(*case) * case[6])),
    Question(
        "ex01.q3", "Falcon-7B: bytes per token in fp16", 10, "value", "falcon_7b_bytes_per_token", subject="Falcon-7B",
        reference=lambda: _bpt(32, 4544, 71, 1, 64, 2),
        mistakes=[
            Mistake("71_kv_heads", lambda: _bpt(32, 4544, 71, 71, 64, 2),
                    "Falcon-7B runs with multi_query=True: ONE KV head, although num_kv_heads is unset and defaults "
                    "to 71."),
            Mistake("no_factor_2", lambda: _bpt(32, 4544, 71, 1, 64, 2) // 2, "K and V: the factor 2."),
        ],
        hint="Read the config: multi_query, n_layer, hidden_size / n_head.",
        cascade=Cascade("ex01.q1", probes=lambda: [(32, 4544, 71, 1, 64, 2)], combine=lambda case, v: v[0],
                        decoys=lambda: [(32, 4544, 71, 71, 64, 2), (32, 4544, 71, 8, 64, 2)])),
    Question(
        "ex01.q4", "Gemma-7B: one 8192-token sequence in bf16, in GiB", 10, "value", "gemma_7b_cache_gib",
        subject="Gemma-7B",
        reference=lambda: _cache(28, 3072, 16, 16, 256, 8192, 1, 2) / GiB, rel_tol=1e-3,
        mistakes=[
            Mistake("head_dim_192", lambda: _cache(28, 3072, 16, 16, 192, 8192, 1, 2) / GiB,
                    "head_dim is set explicitly to 256 in Gemma's config; 3072 / 16 = 192 is not Gemma's head size."),
            Mistake("gb", lambda: _cache(28, 3072, 16, 16, 256, 8192, 1, 2) / GB,
                    "that is GB (1e9 bytes); the question asks for GiB (2**30 bytes)."),
            Mistake("no_factor_2", lambda: _cache(28, 3072, 16, 16, 256, 8192, 1, 2) / 2 / GiB,
                    "K and V: the factor 2."),
        ],
        hint="bytes = 2 x layers x KV heads x head_dim x tokens x 2 bytes (bf16); then divide by 2**30.",
        cascade=Cascade("ex01.q2", probes=lambda: [(28, 3072, 16, 16, 256, 8192, 1, 2)],
                        combine=lambda case, v: v[0] / GiB,
                        decoys=lambda: [(28, 3072, 16, 16, 192, 8192, 1, 2), (28, 3072, 16, 1, 256, 8192, 1, 2)])),
    Question(
        "ex01.q5", "largest batch under a memory budget", 15, "function", "max_batch",
        reference=_max_batch,
        public_cases=lambda rng: [(32, 8, 128, 8192, 2, 80 * GB, 16_060_000_000), (32, 32, 128, 4096, 2, 24 * GiB,
                                                                                    14 * GB),
                                  (30, 3, 64, 2048, 2, 4 * GB, 4 * GB)],
        hidden_cases=lambda rng: _max_batch_cases(rng, 12),
        mistakes=[
            Mistake("no_weights", lambda nl, kv, hd, s, b, budget, w: _max_batch(nl, kv, hd, s, b, budget, 0),
                    "the weights take their share of the budget first: (budget - weights) // bytes per sequence."),
            Mistake("ceil", lambda nl, kv, hd, s, b, budget, w: math.ceil((budget - w) / (2 * nl * kv * hd * s * b)),
                    "rounded up: a sequence that does not fit entirely does not fit. Round down."),
            Mistake("no_factor_2", lambda nl, kv, hd, s, b, budget, w: _max_batch(nl, kv, hd, s, b / 2, budget, w),
                    "you sized only K (or only V): the factor 2."),
        ],
        hint="(budget_bytes - weights_bytes) // (bytes of one sequence's cache), and 0 if nothing fits."),
    Question(
        "ex01.q6", "Llama-3-8B: extra sequences GQA-8 serves over MHA", 10, "value", "extra_sequences_gqa",
        subject="Llama-3-8B",
        reference=lambda: _llama_batch(8) - _llama_batch(32),
        mistakes=[
            Mistake("ratio", lambda: _llama_batch(8) / _llama_batch(32),
                    "that is the ratio; the question asks how many MORE sequences (a difference)."),
            Mistake("gib", lambda: _llama_batch(8, budget=80 * GiB) - _llama_batch(32, budget=80 * GiB),
                    "the budget is 80 GB = 80e9 bytes, not 80 GiB."),
            Mistake("no_weights", lambda: _llama_batch(8, weights=0) - _llama_batch(32, weights=0),
                    "the weights (16.06e9 bytes) are in the same memory: subtract them first."),
        ],
        hint="max_batch with 8 KV heads minus max_batch with 32 KV heads, same budget and weights.",
        cascade=Cascade("ex01.q5", probes=lambda: [(32, kv, 128, 8192, 2, 80 * GB, LLAMA_3_8B["weights_bytes"])
                                                   for kv in (8, 32)],
                        combine=lambda case, v: v[0] - v[1],
                        decoys=lambda: [(32, kv, 128, 8192, 2, budget, weights) for kv in (8, 32) for budget, weights
                                        in ((80 * GiB, LLAMA_3_8B["weights_bytes"]),  # the budget read as GiB
                                            (80 * GB, round(16.06 * GiB)))])),  # the weights read as GiB
    Question(
        "ex01.q7a", "design: how many KV heads", 10, "value", "design_n_kv_heads",
        reference=lambda: _design_options()[0],
        mistakes=[Mistake("fp16_only", lambda: 2, "with fp16 you get 2 KV heads, but an fp8 cache fits more KV heads "
                                                 "(better quality) in the same budget."),
                  Mistake("mqa", lambda: 1, "MQA fits, but a larger n_kv_heads also fits: keep as many KV heads as the "
                                            "budget allows.")],
        hint="Try each divisor of 32 with each dtype; keep the largest n_kv_heads whose cache fits.",
        cascade=Cascade("ex01.q2", probes=lambda: _design_probes(), combine=lambda case, v: _design_from(v)[0])),
    Question(
        "ex01.q7b", "design: cache dtype", 5, "choice", "design_cache_dtype",
        reference=lambda: _design_options()[1], choices=("fp16", "fp8"),
        mistakes=[Mistake("fp16", lambda: "fp16", "fp16 fits only with fewer KV heads; with the n_kv_heads you chose "
                                                  "in 7a, fp8 is what fits.")],
        hint="Which dtype lets the n_kv_heads of question 7a fit?",
        cascade=Cascade("ex01.q2", probes=lambda: _design_probes(), combine=lambda case, v: _design_from(v)[1])),
    Question("ex01.q7c", "design: justification (marked by your instructor)", 5, "text", "design_justification",
             rubric="5 points in all. 2: the bytes per KV head at this size (8 GiB in fp16, 4 GiB in fp8) and why fp16 "
                    "allows 2 KV heads and fp8 allows 4. 2: the trade-off named: fewer KV heads cost quality (Ainslie "
                    "et al. 2023; notebook 03), fp8 costs precision in K and V; halving the bytes per number is the "
                    "smaller loss here. 1: what it costs to get there (retraining or uptraining for the new "
                    "n_kv_heads, checking quality after). No points for restating the numbers of 7a/7b alone."),
    Question(
        "ex01.q8", "concept: which statement is true?", 5, "choice", "concept_choice",
        reference=lambda: "b", choices=("a", "b", "c", "d"),
        mistakes=[
            Mistake("a", lambda: "a", "GQA shares K/V heads; every query head still scores every key, so the score "
                                      "FLOPs are unchanged."),
            Mistake("c", lambda: "c", "training processes whole sequences in parallel with a causal mask; the cache "
                                      "is an inference device."),
            Mistake("d", lambda: "d", "Gemma-7B: 16 heads x 256 = 4096, while d_model = 3072."),
        ]),
]

EXERCISE = Exercise(
    name="ex01_cache_sizing", title="Exercise 1 · KV-cache sizing", questions=QUESTIONS,
    forbidden_modules=("mqa_edu.sizing", "mqa_edu.heads", "mqa_edu.grading", "solutions"),
)


def exercise_for(qid):
    return EXERCISE
