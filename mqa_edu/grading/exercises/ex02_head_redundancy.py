"""Exercise ex02 · head redundancy: questions, references, hidden-case generators and known mistakes.
PRIVATE: the grader loads it; check cells use the public form written from it (see __init__.py).

Q1 and Q2 (the measures) are written here in NumPy, not imported from mqa_edu.redundancy; tests check they agree.
Q3-Q5 are about the shipped 8-head text model, on the data of :mod:`mqa_edu.exercise_data` (the student's notebook
builds the same arrays). Q5 accepts any grouping: the grader converts layer 0 with it and ranks the loss among all
105 ways to pair the heads.
"""
from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

from ...checks.questions import Cascade, Exercise, Mistake, Question
from ...checks.rules import Partition

LAYER, N_GROUPS = 0, 4  # Q3-Q5 look at layer 0; Q5 converts it to 4 K/V heads


# ---------------------------------------------------------------------------------------------- Q1: JS divergence
def _softmax(scores, mask=None):
    s = np.asarray(scores, dtype=np.float64)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(p, q):
    """sum p log(p / q) per row, with 0 log 0 = 0."""
    safe = np.where(p > 0, p, 1.0)
    return np.where(p > 0, p * (np.log(safe) - np.log(np.where(p > 0, q, 1.0))), 0.0).sum(axis=-1)


def _js_rows(p, q):
    m = 0.5 * (p + q)
    return 0.5 * (_kl(p, m) + _kl(q, m))


def _js(scores_a, scores_b, mask):
    """Mean over query rows (those that see at least one key) of JS(softmax of a, softmax of b), in nats, each
    softmax over the row's visible keys only."""
    mask = np.asarray(mask, dtype=bool)
    rows = mask.any(axis=-1)
    return float(_js_rows(_softmax(scores_a, mask), _softmax(scores_b, mask))[rows].mean())


def _js_no_mask(a, b, mask):
    return float(_js_rows(_softmax(a), _softmax(b)).mean())


def _js_mask_after(a, b, mask):  # softmax over every key, then the masked weights zeroed (rows no longer sum to 1)
    mask = np.asarray(mask, dtype=bool)
    return float(_js_rows(_softmax(a) * mask, _softmax(b) * mask)[mask.any(-1)].mean())


def _js_log2(a, b, mask):
    return _js(a, b, mask) / math.log(2)


def _js_kl(a, b, mask):
    mask = np.asarray(mask, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_kl(_softmax(a, mask), _softmax(b, mask))[mask.any(-1)].mean())


def _js_sum(a, b, mask):
    mask = np.asarray(mask, dtype=bool)
    return float(_js_rows(_softmax(a, mask), _softmax(b, mask))[mask.any(-1)].sum())


def _scores(rng, n_q, n_k, spread):
    return [[round(rng.gauss(0, spread), 4) for _ in range(n_k)] for _ in range(n_q)]


def _js_case(rng, n_q, n_k, mask_kind, spread=2.0, peaked=False):
    if mask_kind == "causal":
        n_k = n_q
        mask = [[k <= q for k in range(n_k)] for q in range(n_q)]
    else:  # padding: a few keys hidden from every row, plus a random extra hole per row; never a row with none
        pad = set(rng.sample(range(n_k), rng.randint(1, max(1, n_k // 3))))
        mask = [[k not in pad and rng.random() > 0.15 for k in range(n_k)] for _ in range(n_q)]
        for row in mask:
            if not any(row):
                row[rng.choice([k for k in range(n_k) if k not in pad] or [0])] = True
    a, b = _scores(rng, n_q, n_k, spread), _scores(rng, n_q, n_k, spread)
    if peaked:  # near-one-hot rows: some weights underflow to exactly 0 (0 log 0 must count as 0)
        for row in a[: n_q // 2 + 1]:
            row[rng.randrange(n_k)] += 900.0
    return (a, b, mask)


def _js_public(rng):
    return [_js_case(rng, 4, 4, "causal"), _js_case(rng, 3, 6, "padding"), _js_case(rng, 5, 5, "causal", peaked=True)]


def _js_hidden(rng):
    return [_js_case(rng, rng.randint(3, 9), rng.randint(3, 10), kind, spread=rng.choice([0.5, 2.0, 5.0]),
                     peaked=peaked)
            for kind, peaked in (("causal", False), ("causal", True), ("padding", False), ("padding", True),
                                 ("causal", False), ("padding", False))]


# ---------------------------------------------------------------------------------------------- Q2: linear CKA
def _center(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def _cka_of(x, y):
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _cka(x, y):
    """Linear CKA of x (n, d1) and y (n, d2): columns centred, ||y^T x||_F^2 / (||x^T x||_F ||y^T y||_F)."""
    return _cka_of(_center(x), _center(y))


def _cka_no_center(x, y):
    return _cka_of(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def _cka_rows(x, y):  # centred each example (row) instead of each feature (column)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return _cka_of(x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True))


def _cka_not_squared(x, y):
    x, y = _center(x), _center(y)
    return float(np.linalg.norm(y.T @ x) / math.sqrt(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _matrix(rng, n, d, shift=0.0):
    return [[round(rng.gauss(shift, 1), 5) for _ in range(d)] for _ in range(n)]


def _rotated(rng, x, scale, shift):
    """x times a random orthogonal matrix, scaled and shifted: CKA with x is exactly 1."""
    d = len(x[0])
    q, _ = np.linalg.qr(np.array(_matrix(rng, d, d)))
    return (np.asarray(x) @ q * scale + shift).round(10).tolist()


def _cka_public(rng):
    x = _matrix(rng, 8, 3)
    return [(x, _matrix(rng, 8, 2)), (x, _rotated(rng, x, 2.5, 4.0)), (_matrix(rng, 10, 4, 1.0), _matrix(rng, 10, 4))]


def _cka_hidden(rng):
    cases = []
    for kind in ("random", "random", "rotated", "noisy", "shifted", "rotated"):
        n, d = rng.randint(6, 20), rng.randint(2, 6)
        x = _matrix(rng, n, d, rng.choice([0.0, 2.0]))
        if kind == "random":
            y = _matrix(rng, n, rng.randint(2, 6))
        elif kind == "rotated":
            y = _rotated(rng, x, rng.uniform(0.2, 5), rng.uniform(-5, 5))
        elif kind == "noisy":
            y = (np.asarray(x) + 0.5 * np.asarray(_matrix(rng, n, d))).round(6).tolist()
        else:
            y = (np.asarray(x) * np.asarray(_matrix(rng, 1, d)) + 3.0).round(6).tolist()  # per-feature scale + shift
        cases.append((x, y))
    return cases


# ---------------------------------------------------------------------------------------------- Q3-Q5: the model
def _maps():
    from ...exercise_data import head_maps

    return head_maps()


@cache
def _js_matrix(layer):
    m = _maps()
    n = m["log_weights"].shape[1]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = _js(m["log_weights"][layer, i], m["log_weights"][layer, j], m["mask"])
    return out


def _pair(layer=LAYER, pick=min):
    js = _js_matrix(layer)
    n = js.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    i, j = pick(pairs, key=lambda p: js[p])
    return f"{i},{j}"


PAIRS = tuple(f"{i},{j}" for i in range(8) for j in range(i + 1, 8))


_PAIR_INDICES = tuple((i, j) for i in range(8) for j in range(i + 1, 8))
MAPS = "mqa_edu.exercise_data:head_maps"


def _named_pair(layer, i, j):
    from ...checks.collect import named

    return named(MAPS, "log_weights", layer, i), named(MAPS, "log_weights", layer, j), named(MAPS, "mask")


def _smallest_pair(values):
    """Q3's answer given js values for :data:`_PAIR_INDICES`, in order (a student's own, for the cascade)."""
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        return None
    i, j = min(zip(_PAIR_INDICES, values), key=lambda p: p[1])[0]
    return f"{i},{j}"


def _pair_inputs():
    """Every js_divergence call Q3 makes (either order, either layer): where a student's Q1 raises, the grader's
    values stand in at these, so Q3 is judged on its own step."""
    m = _maps()
    return [(m["log_weights"][layer, i], m["log_weights"][layer, j], m["mask"])
            for layer in (0, 1) for i in range(8) for j in range(8) if i != j]


def _ranking(layer=LAYER, descending=True):
    imp = _maps()["importance"][layer]
    order = np.argsort(-imp if descending else imp, kind="stable")
    return [int(h) for h in order]


def _converted_loss(groups: tuple) -> float:
    from ...exercise_data import converted_loss

    return converted_loss(tuple(groups), LAYER)


@lru_cache(maxsize=1)
def _all_losses() -> list:
    """The loss after converting layer 0 with each of the 105 ways to pair its 8 heads, sorted: every possible
    answer to Q5, measured, so a proposal is ranked exactly (no random sample)."""
    from ...convert import equal_groupings

    return sorted(_converted_loss(g) for g in equal_groupings(8, N_GROUPS))


TOP = (0.5, 0.25, 0.1)  # Q5's quality cases: a proposal ranked in the top half, quarter and tenth of all pairings


class _GroupingScore(Partition):
    """Q5, graded: case ("form",) passes any well-formed split; case ("top", share) passes a split whose converted
    model is beaten by fewer than that share of all 105 pairings (the losses are computed here, in the grader's
    process). Four cases of 5 points: the contiguous example the check prints ranks 43rd of 105 and earns 10."""

    def __init__(self, part, share=None):
        super().__init__(8, N_GROUPS, note="a well-formed split; its loss after conversion is measured at grading")
        self.part, self.share = part, share

    def _loss(self, got):
        return _converted_loss(tuple(tuple(sorted(int(h) for h in g)) for g in got))

    def _better(self, got) -> int:
        loss = self._loss(got)
        return sum(x < loss - 1e-12 for x in _all_losses())

    def matches(self, got) -> bool:
        if self.problem(got) is not None:
            return False
        return self.part == "form" or self._better(got) < self.share * len(_all_losses())

    def _standing(self, got) -> str:
        n = len(_all_losses())
        return (f"converted with your groups, the model's loss is {self._loss(got):.4f}; {self._better(got)} of the "
                f"{n} ways to pair the heads do better (best {_all_losses()[0]:.4f}, median "
                f"{float(np.median(_all_losses())):.4f})")

    def explain(self, got) -> str:
        if self.problem(got) is not None:
            return self.problem(got)
        return (f"{self._standing(got)}: not in the top {self.share:.0%}. Group heads that are alike in what they "
                "would share: their keys and values.")

    def note(self, got) -> str:
        return "well formed" if self.part == "form" else f"{self._standing(got)}: in the top {self.share:.0%}"

    def public(self) -> Partition:
        if self.part == "form":  # the check tells the student the loss their groups give, as the grader measures it
            return Partition(8, N_GROUPS, note="well formed", measure="mqa_edu.exercise_data:converted_loss")
        return Partition(8, N_GROUPS, note=f"ranked at grading among all 105 ways to pair the heads (in the top "
                                           f"{self.share:.0%}: 5 points)")


QUESTIONS = [
    Question(
        "ex02.q1", "Jensen-Shannon divergence of two heads' attention", 20, "function", "js_divergence",
        reference=_js, rel_tol=1e-6, public_cases=_js_public, hidden_cases=_js_hidden,
        mistakes=[
            Mistake("no_mask", _js_no_mask, "the masked keys took part in the softmax: mask the scores (to -inf) "
                                            "BEFORE normalising, so each row sums to 1 over its visible keys."),
            Mistake("mask_after", _js_mask_after,
                    "you zeroed the masked weights after the softmax, so the rows no longer sum to 1: mask before "
                    "normalising."),
            Mistake("log2", _js_log2, "that is in bits (log base 2); the question asks for nats (natural log)."),
            Mistake("kl", _js_kl, "that is KL(p || q), which is not symmetric; JS compares each with the mixture "
                                  "m = (p + q) / 2."),
            Mistake("sum_rows", _js_sum, "you summed over the query rows; take the mean."),
        ],
        hint="Per row: p = softmax of a over the visible keys, q = the same for b, m = (p + q) / 2, "
             "JS = KL(p||m)/2 + KL(q||m)/2 with 0·log 0 = 0. Return the mean over the rows."),
    Question(
        "ex02.q2", "linear CKA of two heads' representations", 20, "function", "linear_cka",
        reference=_cka, rel_tol=1e-6, public_cases=_cka_public, hidden_cases=_cka_hidden,
        mistakes=[
            Mistake("no_center", _cka_no_center, "centre each feature (column) first: without it, a shift of the "
                                                 "representation changes CKA."),
            Mistake("rows", _cka_rows, "you centred each example (row); centre each feature (column) over the "
                                       "examples."),
            Mistake("not_squared", _cka_not_squared,
                    "the numerator is the SQUARED Frobenius norm ||yᵀx||², over ||xᵀx|| · ||yᵀy||."),
        ],
        hint="x, y centred per column; ||yᵀx||_F² / (||xᵀx||_F · ||yᵀy||_F). A rotated, scaled, shifted copy of x "
             "scores 1."),
    Question(
        "ex02.q3", "the most redundant pair of heads in layer 0", 10, "choice", "most_redundant_pair",
        reference=_pair, choices=PAIRS,
        mistakes=[
            Mistake("most_different", lambda: _pair(pick=max), "that is the LEAST alike pair: JS is a divergence, "
                                                               "0 for identical maps."),
            Mistake("layer1", lambda: _pair(layer=1), "that is layer 1's pair; the question is about layer 0."),
        ],
        hint="Your js_divergence for every pair of heads of layer 0 (log_weights[0, i], log_weights[0, j], mask); "
             "the smallest. Answer 'i,j' with i < j.",
        # built on Q1: the student's js_divergence on layer 0's 28 pairs is collected as hidden cases of Q1 (given by
        # name: the maps are too large to send), and Q3 is right when it is the smallest of those values; where the
        # student's js_divergence raises, the reference's values stand in
        cascade=Cascade("ex02.q1", probes=lambda: [_named_pair(0, i, j) for i, j in _PAIR_INDICES],
                        combine=lambda case, v: _smallest_pair(v), stand_in=_pair_inputs)),
    Question(
        "ex02.q4", "rank layer 0's heads by ablation importance", 10, "value", "importance_ranking",
        reference=_ranking,
        mistakes=[
            Mistake("ascending", lambda: _ranking(descending=False), "most important first: the largest rise in loss "
                                                                     "comes first."),
            Mistake("layer1", lambda: _ranking(layer=1), "that is layer 1's ranking."),
        ],
        hint="Sort the 8 heads of layer 0 by importance[0], largest first; return the head indices."),
    Question(
        "ex02.q5", "propose K/V groups for layer 0 (GQA-4)", 20, "value", "kv_groups",
        reference=lambda part="form", share=None: _GroupingScore(part, share),
        public_cases=lambda rng: [("form",), *[("top", share) for share in TOP]],
        hint="Four groups of two heads, as a list of lists; put together heads whose keys and values are alike."),
    Question("ex02.q6", "alike maps, different values (marked by your instructor)", 10, "text", "maps_vs_values",
             rubric="10 points in all. 4: two heads can attend to the same positions (similar maps, low JS) while "
                    "their value projections read different features of those positions, so their outputs differ "
                    "(low CKA of values/outputs). 3: sharing K/V forces one key AND one value per group: alike maps "
                    "say the keys could be shared, but the values are shared too, and a head whose values differ "
                    "loses what it read. 3: so judge groupings by the keys and values (or outputs), and check by the "
                    "loss after conversion, as Q5 does. No points for restating the question."),
    Question(
        "ex02.q7", "concept: what a divergence of 0 says", 10, "choice", "concept_choice",
        reference=lambda: "c", choices=("a", "b", "c", "d"),
        mistakes=[
            Mistake("a", lambda: "a", "identical maps say nothing about the values the heads read: their outputs can "
                                      "still differ."),
            Mistake("b", lambda: "b", "JS is symmetric and bounded by ln 2; 0 means the rows are identical, not "
                                      "opposite."),
            Mistake("d", lambda: "d", "CKA is unchanged by rotating or scaling a representation: that is why it "
                                      "suits comparing heads."),
        ]),
]

EXERCISE = Exercise(
    name="ex02_head_redundancy", title="Exercise 2 · Head redundancy", questions=QUESTIONS,
    # the measures (redundancy), the grouping by similarity (convert): the answers of Q1-Q3 and Q5
    forbidden_modules=("mqa_edu.redundancy", "mqa_edu.convert", "mqa_edu.grading", "solutions"),
)
