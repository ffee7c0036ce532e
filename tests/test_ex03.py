"""Exercise 3 (the quality trade-off): references agree with the course's own code and with SciPy, hidden cases are
fresh and catch every known mistake, public checks name each planted mistake, array answers are judged entry by
entry, and the grader gives the solution full marks, a planted-mistake notebook its hints, and 0 to an answer that
calls the course's conversion code."""
import random
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from mqa_edu.checks import judging
from mqa_edu.grading.exercises.ex03_quality_tradeoff import EXERCISE, _study
from tests.helpers import assert_identical_rows, grade_batch, with_cell, with_copies

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex03_quality_tradeoff.ipynb"
STUDENT = ROOT / "exercises" / "ex03_quality_tradeoff.ipynb"
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")


def test_pooling_reference_agrees_with_the_course_conversion():
    from mqa_edu.convert import to_grouped
    from mqa_edu.model import ModelConfig, Transformer
    q = EXERCISE.question("q1")
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=1, d_model=48, n_heads=6, vocab_size=32)).double()
    for groups in (6, 3, 2, 1):  # identity, GQA, MQA
        new = to_grouped(model, groups, "mean")
        for name in ("k_proj", "v_proj"):
            w = getattr(model.layers[0].self_attn, name).weight.detach().numpy()
            expected = getattr(new.layers[0].self_attn, name).weight.detach().numpy()
            np.testing.assert_allclose(q.reference(w.tolist(), 6, groups), expected, rtol=1e-12, atol=1e-12)


def test_noise_reference_agrees_with_scipy_and_the_study_answer_with_notebook_09():
    from scipy import stats
    q = EXERCISE.question("q4a")
    for a, b in q.cases(random.Random(3), True):
        assert q.reference(a, b) == pytest.approx(stats.ttest_ind(b, a, equal_var=False).statistic, rel=1e-9)
    study, t = _study(), q.reference
    runs = {}
    for r in study["runs"]:
        runs.setdefault((r["task"], r["comparison"], r["n_kv_heads"]), []).append(r["val_loss"])
    q4b = EXERCISE.question("q4b").reference()
    assert q4b == pytest.approx(t(runs[("recall", "matched", 2)], runs[("recall", "matched", 1)]))
    assert abs(q4b) < 2  # the shipped study: MQA vs GQA-2 (matched) on recall lies inside the noise


def test_no_lecture_notebook_prints_the_study_question():
    """Notebook 09 compares each configuration with MHA; Q4b's comparison (GQA-2 vs MQA) appears nowhere."""
    q4b = EXERCISE.question("q4b").reference()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        source = nb.read_text()
        assert f"{q4b:.2f}" not in source and f"{q4b:.3f}" not in source, nb.name


def test_pareto_and_budget_references_by_brute_force():
    pareto, best = EXERCISE.question("q2"), EXERCISE.question("q3")
    for (configs,) in pareto.cases(random.Random(5), True):
        front = pareto.reference(configs)
        for i, (b, loss) in enumerate(configs):  # on the front <=> no configuration dominates it
            dominated = any(b2 <= b and l2 <= loss and (b2, l2) != (b, loss) for b2, l2 in configs)
            assert (i in front) != dominated
    for configs, budget in best.cases(random.Random(5), True):
        i = best.reference(configs, budget)
        fits = [c for c in configs if c[0] <= budget]
        assert (i == -1) == (not fits)
        if fits:
            assert configs[i][0] <= budget and configs[i][1] == min(c[1] for c in fits)


def test_steps_reference_interpolates():
    q = EXERCISE.question("q5")
    assert q.reference([[0, 3.0], [10, 2.0]], 2.0, 0.5) == pytest.approx(5.0)
    assert q.reference([[0, 1.0], [10, 0.5]], 1.0, 0.0) == 0.0
    assert q.reference([[0, 3.0], [10, 2.9]], 1.0, 0.1) == -1


def test_hidden_pooling_cases_cover_identity_mqa_and_odd_head_counts():
    pool = EXERCISE.question("q1").cases(random.Random(4), True)
    assert any(g == n for _, n, g in pool) and any(g == 1 for _, n, g in pool) and any(n % 2 for _, n, _ in pool)


def test_array_answers_are_judged_entry_by_entry(capsys):
    q = EXERCISE.question("q1")
    w = np.random.default_rng(0).normal(size=(12, 3))  # 4 heads of head_dim 3
    right = q.reference(w.tolist(), 4, 2)
    assert judging.judge(q, (w.tolist(), 4, 2), right.tolist())[0]
    assert judging.judge(q, (w.tolist(), 4, 2), torch.tensor(right))[0]
    assert not judging.judge(q, (w.tolist(), 4, 2), right + 1e-3)[0]
    ok, msg = judging.judge(q, (w.tolist(), 4, 2), right.reshape(-1))
    assert not ok and "shape (18,)" in msg and "(6, 3)" in msg
    ok, msg = judging.judge(q, (w.tolist(), 4, 2), w.reshape(4, 3, 3).mean(1))  # averaged over head_dim
    assert not ok and "shape (4, 3)" in msg and "wrong axis" in msg
    ok, msg = judging.judge(q, (w.tolist(), 4, 2), "array")
    assert not ok and "expected an array" in msg
    nan = right.copy()
    nan[0, 0] = np.nan
    assert "NaN" in judging.judge(q, (w.tolist(), 4, 2), nan)[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    sol = nbformat.read(SOLUTION, as_version=4)
    planted = with_cell(with_cell(with_cell(
        sol, "def mean_pool_kv(", "import numpy as np\ndef mean_pool_kv(w, n_kv_heads, groups):\n"
        "    w = np.asarray(w, dtype=float)\n    hd = w.shape[0] // n_kv_heads\n"
        "    return w.reshape(n_kv_heads // groups, groups, hd, -1).mean(0).reshape(groups * hd, -1)"),
        "def difference_in_standard_errors(", "import numpy as np\ndef difference_in_standard_errors(a, b):\n"
        "    return float((np.mean(b) - np.mean(a)) / np.sqrt(np.var(a) / len(a) + np.var(b) / len(b)))"),
        "def steps_to_within(", "def steps_to_within(curve, target, gap):\n"
        "    return next((float(s) for s, loss in curve if loss <= target + gap), -1)")
    course_code = with_cell(sol, "def mean_pool_kv(", "def mean_pool_kv(w, n_kv_heads, groups):\n"
                            "    from mqa_edu.convert import _pool_heads\n    import torch\n"
                            "    w = torch.tensor(w, dtype=torch.float64)\n"
                            "    return _pool_heads(w, groups, w.shape[0] // n_kv_heads).numpy()")
    q4a_raises = with_cell(sol, "def difference_in_standard_errors(",
                           "def difference_in_standard_errors(a, b):\n    raise ValueError('a bug')")
    notebooks = {"solution": sol, "planted": planted, "course_code": course_code, "q4a_raises": q4a_raises,
                 "blank": nbformat.read(STUDENT, as_version=4)}
    notebooks = with_copies(notebooks, "planted")  # five identical copies: five identical rows
    return grade_batch(tmp_path_factory.mktemp("ex03"), "ex03_quality_tradeoff", notebooks,
                       cell_timeout=20, call_timeout=5, timeout=90)


def test_grader_gives_the_solution_full_marks(graded):
    r = graded["solution"]
    assert r["total"] == AUTO, r
    assert r["free_text"]["ex03.q7"].startswith("Mean pooling alone")


def test_grader_names_planted_mistakes(graded):
    q = graded["planted"]["questions"]
    text = lambda qid: " ".join(q[qid]["messages"])  # noqa: E731
    assert q["ex03.q1"]["points"] < 20 and "interleaved" in text("ex03.q1")
    assert q["ex03.q4a"]["points"] == 0 and "ddof=1" in text("ex03.q4a")
    assert q["ex03.q5"]["points"] < 15 and "interpolate" in text("ex03.q5")
    # Q4b builds on the student's own (wrong) Q4a: the mistake is counted once, in Q4a
    assert q["ex03.q4b"]["points"] == 5 and "counted in ex03.q4a only" in text("ex03.q4b")
    assert q["ex03.q2"]["points"] == 15 and q["ex03.q3"]["points"] == 10 and q["ex03.q6"]["points"] == 10


def test_an_answer_that_calls_the_course_code_scores_zero(graded):
    r = graded["course_code"]
    assert r["questions"]["ex03.q1"]["points"] == 0
    assert r["total"] == AUTO - 20


def test_the_blank_exercise_scores_zero(graded):
    assert graded["blank"]["total"] == 0


def test_identical_copies_get_identical_rows(graded):
    assert_identical_rows(graded, "planted")


def test_a_raising_earlier_answer_costs_only_its_own_question(graded):
    """Q4b builds on Q4a: where Q4a raises, the reference's value stands in, and Q4b keeps its points."""
    r = graded["q4a_raises"]
    assert r["questions"]["ex03.q4b"]["points"] == 5, r["questions"]["ex03.q4b"]
    assert r["questions"]["ex03.q4a"]["points"] == 0 and r["total"] == AUTO - 15, r["questions"]
