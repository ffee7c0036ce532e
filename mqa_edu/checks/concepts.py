"""'Check your understanding' questions of notebooks 01-11, with a hint for each tempting wrong answer."""
from __future__ import annotations

import math

from .questions import Exercise, Mistake, Question


def choice(qid, title, right, wrong_hints: dict, points=1):
    letters = tuple(sorted({right, *wrong_hints}))
    return Question(qid, title, points, "choice", "answer", reference=lambda: right, choices=letters,
                    mistakes=[Mistake(k, (lambda k=k: k), v) for k, v in wrong_hints.items()])


def value(qid, title, right, wrong: dict = None, rel_tol=0.0, hint="", points=1):
    return Question(qid, title, points, "value", "answer", reference=lambda: right, rel_tol=rel_tol, hint=hint,
                    mistakes=[Mistake(str(v), (lambda v=v: v), h) for v, h in (wrong or {}).items()])


_STABLE_MAX = 1 / (1 + math.exp(-1) + math.exp(-2))

NOTEBOOKS = {
    "nb01": [
        choice("nb01.scaling", "why divide scores by sqrt(head_dim)?", "b", {
            "a": "softmax already sums to 1 whatever the scale.",
            "c": "causality comes from the mask, not the scale.",
            "d": "scaling changes no tensor's size."}),
        value("nb01.softmax", "largest weight of softmax([1000, 1001, 1002]), 3 decimals", _STABLE_MAX, rel_tol=2e-3,
              wrong={1.0: "close, but the other two weights are not zero: e^-1 and e^-2 relative to the largest."},
              hint="Subtract the maximum first: softmax([-2, -1, 0])."),
    ],
    "nb02": [
        value("nb02.params", "parameters of an attention layer, d_model=512, n_heads=8, no bias", 4 * 512 * 512,
              wrong={3 * 512 * 512: "W_q, W_k, W_v AND the output projection W_o.",
                     4 * 512 * 64: "each projection maps d_model to n_heads * head_dim = d_model, not to one head."},
              hint="Four d_model x (n_heads*head_dim) matrices."),
        choice("nb02.more_heads", "doubling n_heads at fixed d_model (head_dim = d_model / n_heads) makes the "
               "parameter count...", "c", {
                   "a": "more heads are narrower heads: n_heads * head_dim stays d_model.",
                   "b": "nothing is removed either: n_heads * head_dim stays d_model.",
                   "d": "n_heads * head_dim stays d_model, so nothing changes."}),
    ],
    "nb03": [
        choice("nb03.flops", "going from MHA to GQA-8 with 32 query heads, the FLOPs of Q K^T at a decode step...", "c",
               {"a": "a common misconception: every query head still scores every key. GQA saves memory traffic, "
                     "not score arithmetic.",
                "b": "sharing K/V heads does not remove query heads: each still computes its scores.",
                "d": "nothing is added: the same number of query heads score the same keys."}),
        value("nb03.mapping", "n_heads=12, n_kv_heads=4: which KV head does query head 7 read?", 2,
              wrong={3: "that is 7 % 4, the tile (Tensor.repeat) order. The right order is 7 // group_size.",
                     1: "group_size is 12 // 4 = 3, so head 7 is in group 7 // 3."},
              hint='query head h reads KV head h // group_size, with group_size = n_heads // n_kv_heads.'),
        choice("nb03.head_dim", "head_dim is always d_model / n_heads: true or false?", "false", {
            "true": "Gemma-7B has 16 heads of 256 with d_model 3072: head_dim can be set explicitly."}),
    ],
    "nb04": [
        choice("nb04.padded_row", "in this course, a padded query row whose keys are ALL masked outputs...", "b", {
            "a": "NaN is what a naive softmax over all -inf gives; the course defines the output as zeros instead.",
            "c": "a uniform average would mix in padding; the course outputs zeros."}),
        value("nb04.repeat_bytes", "bytes repeat_interleave writes for K: batch 4, n_kv_heads 4 -> n_heads 16, "
              "2048 tokens, head_dim 64, fp32", 4 * 16 * 2048 * 64 * 4,
              wrong={4 * 4 * 2048 * 64 * 4: "that is K itself; the copy has n_heads heads.",
                     2 * 4 * 16 * 2048 * 64 * 4: "only K was asked (V is the same again)."},
              hint='batch x n_heads (after the repeat) x tokens x head_dim x 4 bytes (fp32), for K alone.'),
    ],
    "nb05": [
        choice("nb05.training", "the KV cache is used in training: true or false?", "false", {
            "true": "training feeds whole sequences at once with a causal mask; nothing is generated token by token, "
                    "so there is nothing to cache."}),
        value("nb05.position", "a row [pad, pad, 7, 8, 9] has generated 2 tokens: rotary position of its next token?",
              5, wrong={7: "that is the slot index; positions count real tokens only (padding excluded).",
                        4: "positions start at 0, and 3 + 2 = 5 real tokens come before the next one.",
                        6: "off by one: the new token's position is the number of real tokens before it."},
              hint="a token's position counts the real tokens before it: the 3 in the row, plus the 2 generated."),
    ],
    "nb06": [
        value("nb06.mqa_factor", "converting Llama-3-8B (32 query heads, GQA-8) to MQA shrinks its KV cache by "
              "what factor?", 8,
              wrong={32: "'MQA makes the cache n_heads times smaller' holds against MHA; Llama-3-8B already has 8 "
                         "KV heads, so 8 -> 1."},
              hint='the cache scales with n_kv_heads: the factor is the old n_kv_heads over the new one.'),
        value("nb06.llama2", "Llama-2-7B (32 layers, MHA, 32 heads, head_dim 128) KV bytes per token in fp16", 524288,
              wrong={262144: "K and V: the factor 2.", 16384: "every one of the 32 layers has a cache."},
              hint='2 (K and V) x layers x n_kv_heads x head_dim x 2 bytes.'),
    ],
    "nb07": [
        value("nb07.intensity", "arithmetic intensity (FLOP/byte) of decode attention, fp16, group_size 8", 8,
              wrong={16: "divide by the 2 bytes of an fp16 number.", 4: "2 x group_size / bytes_per_element."},
              hint="per K/V element read (2 bytes in fp16), each of the group's query heads does 2 FLOP."),
        choice("nb07.bound", "on an H100 (ridge ~295 FLOP/byte), MQA decode with group_size 71 in fp16 is...", "b", {
            "a": "71 FLOP/byte is far below the ridge point: memory-bound."}),
    ],
    "nb08": [
        value("nb08.js_max", "JS divergence (nats) between two attention rows that share no key, 3 decimals",
              math.log(2), rel_tol=2e-3,
              wrong={1.0: "that is the bound in bits (log base 2); the course measures in nats, with the natural log.",
                     0.0: "0 is for identical rows; rows with disjoint support are as far apart as JS gets."},
              hint="Each row puts all its weight where the other has none; the mixture M gives each half."),
        choice("nb08.cka_rotation", "keys K2 = K1 @ R with R orthogonal: linear CKA(K1, K2) is...", "b", {
            "a": "CKA does not see a rotation: the two heads carry the same information, arranged differently.",
            "c": "CKA is invariant to every orthogonal R, so it does not depend on which one.",
            "d": "linear CKA lies in [0, 1]; it is never negative."}),
    ],
    "nb09": [
        choice("nb09.noise", "a config is 0.01 nats worse than MHA; the difference's standard error is 0.02. So...",
               "b", {
                   "a": "0.01 is half a standard error: the seeds disagree by more than that.",
                   "c": "the sign of a difference inside the noise says nothing.",
                   "d": "one more seed adds one sample; it does not make that seed's result the answer."}),
        value("nb09.matched", "d_model 128, head_dim 16, 8 -> 1 KV heads: SwiGLU width to add per layer to pay back "
              "the K/V parameters", 2 * 128 * 16 * 7 / (3 * 128), rel_tol=0.01,
              wrong={224: "SwiGLU has three d_model-wide matrices per unit of width (gate, up, down).",
                     2 * 128 * 16 * 7 / (3 * 128) / 2: "both K and V lose 7 heads: the factor 2.",
                     2 * 128 * 16 * 8 / (3 * 128): "one K/V head stays: 8 - 1 = 7 heads are removed."},
              hint="Removed: 2 x d_model x head_dim per K/V head. Added: 3 x d_model per unit of SwiGLU width."),
    ],
    "nb10": [
        value("nb10.bytes", "SmolLM2-135M (30 layers, 3 KV heads, head_dim 64): KV bytes per token in fp16", 23040,
              wrong={69120: "the cache holds the 3 K/V heads, not the 9 query heads.",
                     11520: "K and V: the factor 2.", 46080: "fp16 is 2 bytes per number, not 4.",
                     768: "every one of the 30 layers has its own cache."},
              hint='2 (K and V) x 30 layers x 3 KV heads x 64 x 2 bytes.'),
        value("nb10.factor", "pooling its 3 K/V heads into 1 in every layer shrinks the KV cache by what factor?", 3,
              wrong={9: "against MHA it would be 9; the model already shares each K/V head among 3 query heads."},
              hint='the cache scales with n_kv_heads: 3 K/V heads become 1.'),
    ],
    "nb11": [
        choice("nb11.absorbed", "do the absorbed and the naive MLA steps give different outputs?", "b", {
            "a": "the two paths multiply the same matrices in another order: the same attention, up to rounding "
                 "(section 2 measured the difference).",
            "c": "the cache is the same for both: the latents and the shared rotary keys."}),
        value("nb11.groups", "DeepSeek-V2 caches 576 numbers per token and layer. As GQA with head_dim 128, that is "
                             "the cache of how many K/V heads?", 2.25, rel_tol=1e-3,
              wrong={4.5: "each K/V head caches a K AND a V of 128 numbers: divide by 2 x 128.",
                     128: "that is its number of query heads; the latent replaces the K/V heads."},
              hint="576 / (2 x 128)."),
    ],
    "nb12": [
        value("nb12.tile_loads", "In the kernel of section 2, with n_heads = 32 and n_kv_heads = 8, how many times is "
                                 "each K tile loaded from memory in one decode step?", 1,
              wrong={4: "that would be one load per query head of the group; the group's heads are one tile, and "
                        "one program loads the K tile once for all of them.",
                     32: "the kernel runs one program per (row, KV head), not per query head."},
              hint="count the programs that read one KV head's tile, and how often each reads it."),
        choice("nb12.static", "why does the compiled step take the cache slot as a tensor, not a Python int?", "b", {
            "a": "a tensor is not faster to add; what matters is what the compiler sees: an int is baked into the "
                 "graph as a constant, so a new value means a new graph (a recompile every step).",
            "c": "the slot has the same value in every row of the batch; an int would hold it as well, but as a "
                 "constant of the graph."}),
    ],
}

EXERCISES = {nb: Exercise(name=nb, title=f"Notebook {nb[2:]} · check your understanding", questions=qs)
             for nb, qs in NOTEBOOKS.items()}


def exercise_for(qid: str) -> Exercise:
    """A notebook's questions: its "check your understanding" ones and its "your turn" tasks (yourturn.py, loaded
    on first use: it needs NumPy)."""
    from .yourturn import QUESTIONS as YOUR_TURN
    from .yourturn_later import QUESTIONS as LATER

    YOUR_TURN = {**YOUR_TURN, **LATER}

    nb = qid.split(".")[0]
    ex = EXERCISES[nb]
    return Exercise(name=ex.name, title=ex.title, questions=ex.questions + YOUR_TURN.get(nb, []))
