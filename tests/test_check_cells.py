"""Check cells in the notebooks: exercise 1 generated from its solution, its references and hidden cases, and the
feedback a student sees (concept checks, true/false, rounding slips, nothing echoed under a check)."""
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mqa_edu.authoring.make_exercise import render, strip_solutions
from mqa_edu.checks import cell, judging
from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex01_cache_sizing.ipynb"
EXERCISE_NB = ROOT / "exercises" / "ex01_cache_sizing.ipynb"


def solution_nb():
    return nbformat.read(SOLUTION, as_version=4)


def test_exercise_is_generated_from_the_solution():
    assert EXERCISE_NB.read_text() == render(SOLUTION), "run: mqa-make-exercise solutions/ exercises/"
    ex = nbformat.read(EXERCISE_NB, as_version=4)
    assert ex.metadata["mqa_edu"]["exercise"] == "ex01_cache_sizing"
    assert "BEGIN SOLUTION" not in EXERCISE_NB.read_text()
    with pytest.raises(ValueError, match="never closed"):
        strip_solutions("x = 1\n# BEGIN SOLUTION: hint\ny = 2")
    assert strip_solutions("def f():\n    # BEGIN SOLUTION: think\n    return 1\n    # END SOLUTION") == \
        "def f():\n    raise NotImplementedError('think')"


def test_references_agree_with_the_package():
    from mqa_edu.sizing import REAL_MODELS, bytes_per_token
    q1 = EXERCISE.question("q1")
    for name in ("Llama-3-8B", "Gemma-7B", "Falcon-7B"):
        s = REAL_MODELS[name]
        assert q1.reference(s.n_layers, s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, 2) == bytes_per_token(s)
    assert EXERCISE.question("q3").reference() == 8192
    assert math.isclose(EXERCISE.question("q4").reference(), 3.5)
    assert EXERCISE.question("q6").reference() == 45
    assert (EXERCISE.question("q7a").reference(), EXERCISE.question("q7b").reference()) == (4, "fp8")
    assert EXERCISE.total == 100


def test_hidden_cases_are_fresh_and_distinguish_mistakes():
    import random
    for q in EXERCISE.questions:
        if q.kind != "function":
            continue
        a, b = q.cases(random.Random(1), True), q.cases(random.Random(2), True)
        assert a != b
        for m in q.mistakes:  # every known mistake is caught by the hidden cases
            assert any(not judging.matches(m.fn(*c), q.reference(*c), q.rel_tol) for c in a), m.name


def test_checks_import_without_torch():
    code = "import sys, mqa_edu.checks as c; c.check('nb03.flops', 'c'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().endswith("False")


def test_check_feedback_in_the_notebook(capsys):
    assert cell.check("nb03.mapping", 3).passed is False
    assert "tile (Tensor.repeat) order" in capsys.readouterr().out
    assert cell.check("nb03.mapping", None).passed is None
    assert "not answered" in capsys.readouterr().out

    def kv_bytes_per_token(n_layers, d_model, n_heads, n_kv_heads, head_dim, b):
        return 2 * n_layers * n_kv_heads * head_dim * b

    assert cell.check("ex01.q1", kv_bytes_per_token).passed is True
    out = capsys.readouterr().out
    assert "public checks passed" in out and "Hidden tests" in out and "all tests passed" not in out.lower()


def test_check_cells_do_nothing_while_grading(monkeypatch, capsys):
    monkeypatch.setenv(cell.GRADING_ENV, "1")
    assert cell.check("nb03.mapping", 3).passed is None
    assert capsys.readouterr().out == ""


def test_concept_checks_accept_their_answers_and_hint_the_traps(capsys):
    from mqa_edu.checks.concepts import EXERCISES
    for ex in EXERCISES.values():
        for q in ex.questions:
            assert cell.check(q.qid, q.reference()).passed is True, q.qid
            for m in q.mistakes:
                assert cell.check(q.qid, m.fn()).passed is False
                assert m.hint in capsys.readouterr().out


def test_every_check_cell_in_the_notebooks_names_a_real_question():
    import re
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        ids = [m for c in nb.cells if c.cell_type == "code" for m in re.findall(r'check[(]"(nb[0-9]+[.][a-z_0-9]+)"',
                                                                                c.source)]
        if path.stem.startswith("00"):
            continue
        assert len(ids) >= 2, path.name
        for qid in ids:
            cell.find_question(qid)


def test_true_false_questions_accept_python_bools(capsys):
    assert cell.check("nb03.head_dim", False).passed is True
    assert cell.check("nb03.head_dim", True).passed is False
    assert "Gemma-7B" in capsys.readouterr().out


def test_a_rounding_slip_is_not_diagnosed_as_a_missing_max(capsys):
    assert cell.check("nb01.softmax", 0.67).passed is False
    out = capsys.readouterr().out
    assert "close" in out and "rounding" in out and "maximum" not in out
    assert cell.check("nb01.softmax", 0.665).passed is True


def test_check_cells_echo_nothing_under_their_feedback():
    """check() returns a Verdict that IPython does not print (it used to echo True / None under the feedback)."""
    verdict = cell.check("nb03.mapping", 2)
    assert bool(verdict) and verdict.passed is True
    assert hasattr(verdict, "_ipython_display_") and verdict._ipython_display_() is None
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'from mqa_edu.checks import check\ncheck("nb03.mapping", 2)')])
    from nbclient import NotebookClient
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    kinds = [o["output_type"] for o in nb.cells[0].outputs]
    assert kinds == ["stream"], kinds


def test_model_answer_of_the_design_question_has_the_right_arithmetic():
    """Q7c's model answer once said 4 GiB per KV head in fp16; with the scenario's numbers it is 8 (fp8: 4)."""
    import re

    from mqa_edu.grading.exercises.ex01_cache_sizing import DESIGN, GiB
    d = DESIGN
    per_head_fp16 = 2 * d["n_layers"] * d["head_dim"] * d["context"] * d["sequences"] * 2
    text = next(c.source for c in solution_nb().cells if "def design_justification" in c.source)
    fp16, fp8 = map(int, re.search(r"(\d+) GiB in fp16 \((\d+) GiB in fp8\)", text).groups())
    assert (fp16, fp8) == (per_head_fp16 // GiB, per_head_fp16 // 2 // GiB) == (8, 4)
