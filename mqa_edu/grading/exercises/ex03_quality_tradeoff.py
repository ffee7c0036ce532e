"""Exercise ex03 · the quality trade-off: questions, references, hidden-case generators and known mistakes.
PRIVATE: the grader loads it; check cells use the public form written from it (see __init__.py).

The references are written here, in NumPy, not imported from mqa_edu.convert or mqa_edu.studies, so this file
alone defines the grading; tests check that they agree with the course's own code. Question 4b is about the
trade-off study that ships with the package (mqa_edu/results/tradeoff.json); their answers are computed from it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...checks.questions import Cascade, Exercise, Mistake, Question

RESULTS = Path(__file__).resolve().parents[2] / "results" / "tradeoff.json"


# ---------------------------------------------------------------------------------------------- Q1: mean pooling
def _pool(w, n_kv_heads, groups):
    """(n_kv_heads * head_dim, d_in) -> (groups * head_dim, d_in): contiguous groups of heads, averaged."""
    w = np.asarray(w, dtype=np.float64)
    hd = w.shape[0] // n_kv_heads
    return w.reshape(groups, n_kv_heads // groups, hd, -1).mean(axis=1).reshape(groups * hd, -1)


def _pool_interleaved(w, n_kv_heads, groups):  # group j = heads j, j + groups, j + 2 groups, ...
    w = np.asarray(w, dtype=np.float64)
    hd = w.shape[0] // n_kv_heads
    return w.reshape(n_kv_heads // groups, groups, hd, -1).mean(axis=0).reshape(groups * hd, -1)


def _pool_rows_head_minor(w, n_kv_heads, groups):  # reads the rows as (head_dim, heads): the wrong axis is pooled
    w = np.asarray(w, dtype=np.float64)
    hd = w.shape[0] // n_kv_heads
    return w.reshape(hd, groups, n_kv_heads // groups, -1).mean(axis=2).reshape(groups * hd, -1)


def _pool_head_dim(w, n_kv_heads, groups):  # averages over head_dim instead of over heads
    w = np.asarray(w, dtype=np.float64)
    return w.reshape(n_kv_heads, w.shape[0] // n_kv_heads, -1).mean(axis=1)


def _pool_sum(w, n_kv_heads, groups):
    return _pool(w, n_kv_heads, groups) * (n_kv_heads // groups)


def _pool_first(w, n_kv_heads, groups):
    w = np.asarray(w, dtype=np.float64)
    hd = w.shape[0] // n_kv_heads
    return w.reshape(groups, n_kv_heads // groups, hd, -1)[:, 0].reshape(groups * hd, -1)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _pool_case(rng, n_kv, groups, hd, d_in):
    w = [[round(rng.gauss(0, 1), 6) for _ in range(d_in)] for _ in range(n_kv * hd)]
    return (w, n_kv, groups)


def _pool_public(rng):
    return [_pool_case(rng, 4, 2, 2, 3), _pool_case(rng, 3, 1, 2, 4), _pool_case(rng, 6, 3, 2, 2)]


def _pool_hidden(rng):
    cases = []
    for kind in ("identity", "mqa", "gqa", "gqa", "gqa", "odd"):
        n_kv = rng.choice([9, 15, 21]) if kind == "odd" else rng.choice([2, 4, 6, 8, 12])
        options = {"identity": [n_kv], "mqa": [1]}.get(kind) or [g for g in _divisors(n_kv) if 1 < g < n_kv] or [1]
        cases.append(_pool_case(rng, n_kv, rng.choice(options), rng.choice([2, 4, 8]), rng.randint(2, 9)))
    return cases


# ---------------------------------------------------------------------------------------------- Q2-Q3: choosing
def _pareto(configs):
    """Indices (ascending) of the configurations no other one beats: none has fewer-or-equal bytes and lower-or-equal
    loss with one of the two strictly better."""
    pts = [(float(b), float(loss)) for b, loss in configs]
    return [i for i, (b, loss) in enumerate(pts)
            if not any(b2 <= b and l2 <= loss and (b2 < b or l2 < loss) for b2, l2 in pts)]


def _pareto_strict(configs):  # only beaten when both are strictly better: keeps ties in bytes with a worse loss
    pts = [(float(b), float(loss)) for b, loss in configs]
    return [i for i, (b, loss) in enumerate(pts) if not any(b2 < b and l2 < loss for b2, l2 in pts)]


def _pareto_upside_down(configs):  # treats a higher loss as better
    return _pareto([(b, -loss) for b, loss in configs])


def _configs(rng, n):
    sizes = [128 * 2 ** rng.randint(0, 4) for _ in range(n)]  # repeated sizes: ties in bytes happen
    return [[b, round(rng.uniform(1.2, 2.2) - 0.00005 * b * rng.random(), 4)] for b in sizes]


def _pareto_public(rng):
    return [([[1024, 1.60], [512, 1.61], [256, 1.59], [128, 1.66]],),
            ([[128, 2.0], [128, 1.9], [256, 1.9], [512, 1.5], [1024, 1.5]],),
            ([[64, 0.8], [128, 0.4], [256, 0.3], [512, 0.05]],)]


def _pareto_hidden(rng):
    return [(_configs(rng, rng.randint(4, 12)),) for _ in range(8)]


def _best(configs, budget):
    """Index of the lowest loss among configurations with bytes <= budget (fewer bytes, then the lower index, break
    ties); -1 when none fits."""
    fits = [(float(loss), float(b), i) for i, (b, loss) in enumerate(configs) if b <= budget]
    return min(fits)[2] if fits else -1


def _best_strict(configs, budget):
    return _best(configs, budget - 1e-9)


def _best_no_budget(configs, budget):
    return _best(configs, float("inf"))


def _best_most_bytes(configs, budget):
    fits = [(float(b), -float(loss), -i) for i, (b, loss) in enumerate(configs) if b <= budget]
    return -max(fits)[2] if fits else -1


def _best_public(rng):
    c = [[1024, 1.597], [512, 1.599], [256, 1.603], [128, 1.579]]
    return [(c, 512), ([[1024, 0.04], [512, 0.22], [256, 0.47], [128, 0.81]], 512),
            ([[1024, 0.04], [512, 0.22]], 100)]


def _best_hidden(rng):
    out = []
    for _ in range(8):
        c = _configs(rng, rng.randint(3, 10))
        budget = rng.choice([b for b, _ in c] + [rng.randint(100, 2500), 64])  # often exactly a configuration's size
        out.append((c, budget))
    return out


# ---------------------------------------------------------------------------------------------- Q4: noise
def _t(a, b):
    """(mean(b) - mean(a)) in units of its standard error, each sample's spread from its own seeds (ddof=1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((b.mean() - a.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


def _t_ddof0(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((b.mean() - a.mean()) / np.sqrt(a.var() / a.size + b.var() / b.size))


def _t_sd(a, b):  # divides by the spread of single runs, not by the standard error of the means
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((b.mean() - a.mean()) / np.sqrt(a.var(ddof=1) + b.var(ddof=1)))


def _t_diff_only(a, b):
    return float(np.mean(b) - np.mean(a))


def _t_single_seed(a, b):
    return float(b[0] - a[0])


def _sample(rng, n, mu, sd):
    return [round(rng.gauss(mu, sd), 5) for _ in range(n)]


def _t_public(rng):
    return [([1.58221, 1.58352, 1.62455], [1.59062, 1.56848, 1.57726]),
            ([0.05136, 0.00683, 0.06797], [0.51116, 0.60822, 1.31179]),
            ([2.0, 2.1, 2.2, 2.3], [2.5, 2.4])]


def _t_hidden(rng):
    out = []
    for _ in range(8):
        mu, sd = rng.uniform(0.5, 3), rng.uniform(0.005, 0.2)
        out.append((_sample(rng, rng.randint(2, 6), mu, sd),
                    _sample(rng, rng.randint(2, 6), mu + rng.uniform(-3, 3) * sd, sd * rng.uniform(0.5, 2))))
    return out


def _study():
    return json.loads(RESULTS.read_text())


def _losses(study, task, n_kv_heads, comparison="matched"):
    runs = [r for r in study["runs"] if (r["task"], r["comparison"], r["n_kv_heads"]) == (task, comparison, n_kv_heads)]
    return [r["val_loss"] for r in sorted(runs, key=lambda r: r["seed"])]


def _q4b_samples(comparison="matched"):
    """Q4b's data: recall validation losses of GQA-2 (a) and MQA (b), parameter-matched runs. Notebook 09 compares
    every configuration with MHA only, so this comparison is printed nowhere."""
    study = _study()
    return _losses(study, "recall", 2, comparison), _losses(study, "recall", 1, comparison)


# ---------------------------------------------------------------------------------------------- Q5: uptraining
def _steps_to_gap(curve, target, gap):
    """First step at which the loss curve, linear between its points, is within ``gap`` of ``target``; -1 if never."""
    limit = target + gap
    pts = [(float(s), float(loss)) for s, loss in curve]
    if pts[0][1] <= limit:
        return pts[0][0]
    for (s0, l0), (s1, l1) in zip(pts, pts[1:]):
        if l1 <= limit:
            return s0 + (l0 - limit) / (l0 - l1) * (s1 - s0)
    return -1


def _steps_no_interp(curve, target, gap):
    return next((float(s) for s, loss in curve if loss <= target + gap), -1)


def _steps_relative(curve, target, gap):
    return _steps_to_gap(curve, target * (1 + gap), 0.0)


def _steps_no_gap(curve, target, gap):
    return _steps_to_gap(curve, target, 0.0)


def _curve(rng):
    start, end = rng.uniform(2.3, 3.0), rng.uniform(1.55, 1.8)
    steps = sorted(rng.sample(range(5, 400), rng.randint(4, 9)))
    rate = rng.uniform(0.005, 0.03)
    return [[s, round(end + (start - end) * float(np.exp(-rate * s)), 5)] for s in [0] + steps]


def _steps_public(rng):
    shipped = [[0, 2.68296], [30, 1.79919], [60, 1.70791], [120, 1.63]]
    return [(shipped, 1.58221, 0.1), ([[0, 3.0], [10, 2.0], [20, 1.8]], 1.7, 0.05),
            ([[0, 1.62], [10, 1.6]], 1.6, 0.05)]


def _steps_hidden(rng):
    out = []
    for _ in range(8):
        c = _curve(rng)
        target = round(min(loss for _, loss in c) - rng.uniform(-0.4, 0.05), 4)
        out.append((c, target, rng.choice([0.02, 0.05, 0.1, 0.2])))
    return out


QUESTIONS = [
    Question(
        "ex03.q1", "mean-pool K/V projection weights into groups", 20, "function", "mean_pool_kv",
        reference=_pool, rel_tol=1e-6, public_cases=_pool_public, hidden_cases=_pool_hidden,
        mistakes=[
            Mistake("interleaved", _pool_interleaved,
                    "you grouped heads j, j + groups, j + 2·groups, ... (interleaved). GQA groups are contiguous: "
                    "group 0 is heads 0 .. n_kv_heads/groups - 1, which is what repeat_interleave undoes."),
            Mistake("rows_head_minor", _pool_rows_head_minor,
                    "you read the rows as (head_dim, heads). The rows are head by head: reshape to (n_kv_heads, "
                    "head_dim, d_in), heads first."),
            Mistake("head_dim_axis", _pool_head_dim,
                    "you averaged over head_dim, the wrong axis: average over the heads of each group and keep every "
                    "row of a head."),
            Mistake("sum", _pool_sum, "you summed the heads of a group; Ainslie et al. take the mean."),
            Mistake("first", _pool_first, "you kept the first head of each group; the question asks for the mean."),
        ],
        hint="Reshape to (groups, n_kv_heads // groups, head_dim, d_in), average axis 1, reshape back."),
    Question(
        "ex03.q2", "Pareto front of loss vs KV bytes", 15, "function", "pareto_front",
        reference=_pareto, public_cases=_pareto_public, hidden_cases=_pareto_hidden,
        mistakes=[
            Mistake("strict", _pareto_strict,
                    "a configuration with the same bytes and a higher loss is beaten too: 'beaten' means no worse in "
                    "both and strictly better in one."),
            Mistake("upside_down", _pareto_upside_down, "a lower loss is better, not a higher one."),
        ],
        hint="Keep i unless some j has bytes_j <= bytes_i and loss_j <= loss_i, with one of the two strictly smaller. "
             "Return the kept indices in ascending order."),
    Question(
        "ex03.q3", "best configuration under a KV budget", 10, "function", "best_under_budget",
        reference=_best, public_cases=_best_public, hidden_cases=_best_hidden,
        mistakes=[
            Mistake("strict", _best_strict, "a configuration whose bytes EQUAL the budget fits (<=, not <)."),
            Mistake("no_budget", _best_no_budget, "that configuration does not fit the budget."),
            Mistake("most_bytes", _best_most_bytes, "the most bytes under the budget is not the lowest loss."),
        ],
        hint="Among configurations with bytes <= budget, the lowest loss (ties: fewer bytes, then the lower index); "
             "-1 if none fits."),
    Question(
        "ex03.q4a", "a difference in standard errors", 15, "function", "difference_in_standard_errors",
        reference=_t, rel_tol=1e-6, public_cases=_t_public, hidden_cases=_t_hidden,
        mistakes=[
            Mistake("ddof0", _t_ddof0, "use the sample variance (ddof=1): with 3 seeds, ddof=0 understates the "
                                       "spread by a lot."),
            Mistake("sd_not_se", _t_sd, "you divided by the spread of single runs. The means are less noisy than "
                                        "single runs: divide each variance by its number of seeds."),
            Mistake("difference_only", _t_diff_only, "that is the raw difference; express it in standard errors."),
            Mistake("single_seed", _t_single_seed,
                    "you compared single seeds. With a spread across seeds larger than the gap, one seed each can "
                    "show either sign: use every seed."),
        ],
        hint="(mean(b) - mean(a)) / sqrt(var(a)/len(a) + var(b)/len(b)), with var the sample variance (ddof=1)."),
    Question(
        "ex03.q4b", "the study: MQA vs GQA-2 on recall, in standard errors", 5, "value", "mqa_vs_gqa2_recall",
        subject="GQA-2",
        reference=lambda: _t(*_q4b_samples()), rel_tol=1e-3,
        mistakes=[
            Mistake("sign", lambda: _t(*reversed(_q4b_samples())), "the sign: MQA's mean minus GQA-2's, so b is MQA."),
            Mistake("same_runs", lambda: _t(*_q4b_samples("same")), "those are the 'same' runs; the question asks "
                                                                       "for the parameter-matched ones."),
            Mistake("ddof0", lambda: _t_ddof0(*_q4b_samples()), "use the sample variance (ddof=1)."),
            Mistake("single_seed", lambda: _t_single_seed(*_q4b_samples()),
                    "that compares seed 0 alone; use every seed, in standard errors."),
        ],
        hint="Collect the recall runs with comparison 'matched' and n_kv_heads 2 (a) and 1 (b); apply your Q4a.",
        cascade=Cascade("ex03.q4a", probes=lambda: [_q4b_samples()], combine=lambda case, v: v[0],
                        decoys=lambda: [tuple(reversed(_q4b_samples())), _q4b_samples("same")])),
    Question(
        "ex03.q5", "uptraining: steps to come within a gap", 15, "function", "steps_to_within",
        reference=_steps_to_gap, rel_tol=1e-6, public_cases=_steps_public, hidden_cases=_steps_hidden,
        mistakes=[
            Mistake("no_interpolation", _steps_no_interp,
                    "that is the first evaluated step within the gap; interpolate linearly between the two evaluated "
                    "points around the crossing."),
            Mistake("relative_gap", _steps_relative, "the gap is in nats (target + gap), not a fraction of the "
                                                     "target."),
            Mistake("no_gap", _steps_no_gap, "you waited for the target itself; within `gap` of it is enough."),
        ],
        hint="limit = target + gap; the first point already within it counts; else find the first segment that "
             "crosses it and interpolate linearly; -1 if the curve never gets there."),
    Question(
        "ex03.q6", "concept: 'MQA causes only slight quality degradation'", 10, "choice", "claim_choice",
        reference=lambda: "b", choices=("a", "b", "c", "d"),
        mistakes=[
            Mistake("a", lambda: "a", "look at the recall task: in the same architecture MQA's loss was higher than "
                                      "MHA's beyond the seed noise (notebook 09, section 3)."),
            Mistake("c", lambda: "c", "the other way round: text could not tell MQA from MHA, recall could."),
            Mistake("d", lambda: "d", "every configuration was trained with 3 (text) or 5 (recall) seeds; the spread "
                                      "is measured."),
        ]),
    Question("ex03.q7", "uptrain or retrain? (marked by your instructor)", 10, "text", "uptrain_justification",
             rubric="10 points in all. 3: reads the conversion results: mean pooling starts far above the MHA loss "
                    "and uptraining for 5/10/20% of the steps closes most of the gap (about 95/90/86% for 4/2/1 KV "
                    "heads at 20%), but not all: about 0.04/0.12/0.20 nats remain above the models trained from "
                    "scratch. 3: compares with training from scratch: for the full budget (same loss as MHA within "
                    "the noise on text, at 100% of the cost), and with the same few steps and their own schedule "
                    "(far worse than the uptrained model); counts the MHA model's own steps when no checkpoint "
                    "exists. 2: names the task dependence (recall needs K/V capacity; text could not tell). 2: a "
                    "concrete recommendation with a budget in steps. No points for restating the question."),
]

EXERCISE = Exercise(
    name="ex03_quality_tradeoff", title="Exercise 3 · The quality trade-off", questions=QUESTIONS,
    forbidden_modules=("mqa_edu.convert", "mqa_edu.studies", "mqa_edu.uptrain", "mqa_edu.grading", "solutions"),
)
