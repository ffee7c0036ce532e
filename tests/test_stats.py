"""mqa_edu.stats against SciPy: the incomplete beta function, Student's t tail, Welch's test (t, df, p) and the
verdicts notebook 09 prints, on the sample sizes the studies have (3-10 seeds)."""
import math
import random

import pytest
from scipy import special, stats

from mqa_edu.stats import (
    betainc,
    bootstrap_interval,
    describe,
    mean_sd,
    t_critical,
    t_two_sided_p,
    verdict,
    welch,
)
from tests.helpers import raises_naming


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (1.0, 0.5), (2.5, 0.5), (10.0, 3.0), (0.7, 12.0), (50.0, 50.0)])
def test_betainc_matches_scipy(a, b):
    for x in [0.0, 1e-6, 0.01, 0.2, 0.5, 0.77, 0.99, 1.0]:
        assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-12, rel=1e-10)


@pytest.mark.parametrize("df", [1.0, 1.7, 2.0, 3.3, 4.0, 8.0, 30.0, 200.0])
def test_t_tail_matches_scipy(df):
    for t in [0.0, 0.3, 1.0, 2.0, 2.776, 4.3, 10.0, -2.5]:
        assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(abs(t), df), abs=1e-12, rel=1e-9)


@pytest.mark.parametrize("n_a, n_b", [(2, 2), (3, 3), (3, 5), (5, 10), (10, 10)])
def test_welch_matches_scipy(n_a, n_b):
    rng = random.Random(n_a * 100 + n_b)
    for _ in range(20):
        a = [rng.gauss(0.3, rng.uniform(0.01, 1)) for _ in range(n_a)]
        b = [rng.gauss(0.0, rng.uniform(0.01, 1)) for _ in range(n_b)]
        ref = stats.ttest_ind(a, b, equal_var=False)
        w = welch(a, b)
        assert w.t == pytest.approx(ref.statistic, rel=1e-9)
        assert w.df == pytest.approx(ref.df, rel=1e-9)
        assert w.p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-14)
        assert w.diff == pytest.approx(sum(a) / n_a - sum(b) / n_b)


def test_two_standard_errors_are_not_significant_with_three_seeds():
    """The rule notebook 09 used ("worse" beyond 2 standard errors) calls p = 0.06-0.1 a difference at 3 seeds."""
    a, b = [1.0, 1.3, 1.6], [0.7, 0.8, 0.9]
    w = welch(a, b)
    assert w.t > 2 and w.df < 3 and w.p > 0.05
    word, _ = verdict(a, b)
    assert word == "cannot tell"
    assert verdict([2.0, 2.1, 2.05], [1.0, 1.1, 1.05])[0] == "worse"
    assert verdict([1.0, 1.1, 1.05], [2.0, 2.1, 2.05])[0] == "better"
    assert verdict([0.9, 0.95, 0.92], [0.5, 0.55, 0.52], lower_is_better=False)[0] == "better"
    assert describe(a, b).startswith("cannot tell (+0.500 ± ")


def test_identical_samples_and_bad_input():
    assert welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
    assert welch([2.0, 2.0], [1.0, 1.0]).p == 0.0
    with raises_naming(ValueError, "at least 2 values"):
        welch([1.0], [1.0, 2.0])
    with raises_naming(ValueError, "x must be in [0, 1]"):
        betainc(1, 1, 1.5)
    with raises_naming(ValueError, "level"):
        bootstrap_interval([1, 2], [1, 2], level=1.5)
    assert mean_sd([3.0]) == (3.0, 0.0)
    m, sd = mean_sd([1.0, 2.0, 4.0])
    assert m == pytest.approx(7 / 3) and sd == pytest.approx(stats.tstd([1.0, 2.0, 4.0]))


def test_bootstrap_interval_covers_the_difference_and_matches_scipy_roughly():
    rng = random.Random(5)
    a = [rng.gauss(1.0, 0.2) for _ in range(10)]
    b = [rng.gauss(0.5, 0.2) for _ in range(10)]
    lo, hi = bootstrap_interval(a, b, seed=1)
    diff = sum(a) / 10 - sum(b) / 10
    assert lo < diff < hi
    ref = stats.bootstrap((a, b), lambda x, y: x.mean() - y.mean(), method="percentile", n_resamples=10_000,
                          random_state=1, paired=False, vectorized=False)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05)
    assert math.isclose(*bootstrap_interval([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]))  # no noise: one value


@pytest.mark.parametrize("df", [1.0, 2.0, 2.8, 4.0, 10.0])
def test_t_critical_matches_scipy(df):
    assert t_critical(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
    assert t_critical(df, 0.1) == pytest.approx(stats.t.ppf(0.95, df), rel=1e-9)
