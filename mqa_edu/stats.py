"""Statistics for a handful of seeds (notebooks 09-10): is a difference between two configurations larger than the
noise between seeds?

With 3-5 seeds per configuration, "more than two standard errors" is not a test: the standard error is itself
estimated from a few numbers, and Welch's degrees of freedom are then about 2-8, where two standard errors leave a
two-sided p of 0.06-0.2 rather than 0.05. :func:`welch` gives the t statistic, its Welch-Satterthwaite degrees of
freedom and the two-sided p-value from Student's t distribution; :func:`verdict` turns it into "worse", "better" or
"cannot tell". :func:`bootstrap_interval` is the distribution-free alternative, honest about how little 3 seeds say.

Pure Python (math only); tests/test_stats.py checks every number against SciPy.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must hold at least one number, got none")
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use the symmetry
        return 1.0 - betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a) - _log_beta(a, b)
    # I_x(a, b) = front / (1 + d_1 / (1 + d_2 / (1 + ...))), with
    #   d_2m+1 = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),  d_2m = m (b - m) x / ((a + 2m - 1)(a + 2m)).
    # Modified Lentz: the fraction b_0 + a_1 / (b_1 + a_2 / (b_2 + ...)) with b_0 = 0, every b_j = 1, a_1 = 1 and
    # a_j = d_(j-1), evaluated front to back.
    tiny = 1e-300
    f, c, d = tiny, tiny, 0.0
    for j in range(1, 1000):
        k = j - 1  # a_j = d_k
        if j == 1:
            a_j = 1.0
        elif k % 2 == 1:
            m = (k - 1) // 2
            a_j = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            m = k // 2
            a_j = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + a_j * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + a_j / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if j > 1 and abs(c * d - 1.0) < 1e-16:
            break
    return math.exp(log_front) * f


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (df may be fractional, as Welch's is)."""
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if math.isinf(t):
        return 0.0
    return betainc(df / 2, 0.5, df / (df + t * t))


def t_critical(df: float, alpha: float = 0.05) -> float:
    """The |t| at which a two-sided test with ``df`` degrees of freedom reaches p = ``alpha`` (by bisection)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > alpha:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > alpha else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Welch:
    """mean(a) - mean(b), its standard error, Welch's t and degrees of freedom, and the two-sided p-value."""

    diff: float
    se: float
    t: float
    df: float
    p: float
    n: tuple[int, int]


def welch(a, b) -> Welch:
    """Welch's two-sample t-test (unequal variances) for mean(a) - mean(b). Each sample needs two or more values."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each sample needs at least 2 values (seeds), got {len(a)} and {len(b)}")
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # identical values in both samples: no noise to compare with
        return Welch(ma - mb, 0.0, 0.0 if ma == mb else math.copysign(math.inf, ma - mb),
                     float(len(a) + len(b) - 2), 1.0 if ma == mb else 0.0, (len(a), len(b)))
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    t = (ma - mb) / se
    return Welch(ma - mb, se, t, df, t_two_sided_p(t, df), (len(a), len(b)))


def verdict(a, b, alpha: float = 0.05, lower_is_better: bool = True) -> tuple[str, Welch]:
    """Is configuration ``a`` "worse", "better" than ``b``, or "cannot tell" at level ``alpha`` (Welch, two-sided)?
    ``lower_is_better``: True for a loss, False for an accuracy."""
    w = welch(a, b)
    if w.p >= alpha:
        return "cannot tell", w
    worse = w.diff > 0 if lower_is_better else w.diff < 0
    return ("worse" if worse else "better"), w


def bootstrap_interval(a, b, level: float = 0.95, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for mean(a) - mean(b), resampling each sample with replacement. With 3 values
    per sample there are only 10 distinct resamples of each, so the interval is coarse: it says how little 3 seeds
    pin down, not more."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise ValueError("both samples need at least one value")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    rng = random.Random(seed)
    diffs = sorted(sum(rng.choices(a, k=len(a))) / len(a) - sum(rng.choices(b, k=len(b))) / len(b)
                   for _ in range(n))
    lo = diffs[int(math.floor((1 - level) / 2 * (n - 1)))]
    hi = diffs[int(math.ceil((1 + level) / 2 * (n - 1)))]
    return lo, hi


def describe(a, b, alpha: float = 0.05, lower_is_better: bool = True, unit: str = "") -> str:
    """One line: the verdict, the difference, its standard error, Welch's df and the p-value."""
    word, w = verdict(a, b, alpha, lower_is_better)
    return f"{word} ({w.diff:+.3f}{unit} ± {w.se:.3f}, t = {w.t:.2f}, df = {w.df:.1f}, p = {w.p:.2g})"
