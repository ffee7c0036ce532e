"""Exercise 4 (design case studies): the references agree with the course's sizing code, each design follows from
its stated rule, and the grader gives the solution full marks, hints for planted mistakes (fp16 only, GB for GiB,
the layer budget read per layer), counts a wrong decode formula once, and collects both justifications."""
from pathlib import Path

import nbformat
import pytest

from mqa_edu.grading.exercises import ex04_case_studies as ex04
from tests.helpers import assert_identical_rows, grade_batch, with_cell, with_copies

EXERCISE = ex04.EXERCISE
ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex04_case_studies.ipynb"
STUDENT = ROOT / "exercises" / "ex04_case_studies.ipynb"
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")


def test_references_agree_with_the_course_sizing():
    from dataclasses import replace

    from mqa_edu.sizing import REAL_MODELS, kv_cache_bytes
    llama = REAL_MODELS["Llama-3-8B"]
    for kv in (1, 8, 32):
        spec = replace(llama, n_kv_heads=kv)
        cache = kv_cache_bytes(spec, 4096, batch=3)
        step = ex04._step_ms(0, spec.n_layers, kv, spec.head_dim, 4096, 3, 2, 1000)
        assert step == pytest.approx(cache / 1e9, rel=1e-12)  # 1000 GB/s: bytes / 1e12 s = cache / 1e9 ms
    assert ex04._b_gib() == pytest.approx(2 * 16 * 8 * 64 * 60_000 * 2 / 2**30)


def test_each_design_follows_from_its_rule():
    assert ex04._design(ex04._a_meets) == (8, "fp8")  # fp16 reaches only 4 K/V heads under 8 ms
    assert not ex04._a_meets(8, 2) and ex04._a_meets(4, 2) and not ex04._a_meets(16, 1)
    assert ex04._a_step_of(8, "fp8") == pytest.approx(6.7433, abs=1e-3)
    assert ex04._b_option() == "b"
    assert ex04._design(ex04._c_meets) == (2, "fp8") and ex04._c_meets(1, 2)  # exactly the budget fits
    layers, costs = ex04._d_layers(), ex04._costs()
    assert sum(costs[i] for i in layers) <= 0.02
    rest = sorted(set(range(30)) - set(layers), key=costs.__getitem__)
    assert not rest or sum(costs[i] for i in layers) + costs[rest[0]] > 0.02  # no further layer fits
    assert ex04._d_saved(len(layers)) == len(layers) * 512


def test_no_lecture_notebook_prints_a_case_study_answer():
    a_step = f"{ex04._a_step_of(*ex04._design(ex04._a_meets)):.2f}"
    b_gib = f"{ex04._b_gib():.2f}"
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text()
        assert a_step not in text and b_gib not in text, nb.name


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    sol = nbformat.read(SOLUTION, as_version=4)
    planted = with_cell(with_cell(
        sol, "def b_cache_gib(", "def b_cache_gib():\n    return 2 * 16 * 8 * 64 * 60_000 * 2 / 1e9\n\n\n"
                                 "def b_option():\n    return 'b'"),
        "def d_layers(", "costs = json.loads((Path(mqa_edu.__file__).parent / 'results' / 'smollm2_mqa.json')"
                         ".read_text())['search']['alone']\n\n\n"
                         "def d_layers():\n    return sorted(i for i, c in enumerate(costs) if c <= 0.02)\n\n\n"
                         "def d_bytes_saved():\n    return len(d_layers()) * 2 * 2 * 64 * 2")
    fp16_only = with_cell(sol, "def a_meets(", sol.cells[[i for i, c in enumerate(sol.cells)
                                                          if "def a_meets(" in c.source][0]].source.replace(
        "for bpe in (2, 1) if a_meets", "for bpe in (2,) if a_meets"))
    no_weights = with_cell(sol, "def decode_step_ms(", "def decode_step_ms(w, n_layers, n_kv_heads, head_dim, "
                           "context, batch, bpe, bw):\n    return 2 * n_layers * n_kv_heads * head_dim * context * "
                           "batch * bpe / (bw * 1e9) * 1e3")
    course_code = with_cell(sol, "def b_cache_gib(", "def b_cache_gib():\n    from mqa_edu.sizing import "
                            "kv_cache_bytes\n    return 1.83\n\n\ndef b_option():\n    return 'b'")
    q1_raises = with_cell(sol, "def decode_step_ms(", "def decode_step_ms(*args):\n    raise ValueError('a bug')")
    notebooks = {"solution": sol, "planted": planted, "fp16_only": fp16_only, "no_weights": no_weights,
                 "course_code": course_code, "q1_raises": q1_raises, "blank": nbformat.read(STUDENT, as_version=4)}
    notebooks = with_copies(notebooks, "planted")  # five identical copies: five identical rows
    return grade_batch(tmp_path_factory.mktemp("ex04"), "ex04_case_studies", notebooks,
                       cell_timeout=20, call_timeout=5, timeout=90)


def messages(r, qid):
    return " ".join(r["questions"][qid]["messages"])


def test_grader_gives_the_solution_full_marks_and_collects_both_justifications(graded):
    r = graded["solution"]
    assert r["total"] == AUTO == 80, r
    assert r["free_text"]["ex04.q6"].startswith("A: at 131k") and r["free_text"]["ex04.q7"].startswith("B: the")


def test_grader_names_planted_mistakes(graded):
    r = graded["planted"]
    assert r["questions"]["ex04.q3a"]["points"] == 0 and "GiB" in messages(r, "ex04.q3a")
    assert r["questions"]["ex04.q5a"]["points"] == 0 and "total extra loss" in messages(r, "ex04.q5a")
    r = graded["fp16_only"]
    assert r["questions"]["ex04.q2a"]["points"] == 0 and "fp8 cache lets more" in messages(r, "ex04.q2a")


def test_a_wrong_decode_formula_is_counted_once(graded):
    """2a and 2c build on the student's decode_step_ms: without the weights every design looks faster, and 2a picks
    more K/V heads. Both are judged on top of the student's own Q1, so only Q1 loses points."""
    q = graded["no_weights"]["questions"]
    assert q["ex04.q1"]["points"] == 0
    for qid in ("ex04.q2a", "ex04.q2c"):
        assert q[qid]["points"] == q[qid]["max"] and "counted in ex04.q1 only" in messages(graded["no_weights"], qid)


def test_course_code_and_blank(graded):
    assert graded["course_code"]["questions"]["ex04.q3a"]["points"] == 0
    assert graded["blank"]["total"] == 0


def test_identical_copies_get_identical_rows(graded):
    assert_identical_rows(graded, "planted")


@pytest.mark.parametrize("name", ["q1_raises", "no_weights"])
def test_a_raising_or_wrong_decode_formula_costs_only_its_own_question(graded, name):
    """Q2a, Q2b and Q2c build on Q1 (declared in their cascades): with Q1 raising, the reference's values stand in
    where they call it; with Q1 wrong, they are judged on top of it. Either way only Q1's 15 points go."""
    r = graded[name]
    for qid in ("ex04.q2a", "ex04.q2b", "ex04.q2c"):
        assert r["questions"][qid]["points"] == r["questions"][qid]["max"], (qid, r["questions"][qid])
    assert r["questions"]["ex04.q1"]["points"] == 0 and r["total"] == AUTO - 15, r["questions"]
