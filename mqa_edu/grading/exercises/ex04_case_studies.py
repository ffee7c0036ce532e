"""Exercise ex04 · design case studies: questions, references, hidden-case generators and known mistakes.
PRIVATE: the grader loads it; check cells use the public form written from it (see __init__.py).

Four scenarios, each with a budget and a target. The numbers are graded; each design comes with a justification that
the instructor marks against a rubric. Every design question has one right answer under the rule its scenario
states (the most K/V heads that meet the targets; fp16 unless only fp8 reaches that many), so the grade does not
depend on taste. The references are written here from the formulas (not imported from mqa_edu.sizing); tests check
that they agree with the course's own sizing code.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...checks.questions import Cascade, Exercise, Mistake, Question

GB, GiB, MiB = 10**9, 2**30, 2**20
DIVISORS_32 = (1, 2, 4, 8, 16, 32)
SMOLLM2_STUDY = Path(__file__).resolve().parents[2] / "results" / "smollm2_mqa.json"


def _kv_bytes(n_layers, n_kv_heads, head_dim, tokens, batch, bpe):
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch * bpe


# ---------------------------------------------------------------------------------------------- Q1: decode floor
def _step_ms(weight_bytes, n_layers, n_kv_heads, head_dim, context, batch, bpe, bandwidth_gb_s):
    """The memory-bound floor of one decode step: every weight and the whole cache read once, at full bandwidth."""
    return (weight_bytes + _kv_bytes(n_layers, n_kv_heads, head_dim, context, batch, bpe)) / (bandwidth_gb_s * GB) * 1e3


def _step_cases(rng, n):
    out = []
    for _ in range(n):
        n_kv = rng.choice([1, 2, 4, 8, 16, 32])
        out.append((rng.randint(1, 80) * 10**9 // 4, rng.randint(8, 80), n_kv, rng.choice([64, 128, 256]),
                    rng.randint(512, 131072), rng.randint(1, 64), rng.choice([1, 2]),
                    rng.choice([60, 120, 900, 2039, 3350, 4800])))
    return out


# ---------------------------------------------------------------------------------------------- A: long context
A = {"weight_bytes": 14 * GB, "n_layers": 32, "n_heads": 32, "head_dim": 128, "context": 131072, "batch": 1,
     "memory": 80 * GB, "bandwidth_gb_s": 3350, "target_ms": 8.0}


def _a_meets(n_kv, bpe):
    step = _step_ms(A["weight_bytes"], A["n_layers"], n_kv, A["head_dim"], A["context"], A["batch"], bpe,
                    A["bandwidth_gb_s"])
    memory = A["weight_bytes"] + _kv_bytes(A["n_layers"], n_kv, A["head_dim"], A["context"], A["batch"], bpe)
    return step <= A["target_ms"] and memory <= A["memory"]


def _a_fits_memory(n_kv, bpe):
    kv = _kv_bytes(A["n_layers"], n_kv, A["head_dim"], A["context"], A["batch"], bpe)
    return A["weight_bytes"] + kv <= A["memory"]


def _a_probes():
    """The decode_step_ms calls a design answer to A makes: every divisor of 32, both dtypes."""
    return [(A["weight_bytes"], A["n_layers"], kv, A["head_dim"], A["context"], A["batch"], bpe, A["bandwidth_gb_s"])
            for kv in DIVISORS_32 for bpe in (2, 1)]


def _implied_a(step_values):
    """The design (n_kv_heads, bytes per element, step ms) that the rule picks from a student's own decode_step_ms
    values at :func:`_a_probes`: how a wrong Q1 is counted once, in Q1."""
    steps = {(p[2], p[6]): v for p, v in zip(_a_probes(), step_values)}
    meets = {k: v <= A["target_ms"] and _a_fits_memory(*k) for k, v in steps.items()}
    kv = max((k[0] for k, ok in meets.items() if ok), default=None)
    if kv is None:
        return None, None, None
    bpe = 2 if meets[(kv, 2)] else 1
    return kv, bpe, steps[(kv, bpe)]


def _design(meets):
    """The most K/V heads that meet the targets with either dtype; fp16 if it still meets them, else fp8."""
    best = max(kv for kv in DIVISORS_32 for bpe in (2, 1) if meets(kv, bpe))
    return best, ("fp16" if meets(best, 2) else "fp8")


def _a_step_of(n_kv, dtype):
    return _step_ms(A["weight_bytes"], A["n_layers"], n_kv, A["head_dim"], A["context"], A["batch"],
                    {"fp16": 2, "fp8": 1}[dtype], A["bandwidth_gb_s"])


# ---------------------------------------------------------------------------------------------- B: on device
B = {"n_layers": 16, "n_heads": 32, "n_kv_heads": 8, "head_dim": 64, "context": 60_000, "kv_budget": 1 * GiB}


def _b_gib(bpe=2, n_kv=B["n_kv_heads"], unit=GiB):
    return _kv_bytes(B["n_layers"], n_kv, B["head_dim"], B["context"], 1, bpe) / unit


def _b_option():
    """a: fp16 as shipped fits; b: only an fp8 cache fits (no retraining); c: neither (fewer K/V heads needed)."""
    if _b_gib(2) * GiB <= B["kv_budget"]:
        return "a"
    return "b" if _b_gib(1) * GiB <= B["kv_budget"] else "c"


# ---------------------------------------------------------------------------------------------- C: per tenant
C = {"n_layers": 32, "n_heads": 32, "head_dim": 128, "context": 8192, "sequences": 4, "budget": 512 * MiB}


def _c_meets(n_kv, bpe):
    return _kv_bytes(C["n_layers"], n_kv, C["head_dim"], C["context"], C["sequences"], bpe) <= C["budget"]


# ---------------------------------------------------------------------------------------------- D: which layers
D = {"budget_nats": 0.02, "n_kv_heads": 3, "head_dim": 64, "bpe": 2}


def _costs():
    """SmolLM2-135M: extra loss (nats/token) of pooling each layer alone to MQA, from the shipped study."""
    return [float(c) for c in json.loads(SMOLLM2_STUDY.read_text())["search"]["alone"]]


def _d_layers(order="cheapest", per_layer=False):
    costs = _costs()
    ranked = sorted(range(len(costs)), key=lambda i: costs[i]) if order == "cheapest" else list(range(len(costs)))
    chosen, total = [], 0.0
    for i in ranked:
        if per_layer:
            if costs[i] <= D["budget_nats"]:
                chosen.append(i)
            continue
        if total + costs[i] > D["budget_nats"]:
            break
        chosen.append(i)
        total += costs[i]
    return sorted(chosen)


def _d_saved(n_layers):
    return n_layers * 2 * (D["n_kv_heads"] - 1) * D["head_dim"] * D["bpe"]


QUESTIONS = [
    Question(
        "ex04.q1", "the memory-bound floor of a decode step", 15, "function", "decode_step_ms",
        reference=_step_ms, rel_tol=1e-6,
        public_cases=lambda rng: [(16_060_000_000, 32, 8, 128, 8192, 1, 2, 3350),
                                  (14_000_000_000, 32, 32, 128, 4096, 16, 2, 2039),
                                  (270_000_000, 30, 3, 64, 2048, 8, 2, 60)],
        hidden_cases=lambda rng: _step_cases(rng, 12),
        mistakes=[
            Mistake("no_weights", lambda w, *a: _step_ms(0, *a), "every step also reads every weight once: add "
                                                                 "weight_bytes to the cache's bytes."),
            Mistake("no_factor_2", lambda w, nl, kv, hd, t, b, e, bw: _step_ms(w, nl, kv, hd, t, b, e / 2, bw),
                    "the cache holds K AND V (the factor 2)."),
            Mistake("no_batch", lambda w, nl, kv, hd, t, b, e, bw: _step_ms(w, nl, kv, hd, t, 1, e, bw),
                    "each sequence of the batch has its own cache: multiply by batch (the weights are read once)."),
            Mistake("seconds", lambda *a: _step_ms(*a) / 1e3, "that is in seconds; the question asks for ms."),
            Mistake("gib", lambda *a: _step_ms(*a[:-1], a[-1] * GiB / GB), "bandwidth in GB/s means 1e9 bytes per "
                                                                          "second, not 2**30."),
        ],
        hint="(weight_bytes + 2 x n_layers x n_kv_heads x head_dim x context x batch x bytes_per_element) / "
             "(bandwidth_gb_s x 1e9), in milliseconds."),
    Question(
        "ex04.q2a", "A · long context: how many K/V heads", 10, "value", "a_n_kv_heads",
        reference=lambda: _design(_a_meets)[0],
        mistakes=[
            Mistake("fp16_only", lambda: max(kv for kv in DIVISORS_32 if _a_meets(kv, 2)),
                    "that is the most fp16 allows; an fp8 cache lets more K/V heads meet the target."),
            Mistake("memory_only", lambda: max(kv for kv in DIVISORS_32 for e in (2, 1) if _a_fits_memory(kv, e)),
                    "that fits in memory, but misses the 8 ms step: check the latency too."),
        ],
        hint="For each divisor of 32 and each dtype, check both targets with your decode_step_ms and the memory.",
        cascade=Cascade("ex04.q1", probes=lambda: _a_probes(), combine=lambda case, v: _implied_a(v)[0])),
    Question(
        "ex04.q2b", "A · long context: cache dtype", 5, "choice", "a_cache_dtype",
        reference=lambda: _design(_a_meets)[1], choices=("fp16", "fp8"),
        mistakes=[Mistake("other", lambda: "fp16" if _design(_a_meets)[1] == "fp8" else "fp8",
                          "with the number of K/V heads of 2a, that dtype misses a target (or a wider one meets it).")],
        hint="Does your 2a design meet both targets in fp16?",
        cascade=Cascade("ex04.q1", probes=lambda: _a_probes(),
                        combine=lambda case, v: {2: "fp16", 1: "fp8"}.get(_implied_a(v)[1]))),
    Question(
        "ex04.q2c", "A · long context: your design's decode floor, ms", 5, "value", "a_step_ms", subject="ms",
        reference=lambda: _a_step_of(*_design(_a_meets)), rel_tol=1e-3,
        mistakes=[Mistake("mha", lambda: _a_step_of(32, "fp16"), "that is the MHA model's step; give your design's.")],
        hint="decode_step_ms with your design's n_kv_heads and bytes per element.",
        cascade=Cascade("ex04.q1", probes=lambda: _a_probes(), combine=lambda case, v: _implied_a(v)[2])),
    Question(
        "ex04.q3a", "B · on device: the shipped cache at 60k tokens, GiB", 10, "value", "b_cache_gib", subject="GiB",
        reference=lambda: _b_gib(), rel_tol=1e-3,
        mistakes=[
            Mistake("gb", lambda: _b_gib(unit=GB), "that is GB (1e9 bytes); the question asks for GiB (2**30)."),
            Mistake("n_heads", lambda: _b_gib(n_kv=32), "you counted the 32 query heads; only the 8 K/V heads are "
                                                        "cached."),
            Mistake("no_factor_2", lambda: _b_gib() / 2, "K and V are both cached (the factor 2)."),
        ],
        hint="2 x layers x K/V heads x head_dim x tokens x 2 bytes, divided by 2**30."),
    Question(
        "ex04.q3b", "B · on device: what fits 1 GiB without retraining?", 5, "choice", "b_option",
        reference=_b_option, choices=("a", "b", "c"),
        mistakes=[Mistake("a", lambda: "a", "compare your 3a with the 1 GiB budget: it does not fit as shipped."),
                  Mistake("c", lambda: "c", "halve your 3a: an fp8 cache stores one byte per number.")]),
    Question(
        "ex04.q4a", "C · per tenant: how many K/V heads", 10, "value", "c_n_kv_heads",
        reference=lambda: _design(_c_meets)[0],
        mistakes=[
            Mistake("fp16_only", lambda: max(kv for kv in DIVISORS_32 if _c_meets(kv, 2)),
                    "that is the most fp16 allows (or you asked for strictly less than the budget: a cache of "
                    "exactly 512 MiB fits); fp8 fits more K/V heads in the same budget."),
        ],
        hint="Per tenant: 2 x 32 layers x K/V heads x 128 x 8192 tokens x 4 sequences x bytes, against 512 MiB."),
    Question(
        "ex04.q4b", "C · per tenant: cache dtype", 5, "choice", "c_cache_dtype",
        reference=lambda: _design(_c_meets)[1], choices=("fp16", "fp8"),
        mistakes=[Mistake("other", lambda: "fp16" if _design(_c_meets)[1] == "fp8" else "fp8",
                          "with the K/V heads of 4a, that dtype does not fit (or a wider one does).")]),
    Question(
        "ex04.q5a", "D · which SmolLM2 layers to convert to MQA", 10, "value", "d_layers", subject="SmolLM2",
        reference=_d_layers,
        mistakes=[
            Mistake("by_index", lambda: _d_layers("index"), "take the cheapest layers first (that converts the most "
                                                            "layers within the budget), not the first layers."),
            Mistake("per_layer", lambda: _d_layers(per_layer=True), "the budget is for the total extra loss of all "
                                                                    "converted layers together, not per layer."),
        ],
        hint="Sort the layers by cost; add them while the running total stays <= 0.02 nats; return the layer "
             "indices in ascending order."),
    Question(
        "ex04.q5b", "D · fp16 KV bytes per token that conversion saves", 5, "value", "d_bytes_saved", subject="bytes",
        reference=lambda: _d_saved(len(_d_layers())),
        mistakes=[Mistake("all_heads", lambda: len(_d_layers()) * 2 * D["n_kv_heads"] * D["head_dim"] * D["bpe"],
                          "a converted layer keeps one K/V head: it saves n_kv_heads - 1 = 2 of its 3.")],
        hint="Per converted layer: 2 (K and V) x (3 - 1) heads x 64 x 2 bytes."),
    Question("ex04.q6", "A and C: justify your designs (marked by your instructor)", 10, "text", "justify_a_c",
             rubric="10 points in all, 5 per scenario. A (5): the 8 ms floor is set by weights + cache bytes / "
                    "bandwidth; at 128k tokens the cache dominates; fp16 allows 4 K/V heads, fp8 allows 8 in the same "
                    "bytes; more K/V heads keep more quality (Ainslie et al. 2023; notebook 09's recall task), fp8 "
                    "costs precision; the floor is a lower bound (real kernels are slower). C (5): 512 MiB per tenant "
                    "holds exactly one fp16 K/V head or two fp8 ones at this size; the choice and what it costs "
                    "(retraining or uptraining to 2 K/V heads, fp8 rounding)."),
    Question("ex04.q7", "B and D: justify your choices (marked by your instructor)", 10, "text", "justify_b_d",
             rubric="10 points in all, 5 per scenario. B (5): the shipped fp16 cache needs about 1.8 GiB; an fp8 "
                    "cache halves it without retraining, while fewer K/V heads would need retraining or uptraining; "
                    "name the risk of fp8 K/V and how to check it (perplexity on held-out text). D (5): the costs "
                    "were measured one layer at a time and need not add up (notebook 10's greedy search shows how "
                    "they interact); the choice must be re-measured with all chosen layers pooled, and uptraining "
                    "can recover part of the loss; the saving is small per layer (512 bytes/token)."),
]

EXERCISE = Exercise(
    name="ex04_case_studies", title="Exercise 4 · Design case studies", questions=QUESTIONS,
    forbidden_modules=("mqa_edu.sizing", "mqa_edu.heads", "mqa_edu.uptrain", "mqa_edu.grading", "solutions"),
)
