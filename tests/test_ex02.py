"""Exercise 2 (head redundancy): the references agree with the course's measures, hidden cases are fresh and catch
every known mistake (unmasked softmax, bits, KL, uncentred CKA...), a proposed grouping is judged by the loss of the
converted model, and the grader gives the solution full marks, hints for planted mistakes, and 0 to an answer that
calls the course's code."""
import json
import random
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from mqa_edu.checks import cell, judging
from mqa_edu.grading.exercises import ex02_head_redundancy as ex02
from tests.helpers import assert_identical_rows, grade_batch, with_cell, with_copies

EXERCISE = ex02.EXERCISE
ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex02_head_redundancy.ipynb"
STUDENT = ROOT / "exercises" / "ex02_head_redundancy.ipynb"
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")


def test_measures_agree_with_the_course():
    from mqa_edu.redundancy import js_divergence, linear_cka
    js, cka = EXERCISE.question("q1"), EXERCISE.question("q2")
    for a, b, mask in js.cases(random.Random(7), True):
        p, q = (torch.tensor(ex02._softmax(s, np.asarray(mask))) for s in (a, b))
        assert js.reference(a, b, mask) == pytest.approx(js_divergence(p, q), rel=1e-9, abs=1e-12)
    for x, y in cka.cases(random.Random(7), True):
        x64, y64 = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
        assert cka.reference(x, y) == pytest.approx(linear_cka(x64, y64), rel=1e-9)


def test_hidden_cases_cover_the_traps():
    js_cases = EXERCISE.question("q1").cases(random.Random(1), True)
    weights = [ex02._softmax(a, np.asarray(mask)) for a, _, mask in js_cases]
    assert any(((w == 0) & np.asarray(mask)).any() for w, (_, _, mask) in zip(weights, js_cases))  # 0 log 0
    assert any(not np.asarray(mask)[0, 1:].any() for _, _, mask in js_cases)  # causal
    assert any(np.asarray(mask)[-1, :-1].sum() < len(mask[0]) - 1 for _, _, mask in js_cases)  # padding holes
    cka = EXERCISE.question("q2")
    assert any(cka.reference(x, y) == pytest.approx(1.0) for x, y in cka.cases(random.Random(1), True))


def test_model_answers_agree_with_the_course_measures():
    from mqa_edu.exercise_data import eval_batches, shipped_model, tokens
    from mqa_edu.redundancy import ablation_importance, head_internals, head_similarity
    maps = ex02._maps()
    with torch.no_grad():
        js = head_similarity(head_internals(shipped_model(), tokens()), "weights", "js")[ex02.LAYER]
    js.fill_diagonal_(float("inf"))
    i, j = divmod(int(js.argmin()), js.shape[0])
    assert ex02._pair() == f"{min(i, j)},{max(i, j)}"
    importance = ablation_importance(shipped_model(), eval_batches()).numpy()
    np.testing.assert_allclose(maps["importance"], importance, atol=1e-9)
    assert sorted(ex02._ranking()) == list(range(8)) and ex02._ranking() != ex02._ranking(descending=False)


def test_a_grouping_is_ranked_among_all_pairings_of_the_heads():
    """Q5 is scored by the rank of its loss among all 105 ways to pair the heads (exhaustive, no random sample): the
    contiguous example the check prints earns 10 of 20, the solution's similarity grouping 20."""
    from mqa_edu.convert import equal_groupings
    q = EXERCISE.question("q5")
    assert len(equal_groupings(8, 4)) == 105 and len(set(equal_groupings(8, 4))) == 105
    assert len(equal_groupings(8, 2)) == 35  # the count for 2 groups
    contiguous = [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert ex02._converted_loss(((0, 1), (2, 3), (4, 5), (6, 7))) == pytest.approx(
        ex02._converted_loss(((1, 0), (3, 2), (5, 4), (7, 6))))  # order within and between groups does not matter
    cases = q.cases(None, False)
    assert cases == [("form",), ("top", 0.5), ("top", 0.25), ("top", 0.1)]
    passed = [judging.judge(q, c, contiguous)[0] for c in cases]
    assert passed == [True, True, False, False]  # 10 of 20 for the printed example
    best = [list(g) for g in min(equal_groupings(8, 4), key=ex02._converted_loss)]
    assert all(judging.judge(q, c, best)[0] for c in cases)
    ok, msg = judging.judge(q, ("top", 0.1), contiguous)
    assert not ok and "of the 105 ways to pair the heads do better" in msg
    for bad, words in (([[0, 1], [2, 3], [4, 5]], "exactly 4 groups"), ([[0, 1, 2, 3], [4, 5, 6, 7]], "exactly 4"),
                       ([[0, 0], [2, 3], [4, 5], [6, 7]], "exactly once"), ("0,1 2,3", "list of 4 lists"),
                       ([[0, 1], [2, 3], [4, 5], [6, 8]], "exactly once")):
        ok, msg = judging.judge(q, ("form",), bad)
        assert not ok and words in msg, (bad, msg)


def test_the_check_cell_tells_the_student_their_loss(capsys):
    from mqa_edu.exercise_data import converted_loss
    cell.check("ex02.q5", [[0, 1], [2, 3], [4, 5], [6, 7]])
    out = capsys.readouterr().out
    assert f"your loss after conversion: {converted_loss(((0, 1), (2, 3), (4, 5), (6, 7))):.4f}" in out
    assert "ranked at grading among all 105" in out and "correct" not in out


def test_public_form_stores_the_model_answers_as_digests():
    public = json.loads((ROOT / "mqa_edu" / "checks" / "public" / "ex02_head_redundancy.json").read_text())
    import re
    for q in public["questions"]:
        if q["kind"] in ("choice", "value"):  # fixed model answers: no digest at all, the form only
            assert all("expected" not in c for c in q["cases"])
            assert all("form" in c or "partition" in c for c in q["cases"])
    assert re.search(r'"expected": "[0-9a-f]{32}"', json.dumps(public))  # the functions' public cases keep theirs
    text = json.dumps(public)
    assert str(ex02._ranking()) not in text and str(ex02._ranking()).replace(" ", "") not in text


def bad_grouping():
    """A well-formed grouping outside the top half of all 105 pairings."""
    from mqa_edu.convert import equal_groupings
    return [list(g) for g in max(equal_groupings(8, 4), key=ex02._converted_loss)]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    sol = nbformat.read(SOLUTION, as_version=4)
    planted = with_cell(with_cell(with_cell(
        sol, "def js_divergence(", "import numpy as np\ndef js_divergence(a, b, mask):\n"
        "    def sm(s):\n        s = np.asarray(s, float)\n        e = np.exp(s - s.max(-1, keepdims=True))\n"
        "        return e / e.sum(-1, keepdims=True)\n    p, q = sm(a), sm(b)\n    m = (p + q) / 2\n"
        "    kl = lambda x: np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / m), 0), -1)\n"
        "    return float(np.mean(kl(p) / 2 + kl(q) / 2))"),
        "def importance_ranking(", "def importance_ranking():\n    return [int(h) for h in np.argsort(importance[0])]"),
        "def kv_groups(", f"def kv_groups():\n    return {bad_grouping()}")
    course_code = with_cell(sol, "def linear_cka(", "def linear_cka(x, y):\n    import torch\n"
                            "    from mqa_edu.redundancy import linear_cka as cka\n"
                            "    f64 = torch.float64\n"
                            "    return cka(torch.tensor(x, dtype=f64), torch.tensor(y, dtype=f64))")
    # the routes the grader's old call tracer missed: a thread, a patched PACKAGE_DIR (issue 19)
    course_code_thread = with_cell(
        sol, "def linear_cka(", "import threading, torch\nimport mqa_edu.checks.calling as c\n"
        "c.PACKAGE_DIR = c.PACKAGE_DIR / 'elsewhere'\nfound = {}\n"
        "def grab():\n    try:\n        from mqa_edu.redundancy import linear_cka as cka\n"
        "        found['cka'] = cka\n    except Exception as e:\n        found['error'] = e\n"
        "t = threading.Thread(target=grab)\nt.start()\nt.join()\n"
        "def linear_cka(x, y):\n    return found['cka'](torch.tensor(x, dtype=torch.float64), "
        "torch.tensor(y, dtype=torch.float64))")
    q1_raises = with_cell(sol, "def js_divergence(", "def js_divergence(a, b, mask):\n    raise ValueError('a bug')")
    notebooks = {"solution": sol, "planted": planted, "course_code": course_code,
                 "course_code_thread": course_code_thread, "q1_raises": q1_raises,
                 "blank": nbformat.read(STUDENT, as_version=4)}
    notebooks = with_copies(notebooks, "planted")  # five identical copies: five identical rows
    return grade_batch(tmp_path_factory.mktemp("ex02"), "ex02_head_redundancy", notebooks,
                       cell_timeout=120, call_timeout=20, timeout=300)


def test_grader_gives_the_solution_full_marks(graded):
    r = graded["solution"]
    assert r["total"] == AUTO, r
    assert r["questions"]["ex02.q5"]["points"] == 20, r["questions"]["ex02.q5"]
    assert r["free_text"]["ex02.q6"].startswith("The map only says")


def test_grader_names_planted_mistakes(graded):
    q = graded["planted"]["questions"]
    text = lambda qid: " ".join(q[qid]["messages"])  # noqa: E731
    assert q["ex02.q1"]["points"] < 20 and "BEFORE normalising" in text("ex02.q1")
    assert q["ex02.q4"]["points"] == 0 and "most important first" in text("ex02.q4")
    assert q["ex02.q5"]["points"] == 5 and "ways to pair the heads do better" in text("ex02.q5")  # well formed only
    assert q["ex02.q2"]["points"] == 20 and q["ex02.q7"]["points"] == 10
    # Q3 calls the planted (wrong) js_divergence: judged on top of it, so Q1's mistake is counted once
    assert q["ex02.q3"]["points"] == 10, q["ex02.q3"]


@pytest.mark.parametrize("name", ["course_code", "course_code_thread"])
def test_an_answer_that_calls_the_course_code_scores_zero(graded, name):
    """The measures are not in ex02's kernels at all (mqa_edu.redundancy is hidden), however they are reached."""
    r = graded[name]
    assert r["questions"]["ex02.q2"]["points"] == 0
    if name == "course_code":
        assert "not available while grading" in " ".join(r["questions"]["ex02.q2"]["messages"])
    # Q5 of the solution calls linear_cka, which now calls the course: it scores 0 too
    assert r["total"] == AUTO - 20 - 20


def test_the_blank_exercise_scores_zero(graded):
    assert graded["blank"]["total"] == 0


def test_identical_copies_get_identical_rows(graded):
    assert_identical_rows(graded, "planted")


def test_a_raising_js_divergence_costs_only_its_own_question(graded):
    """Q3 calls the student's js_divergence on the 28 pairs of layer 0: where it raises, the reference's values
    stand in at exactly those maps, so Q3 is judged on its own step (the smallest pair)."""
    r = graded["q1_raises"]
    assert r["questions"]["ex02.q3"]["points"] == 10, r["questions"]["ex02.q3"]
    assert r["questions"]["ex02.q1"]["points"] == 0 and r["total"] == AUTO - 20, r["questions"]
