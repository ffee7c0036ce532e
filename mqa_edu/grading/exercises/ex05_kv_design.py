"""Exercise ex05 · beyond MQA, designing a cache: questions, references, hidden-case generators and known mistakes.
PRIVATE: the grader loads it; check cells use the public form written from it (see __init__.py).

The references are written here from the formulas (not imported from mqa_edu.sizing or mqa_edu.latent); tests check
they agree with the course's sizing and with the caches the model allocates. Q4 reads the shipped trade-off study,
the file notebook 11 plots.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ...checks.questions import Exercise, Mistake, Question

GiB = 2**30
STUDY = Path(__file__).resolve().parents[2] / "results" / "tradeoff.json"


# ---------------------------------------------------------------------------------------------- Q1: MLA
def _mla(n_layers, n_heads, kv_lora_rank, rope_dim, tokens, batch, bytes_per_element, how="right"):
    """Each token leaves, in each layer, one latent (kv_lora_rank) and ONE rotary key shared by the heads."""
    per_token = {"right": kv_lora_rank + rope_dim, "rope_per_head": kv_lora_rank + n_heads * rope_dim,
                 "k_and_v": 2 * (kv_lora_rank + rope_dim), "no_rope": kv_lora_rank,
                 "per_head": n_heads * (kv_lora_rank + rope_dim)}[how]
    return n_layers * per_token * tokens * batch * bytes_per_element


def _mla_public(rng):
    return [(60, 128, 512, 64, 1, 1, 2), (2, 8, 32, 8, 100, 3, 2), (27, 16, 256, 32, 4096, 2, 1)]


def _mla_hidden(rng):
    out = []
    for _ in range(10):
        n_heads = rng.choice([8, 16, 32, 64, 128])
        out.append((rng.randint(2, 96), n_heads, rng.choice([64, 128, 256, 512, 1024]), rng.choice([16, 32, 64]),
                    rng.randint(1, 131072), rng.randint(1, 32), rng.choice([1, 2, 4])))
    return out


# ---------------------------------------------------------------------------------------------- Q2: CLA
def _cla(n_layers, kv_share, n_kv_heads, head_dim, tokens, batch, bytes_per_element, how="right"):
    """Only the first layer of every kv_share computes and caches K/V: ceil(n_layers / kv_share) layers."""
    layers = {"right": math.ceil(n_layers / kv_share), "floor": n_layers // kv_share,
              "fraction": n_layers / kv_share, "no_share": n_layers}[how]
    return layers * 2 * n_kv_heads * head_dim * tokens * batch * bytes_per_element


def _cla_public(rng):
    return [(24, 2, 8, 128, 1, 1, 2), (5, 2, 1, 64, 100, 2, 2), (7, 3, 4, 32, 10, 1, 4)]


def _cla_hidden(rng):
    out = []
    for i in range(10):
        share = rng.choice([2, 2, 3, 4])
        n_layers = rng.randint(2, 40) * share + (rng.randint(1, share - 1) if i % 2 else 0)  # half of them uneven
        out.append((n_layers, share, rng.choice([1, 2, 4, 8]), rng.choice([64, 128]), rng.randint(1, 65536),
                    rng.randint(1, 16), rng.choice([1, 2])))
    return out


# ---------------------------------------------------------------------------------------------- Q3: a budget
S = {"n_layers": 32, "batch": 16, "context": 32768, "bytes_per_element": 2, "budget_gib": 40}
# numbers each design caches per token, per layer that caches (the question gives this table)
DESIGNS = {"MHA": (8192, 1), "GQA-8": (2048, 1), "MQA": (256, 1), "MLA": (576, 1), "GQA-8+CLA2": (2048, 2),
           "MQA+CLA2": (256, 2)}


def _design_bytes(name, cla=True):
    per_token, share = DESIGNS[name]
    layers = math.ceil(S["n_layers"] / share) if cla else S["n_layers"]
    return layers * per_token * S["context"] * S["batch"] * S["bytes_per_element"]


def _fits(cla=True, budget=None):
    budget = S["budget_gib"] * GiB if budget is None else budget
    fitting = [n for n in DESIGNS if _design_bytes(n, cla) <= budget]
    return max(fitting, key=lambda n: _design_bytes(n, cla)).lower()  # of those that fit, the one caching most


# ---------------------------------------------------------------------------------------------- Q4: the study
def _study_rows(task="text"):
    """(design, mean validation loss, KV bytes per token) of every design the study trained on ``task``."""
    results = json.loads(STUDY.read_text())
    rows = {}
    for r in results["runs"]:
        if r["task"] == task and r["comparison"] == "same":
            n_heads = results["tasks"][task]["model"]["n_heads"]
            kv = r["n_kv_heads"]
            name = "MHA" if kv == n_heads else "MQA" if kv == 1 else f"GQA-{kv}"
            rows.setdefault(name, []).append((r["val_loss"], r["kv_bytes_per_token"]))
    for r in results.get("beyond", {}).get("runs", []):
        if r["task"] == task:
            rows.setdefault(r["design"], []).append((r["val_loss"], r["kv_bytes_per_token"]))
    return {n: (sum(v for v, _ in rs) / len(rs), rs[0][1]) for n, rs in rows.items()}


BUDGET_BYTES = 128  # KV bytes per token for Q4: MQA's own cache, so that 'at most' matters


def _best_under(budget=BUDGET_BYTES, strict=False):
    rows = _study_rows()
    ok = [n for n, (_, b) in rows.items() if (b < budget if strict else b <= budget)]
    return min(ok, key=lambda n: rows[n][0]).lower()


def _q4_choices():
    """Every design the study trained on the text task, in lower case (answers are compared in lower case)."""
    return tuple(sorted(n.lower() for n in _study_rows()))


QUESTIONS = [
    Question(
        "ex05.q1", "MLA: cache bytes", 20, "function", "mla_cache_bytes",
        reference=_mla, public_cases=_mla_public, hidden_cases=_mla_hidden,
        mistakes=[
            Mistake("rope_per_head", lambda *a: _mla(*a, how="rope_per_head"),
                    "the rotary key is ONE vector shared by every head, not one per head: kv_lora_rank + rope_dim "
                    "per token and layer."),
            Mistake("k_and_v", lambda *a: _mla(*a, how="k_and_v"),
                    "MLA caches one latent that stands for both K and V (the up-projections make both from it): "
                    "there is no factor 2."),
            Mistake("no_rope", lambda *a: _mla(*a, how="no_rope"),
                    "the decoupled rotary key is cached too: add rope_dim to kv_lora_rank."),
            Mistake("per_head", lambda *a: _mla(*a, how="per_head"),
                    "the latent is per token and layer, not per head: n_heads does not appear in MLA's cache."),
        ],
        hint="n_layers x (kv_lora_rank + rope_dim) x tokens x batch x bytes_per_element; n_heads is not in it."),
    Question(
        "ex05.q2", "CLA: cache bytes", 20, "function", "cla_cache_bytes",
        reference=_cla, public_cases=_cla_public, hidden_cases=_cla_hidden,
        mistakes=[
            Mistake("floor", lambda *a: _cla(*a, how="floor"),
                    "with a layer count that kv_share does not divide, the last group is shorter but still has a "
                    "layer that computes K/V: ceil(n_layers / kv_share) layers cache, not n_layers // kv_share."),
            Mistake("fraction", lambda *a: _cla(*a, how="fraction"),
                    "a layer caches or it does not: count whole layers, ceil(n_layers / kv_share), not "
                    "n_layers / kv_share."),
            Mistake("no_share", lambda *a: _cla(*a, how="no_share"),
                    "with CLA only the first layer of each group of kv_share computes and caches K/V; the others "
                    "reuse it."),
            Mistake("no_factor_2", lambda *a: _cla(*a) / 2, "each caching layer stores K AND V (the factor 2)."),
        ],
        hint="ceil(n_layers / kv_share) x 2 x n_kv_heads x head_dim x tokens x batch x bytes_per_element."),
    Question(
        "ex05.q3", "the design that fits 40 GiB", 15, "choice", "design_that_fits",
        reference=lambda: _fits(), choices=tuple(n.lower() for n in DESIGNS),
        mistakes=[
            Mistake("no_cla", lambda: _fits(cla=False),
                    "CLA2 caches only every second layer: GQA-8 + CLA2 stores half of GQA-8's cache."),
            Mistake("gqa8", lambda: "gqa-8", "GQA-8's cache is 64 GiB here: 32 layers x 2,048 numbers x 32,768 "
                                             "tokens x 16 sequences x 2 bytes. It does not fit."),
            Mistake("smallest", lambda: "mqa+cla2", "that fits, but the rule asks for the design that caches the "
                                                    "MOST among those that fit (it keeps the most of the model)."),
        ],
        hint="For each design: layers that cache x numbers per token x 32,768 x 16 x 2 bytes; keep those <= 40 GiB "
             "(40 x 2**30 bytes) and pick the largest."),
    Question(
        "ex05.q4", "reading the Pareto plot: the best design within 128 bytes per token", 15, "choice",
        "best_within_128_bytes", reference=lambda: _best_under(), choices=_q4_choices(),
        mistakes=[
            Mistake("strict", lambda: _best_under(strict=True),
                    "'within a budget' means at most 128 bytes per token: a design with exactly 128 fits."),
            Mistake("lowest_bytes", lambda: min(_study_rows().items(), key=lambda kv: kv[1][1])[0].lower(),
                    "that is the design with the smallest cache; the question asks for the lowest loss among those "
                    "within the budget."),
        ],
        hint="From the study's text task: every design's mean validation loss and KV bytes per token; keep those "
             "with at most 128 bytes; the lowest mean loss wins."),
    Question(
        "ex05.q5", "concept: absorbed MLA at decode", 10, "choice", "absorbed_choice",
        reference=lambda: "c", choices=("a", "b", "c", "d"),
        mistakes=[
            Mistake("a", lambda: "a", "absorbing changes which matrices multiply the query and the output, not what "
                                      "is cached: the cache still holds the latents and the rotary keys."),
            Mistake("b", lambda: "b", "the naive path is the one that up-projects every cached latent at every step; "
                                      "the absorbed path never materialises per-head K and V."),
            Mistake("d", lambda: "d", "the two paths compute the same attention (equal up to rounding); only the "
                                      "order of the matrix products differs."),
        ]),
    Question("ex05.q6", "MLA or GQA + CLA? (marked by your instructor)", 20, "text", "design_justification",
             rubric="20 points in all. 6: the cache of both designs at the scenario of Q3, computed (MLA 576 numbers "
                    "per token and layer; GQA-8 + CLA2 2,048 on every second layer, 1,024 on average) and compared "
                    "with the budget. 6: quality, from the study's Pareto plot with its uncertainty (seeds, Welch's "
                    "test) and what the small scale cannot show (the papers' claims: DeepSeek-V2 above MHA, Brandon "
                    "et al. near MQA at 1B-3B). 4: decode: absorbed MLA reads one latent for all heads and does more "
                    "FLOPs per byte (notebook 11's roofline); CLA reads half the layers' K/V. 4: a recommendation "
                    "that follows from the three, with what would change it (a longer context, a GPU's ridge "
                    "point, retraining cost)."),
]

EXERCISE = Exercise(
    name="ex05_kv_design", title="Exercise 5 · Beyond MQA: designing a cache", questions=QUESTIONS,
    forbidden_modules=("mqa_edu.sizing", "mqa_edu.heads", "mqa_edu.latent", "mqa_edu.grading", "solutions"),
)


def exercise_for(qid):
    return EXERCISE
