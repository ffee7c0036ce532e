"""The autograder end to end: a folder of crafted submissions graded with --jobs 2 in one run."""
import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mqa_edu.checks import cell, judging
from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE
from mqa_edu.grading.cli import main as grade_main
from mqa_edu.authoring.make_exercise import render, strip_solutions
from mqa_edu.grading.sandbox import INSTALL_HINT, sandbox_problem
from tests.conftest import assert_identical_rows, with_cell, with_copies

# points graded automatically: everything but the free-text answers, which the instructor marks (mqa-grade-marks)
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")
SANDBOX_PROBLEM = sandbox_problem()
# Without bubblewrap the scoring tests still run, with isolation off; the attack tests need the sandbox and skip.
NO_SANDBOX = ["--no-sandbox"] if SANDBOX_PROBLEM else []
needs_sandbox = pytest.mark.skipif(SANDBOX_PROBLEM is not None, reason=f"{SANDBOX_PROBLEM}: {INSTALL_HINT}")

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex01_cache_sizing.ipynb"
EXERCISE_NB = ROOT / "exercises" / "ex01_cache_sizing.ipynb"


def solution_nb():
    return nbformat.read(SOLUTION, as_version=4)


def add_cell(nb, source, at=1):
    nb = copy.deepcopy(nb)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def build_submissions(folder: Path):
    sol = solution_nb()
    subs = {
        "solution": sol,
        "renamed_solution": sol,
        "planted": with_cell(with_cell(with_cell(
            sol, "def max_batch(", "def max_batch(n_layers, n_kv_heads, head_dim, seq_len, bpe, budget, weights):\n"
            "    return int(budget // (2 * n_layers * n_kv_heads * head_dim * seq_len * bpe))"),
            "def gemma_7b_cache_gib(", "gemma_7b_config = {}\ndef gemma_7b_cache_gib():\n"
            "    return 2 * 28 * 16 * 256 * 8192 * 2 / 1e9"),
            "def extra_sequences_gqa(", "def extra_sequences_gqa():\n    free = 80e9 - 16_060_000_000\n"
            "    return (free // (2 * 32 * 8 * 128 * 8192 * 2)) / (free // (2 * 32 * 32 * 128 * 8192 * 2))"),
        "n_heads_mistake": with_cell(sol, "def kv_bytes_per_token(",
                                     "def kv_bytes_per_token(n_layers, d_model, n_heads, n_kv_heads, head_dim, bpe):\n"
                                     "    return 2 * n_layers * n_heads * head_dim * bpe"),
        "syntax_error": with_cell(sol, "def concept_choice(", "def concept_choice(:\n    return 'b'"),
        "exception": with_cell(sol, "def concept_choice(", "def concept_choice():\n    return 1 / 0"),
        "loop_in_cell": add_cell(sol, "while True:\n    pass", at=3),
        "loop_in_function": with_cell(sol, "def concept_choice(", "def concept_choice():\n    while True:\n"
                                                                 "        pass"),
        "stubborn_loop": add_cell(sol, "while True:\n    try:\n        while True:\n            pass\n"
                                       "    except BaseException:\n        pass", at=3),
        "memory_hog": add_cell(sol, "hog = bytearray(64 * 2**30)", at=3),
        "giant_output": add_cell(sol, "print('x' * 20_000_000)", at=3),
        "misnamed": with_cell(sol, "def max_batch(", "def max_batches(n_layers, n_kv_heads, head_dim, seq_len, bpe, "
                                                    "budget, weights):\n    return 0"),
        "wrong_type": with_cell(sol, "def falcon_7b_bytes_per_token(",
                                "def falcon_7b_bytes_per_token():\n    return '8192 bytes'"),
        "nan": with_cell(sol, "def gemma_7b_cache_gib(", "def gemma_7b_cache_gib():\n    return float('nan')"),
        # tampering: a blank exercise that tries to raise its own score
        "tamper_patch": add_cell(nbformat.read(EXERCISE_NB, as_version=4),
                                 "import numpy, math\nimport mqa_edu.checks.judging as c, mqa_edu.checks.calling as k\n"
                                 "numpy.isclose = lambda *a, **k: True\nmath.isclose = lambda *a, **k: True\n"
                                 "c.judge = lambda *a, **k: (True, 'ok')\nc.matches = lambda *a, **k: True\n"
                                 "k.call_answer = lambda q, a, case, seconds=10: (8192, None, set())"),
        "tamper_reference": with_cell(sol, "def kv_bytes_per_token(",
                                      "def kv_bytes_per_token(n_layers, d_model, n_heads, n_kv_heads, head_dim, b):\n"
                                      "    from mqa_edu.sizing import ModelSpec, bytes_per_token\n"
                                      "    return bytes_per_token(ModelSpec('m', n_layers, d_model, n_heads, "
                                      "n_kv_heads, head_dim), b)"),
        "tamper_solution_file": with_cell(sol, "def concept_choice(",
                                          "def concept_choice():\n    import json\n"
                                          f"    json.load(open({str(SOLUTION)!r}))\n    return 'b'"),
        "tamper_profiler": with_cell(sol, "def concept_choice(",
                                     "def concept_choice():\n    import sys\n    sys.setprofile(None)\n"
                                     "    return 'b'"),
    }
    other = copy.deepcopy(sol)
    other.metadata["mqa_edu"] = {"exercise": "ex02_head_redundancy"}
    subs["other_exercise"] = other
    for qid, name, wrong in (("q1", "def kv_bytes_per_token(", "return 2 * n_layers * n_kv_heads * head_dim"),
                             ("q2", "def kv_cache_bytes(", "return kv_bytes_per_token(n_layers, d_model, n_heads, "
                              "n_kv_heads, head_dim, bytes_per_element) * seq_len * batch // 2"),
                             ("q5", "def max_batch(", "import math\n    return max(0, math.ceil((budget_bytes - "
                              "weights_bytes) / (2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_element)))")):
        cell = next(c.source for c in sol.cells if name in c.source)
        head = cell.split(":\n")[0] + ":\n"  # the def line(s), as the solution writes them
        subs[f"{qid}_raises"] = with_cell(sol, name, head + "    raise ValueError('a bug')")
        subs[f"{qid}_wrong"] = with_cell(sol, name, head + "    " + wrong)
    subs = with_copies(subs, "n_heads_mistake")  # five identical copies of a partly wrong submission
    for name, nb in subs.items():
        path = folder / ("my_homework.ipynb" if name == "renamed_solution" else f"{name}.ipynb")
        if name == "renamed_solution":
            path = folder / "renamed_solution" / "my_homework.ipynb"
            path.parent.mkdir()
        nbformat.write(nb, path)
    text = SOLUTION.read_text()
    (folder / "truncated.ipynb").write_text(text[: len(text) // 2])
    (folder / "not_a_notebook.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    nbformat.write(nbformat.v4.new_notebook(), folder / "empty.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    build_submissions(subs)
    argv = [str(subs), "--out", str(out), "--jobs", "2", "--cell-timeout", "5", "--call-timeout", "2",
            "--timeout", "40", "--memory-mb", "3072", "--output-limit-kb", "512", "--no-progress", *NO_SANDBOX]
    assert grade_main(argv) == 0
    results = {p.stem: json.loads(p.read_text()) for p in (out / "students").glob("*.json")}
    return subs, out, argv, results


def messages(r):
    return " ".join(r["messages"] + [m for q in r["questions"].values() for m in q["messages"]])


def test_every_submission_has_a_row(graded):
    subs, out, _, results = graded
    n_files = len(list(subs.rglob("*.ipynb")))
    assert n_files >= 20 and len(results) == n_files
    rows = (out / "grades.csv").read_text().strip().splitlines()
    assert len(rows) == n_files + 1
    for r in results.values():
        assert isinstance(r["total"], int) and 0 <= r["total"] <= 100


def test_solution_full_marks_renamed_too(graded):
    _, out, _, results = graded
    assert AUTO == 95
    assert results["solution"]["total"] == AUTO
    assert results["renamed_solution__my_homework"]["total"] == AUTO
    assert results["solution"]["free_text"]["ex01.q7c"].startswith("At 32k tokens")
    gs = json.loads((out / "gradescope" / "solution" / "results.json").read_text())
    assert gs["score"] == AUTO and sum(t["max_score"] for t in gs["tests"]) == 100


def test_planted_mistakes_score_partially_with_hints(graded):
    r = graded[3]["planted"]
    q = r["questions"]
    # partial credit: a wrong max_batch can still be right on a hidden case whose weights are tiny next to a sequence
    assert q["ex01.q5"]["points"] <= 15 * 2 // 12 and q["ex01.q4"]["points"] == q["ex01.q6"]["points"] == 0
    assert r["total"] == AUTO - 15 - 10 - 10 + q["ex01.q5"]["points"]
    assert "weights take their share" in " ".join(q["ex01.q5"]["messages"])
    assert "GB (1e9 bytes)" in " ".join(q["ex01.q4"]["messages"])
    assert "ratio" in " ".join(q["ex01.q6"]["messages"])
    r = graded[3]["n_heads_mistake"]
    q1 = r["questions"]["ex01.q1"]
    assert q1["points"] < 15 // 2  # right only on the hidden cases where n_kv_heads == n_heads
    assert "only the n_kv_heads KV heads are cached" in " ".join(q1["messages"])


def test_one_mistake_is_counted_once(graded):
    """Q2 and Q3 call the student's Q1. A wrong Q1 does not zero them, and Q3 is not told that Falcon has one KV
    head (it used one): each is judged against what it gives on top of the student's own Q1."""
    q = graded[3]["n_heads_mistake"]["questions"]
    for qid in ("ex01.q2", "ex01.q3"):
        assert q[qid]["points"] == q[qid]["max"], q[qid]
        assert "counted in ex01.q1 only" in " ".join(q[qid]["messages"])
    assert "ONE KV head" not in " ".join(q["ex01.q3"]["messages"])


@pytest.mark.parametrize("name, lost, words", [
    ("syntax_error", 5, "SyntaxError"),
    ("exception", 5, "ZeroDivisionError"),
    ("loop_in_cell", 0, ""),
    ("loop_in_function", 5, "TimeoutError"),
    ("memory_hog", 0, "MemoryError"),
    ("giant_output", 0, "output past"),
    # Q6 calls max_batch: the reference's values stand in where it is missing, so only Q5's 15 points go
    ("misnamed", 15, "rename it to 'max_batch'"),
    ("wrong_type", 10, "returned str"),
    ("nan", 10, "returned NaN"),
])
def test_bad_code_costs_only_its_question(graded, name, lost, words):
    r = graded[3][name]
    assert r["total"] == AUTO - lost, messages(r)
    assert words in messages(r)


@pytest.mark.parametrize("name, status, words", [
    ("truncated", "invalid_notebook", "not valid notebook JSON"),
    ("not_a_notebook", "invalid_notebook", "not a notebook"),
    ("empty", "empty", "no code"),
    ("other_exercise", "wrong_exercise", "ex02_head_redundancy"),
    ("stubborn_loop", "timeout", "40 s limit"),
])
def test_unusable_files_get_a_clear_status(graded, name, status, words):
    r = graded[3][name]
    assert r["status"] == status and r["total"] == 0
    assert words in messages(r)


def test_unsolved_exercise_scores_zero(graded, tmp_path):
    out = tmp_path / "g"
    assert grade_main([str(EXERCISE_NB), "--out", str(out), "--no-progress", *NO_SANDBOX]) == 0
    r = json.loads(next((out / "students").glob("*.json")).read_text())
    assert r["status"] == "ok" and r["total"] == 0
    assert "not answered" in messages(r)


def test_tampering_scores_no_more_than_honest_work(graded):
    res = graded[3]
    assert res["tamper_patch"]["total"] == 0  # a blank exercise: honest work is 0
    r = res["tamper_reference"]
    assert r["questions"]["ex01.q1"]["points"] == 0 and "not available while grading" in messages(r)
    assert res["tamper_solution_file"]["questions"]["ex01.q8"]["points"] == 0
    # the grader no longer watches calls from inside the kernel (a kernel's report about itself is not evidence):
    # removing the profiler changes nothing, and the right choice earns what the honest solution earns
    assert res["tamper_profiler"]["questions"]["ex01.q8"]["points"] == res["solution"]["questions"]["ex01.q8"]["points"]


def test_rerun_skips_and_force_is_deterministic(graded, capsys):
    subs, out, argv, results = graded
    assert grade_main(argv) == 0
    assert "0 to grade" in capsys.readouterr().out
    one = subs / "wrong_type.ipynb"  # right or wrong on every input: the same score for any draw
    assert grade_main([str(one), "--out", str(out / "again"), "--force", "--no-progress", *NO_SANDBOX]) == 0
    again = json.loads((out / "again" / "students" / "wrong_type.json").read_text())
    assert again["total"] == results["wrong_type"]["total"] == AUTO - 10
    assert again["seed"] != results["wrong_type"]["seed"]  # a new folder: fresh hidden inputs, same score


def test_one_batch_meets_one_set_of_hidden_cases(graded):
    """Every row of a batch has the manifest's seed; a re-run into the same folder keeps it (a term's seed)."""
    subs, out, argv, results = graded
    manifest = json.loads((out / "manifest.json").read_text())
    assert {r["seed"] for r in results.values()} == {manifest["seed"]}
    assert manifest["exercise"] == "ex01_cache_sizing" and len(manifest["submissions"]) == len(results)
    from mqa_edu.grading.cases import batch_seed
    assert batch_seed(out, EXERCISE, None) == manifest["seed"] and batch_seed(out, EXERCISE, 5) == 5


def test_interrupted_grader_keeps_what_it_graded(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(4):
        nbformat.write(solution_nb(), subs / f"s{i}.ipynb")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mqa_edu.grading.cli", str(subs), "--out", str(out), "--no-progress", *NO_SANDBOX]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "students").glob("*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    kept = list((out / "students").glob("*.json"))
    assert kept, "nothing was kept"
    assert len((out / "grades.csv").read_text().strip().splitlines()) == len(kept) + 1
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert f"{len(kept)} already graded" in done.stdout
    assert len((out / "grades.csv").read_text().strip().splitlines()) == 5


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


# ---------------------------------------------------------------- the public form that check cells use
def test_public_form_is_in_sync_with_the_private_definition():
    from mqa_edu.authoring.make_exercise import sync_public
    assert sync_public(check=True) == [], "run: mqa-make-exercise solutions/ exercises/"


def test_public_form_holds_no_answer():
    import re
    from mqa_edu.checks.public import PUBLIC_DIR
    text = (PUBLIC_DIR / "ex01_cache_sizing.json").read_text()
    data = json.loads(text)
    for q in data["questions"]:
        for c in q["cases"]:
            if "form" in c:  # a fixed answer: its form only, no digest, no mistakes
                assert set(c) == {"args", "text", "form", "n"} and q["mistakes"] == [], q["qid"]
                continue
            assert re.fullmatch(r"[0-9a-f]{32}", c["expected"])
            assert all(re.fullmatch(r"[0-9a-f]{32}", d) for d in c["mistakes"].values())
    assert "def " not in text and "lambda" not in text and "_bpt" not in text
    for q in EXERCISE.questions:  # no value question's answer is written out (a choice's options are public)
        if q.kind == "value":
            answer = q.reference()
            assert f'"{answer}"' not in text and f": {answer}," not in text and f": {answer}\n" not in text, q.qid


def test_public_checks_judge_like_the_private_ones(capsys):
    """Every reference passes its public check, and every known mistake that a public case can show is named.
    (Answers are tabulated first: a check flags any answer that runs the course's own code.)"""
    from mqa_edu.checks.public import load_public
    public = load_public("ex01_cache_sizing")

    def as_answer(q, fn, cases):
        if q.kind != "function":
            return fn()
        table = {c: fn(*c) for c in cases}
        return lambda *args: table[args]

    for q in EXERCISE.questions:
        if q.kind == "text":
            continue
        cases = public.question(q.qid).cases(None, False)
        if q.fixed:  # recorded, graded later: the check neither confirms it nor names a mistake
            assert cell.check(q.qid, as_answer(q, q.reference, cases)).passed is None, q.qid
            assert "graded later" in capsys.readouterr().out
            continue
        assert cell.check(q.qid, as_answer(q, q.reference, cases)).passed is True, q.qid
        for m in q.mistakes:
            shows = any(not judging.matches(m.fn(*c), q.reference(*c), q.rel_tol) for c in cases)
            verdict = cell.check(q.qid, as_answer(q, m.fn, cases))
            out = capsys.readouterr().out
            if shows:
                assert verdict.passed is False and m.hint in out, (q.qid, m.name)


def test_public_float_check_keeps_the_tolerance():
    from mqa_edu.grading.exercises.ex04_case_studies import EXERCISE as EX04
    q = EX04.question("q1")  # a function with a float answer, rel_tol 1e-6, judged by digests of its public cases

    table = {c: q.reference(*c) for c in q.cases(None, False)}  # tabulated: the check flags calls into mqa_edu

    def answer(factor):
        return lambda *case: table[case] * factor

    assert cell.check("ex04.q1", answer(1)).passed is True
    assert cell.check("ex04.q1", answer(1 + 4e-7)).passed is True
    assert cell.check("ex04.q1", answer(1 + 3e-6)).passed is False
    assert cell.check("ex04.q1", lambda *case: float("nan")).passed is False


def test_a_fixed_answer_is_recorded_not_confirmed(capsys):
    """The issue's student: trying answers in a check cell learns nothing about a fixed answer (Falcon-7B's bytes
    per token, a choice); a wrong form is refused with what the question asks for."""
    right = EXERCISE.question("q3").reference()
    for guess in (right, right * 71, 12345):
        assert cell.check("ex01.q3", guess).passed is None
    outs = capsys.readouterr().out.split("ex01.q3 ·")[1:]
    assert len({o.replace(str(g), "N") for o, g in zip(outs, (right, right * 71, 12345))}) == 1, outs
    for choice in "abcd":
        assert cell.check("ex01.q8", choice).passed is None
    out = capsys.readouterr().out
    assert "correct" not in out and out.count("recorded, graded later") == 4
    assert cell.check("ex01.q8", "e").passed is False and "one of ['a', 'b', 'c', 'd']" in capsys.readouterr().out
    assert cell.check("ex01.q3", "8192 bytes").passed is False


# ---------------------------------------------------------------- the student release
@pytest.fixture(scope="module")
def student_release(tmp_path_factory):
    from mqa_edu.authoring.release import release
    out = tmp_path_factory.mktemp("release") / "course"
    release(out)
    return out


def test_student_release_has_nothing_private(student_release):
    from mqa_edu.authoring.release import PRIVATE, leaks, solution_lines
    out = student_release
    for p in PRIVATE:
        assert not (out / p).exists(), p
    assert (out / "exercises" / "ex01_cache_sizing.ipynb").is_file()
    assert (out / "mqa_edu" / "checks" / "public" / "ex01_cache_sizing.json").is_file()
    assert leaks(out, solution_lines(), set()) == []
    # the check itself finds a planted leak: one line of a solution region copied into a notebook
    line = sorted(solution_lines())[0]
    planted = out / "notebooks" / "leaky.py"
    planted.write_text(f"x = 1\n{line}\n")
    try:
        assert any("solution code" in f for f in leaks(out, solution_lines(), set()))
    finally:
        planted.unlink()


def test_student_release_passes_its_own_tests_and_checks_work(student_release):
    out = student_release
    env = {**os.environ, "PYTHONPATH": str(out)}
    code = ("import mqa_edu, mqa_edu.checks.cell as c; assert mqa_edu.__file__.startswith(%r); "
            "right = lambda nl, d, h, kv, hd, b: 2 * nl * kv * hd * b\n"
            "wrong = lambda nl, d, h, kv, hd, b: 2 * nl * h * hd * b\n"
            "print(c.check('ex01.q1', right).passed, c.check('ex01.q1', wrong).passed)" % str(out))
    code = code.replace("; right", "\nright")
    res = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("True False")
    assert "only the n_kv_heads KV heads are cached" in res.stdout  # the known-mistake hint, from the public form
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_heads.py",
                          "tests/test_sizing.py", "tests/test_notebooks.py", "-k", "heads or sizing or exercises"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:]
    res = subprocess.run([sys.executable, "-m", "mqa_edu.grading.cli", "exercises", "--out", "g", "--no-progress"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "grade from the instructor's full copy" in res.stderr


# ---------------------------------------------------------------- free text: exported with the rubric, marks merged
def test_free_text_is_exported_with_its_rubric_and_marks_merge_back(graded, tmp_path):
    import csv
    import shutil
    from mqa_edu.grading.marks import main as marks_main
    _, out, _, results = graded
    work = tmp_path / "grades"
    shutil.copytree(out, work)
    with open(work / "free_text.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(results)  # one free-text question, one row per graded submission
    sol = next(r for r in rows if r["submission"] == "solution")
    assert sol["answer"].startswith("At 32k tokens") and "8 GiB in fp16" in sol["rubric"] and sol["points"] == ""
    before = (work / "grades.csv").read_text()
    marks = tmp_path / "marks.csv"
    bad = [dict(sol, points="7"), dict(sol, submission="nobody", points="1"), dict(sol, question="ex01.q1",
                                                                                   points="1")]
    with open(marks, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(sol))
        w.writeheader()
        w.writerows(bad)
    with pytest.raises(SystemExit) as err:
        marks_main([str(work), str(marks)])
    assert "line 2" in str(err.value) and "0 to 5" in str(err.value) and "nobody" in str(err.value)
    assert "free-text questions ['ex01.q7c']" in str(err.value)
    assert (work / "grades.csv").read_text() == before  # a rejected merge changes nothing
    with open(marks, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(sol))
        w.writeheader()
        w.writerow(dict(sol, points="4", comment="names the trade-off; no cost of retraining"))
    assert marks_main([str(work), str(marks)]) == 0
    r = json.loads((work / "students" / "solution.json").read_text())
    assert r["total"] == AUTO + 4 and r["questions"]["ex01.q7c"]["points"] == 4
    assert "no cost of retraining" in " ".join(r["questions"]["ex01.q7c"]["messages"])
    gs = json.loads((work / "gradescope" / "solution" / "results.json").read_text())
    assert gs["score"] == AUTO + 4
    with open(work / "grades.csv", newline="", encoding="utf-8") as fh:
        by_id = {row["submission"]: row for row in csv.DictReader(fh)}
    assert int(by_id["solution"]["total"]) == AUTO + 4 and by_id["solution"]["ex01.q7c"] == "4"
    assert len(by_id) == len(before.strip().splitlines()) - 1
    with open(work / "free_text.csv", newline="", encoding="utf-8") as fh:  # the marks show in the next export
        assert next(r for r in csv.DictReader(fh) if r["submission"] == "solution")["points"] == "4"


def test_rubric_parts_have_a_column_each_and_are_checked_against_their_maximum(graded, tmp_path):
    """ex01.q7c's rubric has three parts (2, 2, 1): free_text.csv has part_1..part_3, mqa-grade-marks refuses a part
    above its maximum or points that are not the parts' sum, and merges the parts' sum."""
    import csv
    import shutil
    from mqa_edu.grading.marks import main as marks_main
    _, out, _, _ = graded
    work = tmp_path / "grades"
    shutil.copytree(out, work)
    with open(work / "free_text.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    assert header[:7] == ["submission", "question", "max_points", "points", "part_1", "part_2", "part_3"]
    sol = next(r for r in rows if r["submission"] == "solution")
    assert "part_1, up to 2:" in sol["rubric"] and "part_3, up to 1:" in sol["rubric"]
    marks = tmp_path / "marks.csv"

    def merge(*rows_):
        with open(marks, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(rows_)
        return marks_main([str(work), str(marks)])

    for bad, words in ((dict(sol, part_1="3"), "part_1 of ex01.q7c must be from 0 to 2"),
                       (dict(sol, part_3="x"), "part_3 of ex01.q7c must be a number from 0 to 1"),
                       (dict(sol, part_1="2", part_2="1", points="4"), "not the sum of the parts (3)")):
        with pytest.raises(SystemExit) as err:
            merge(bad)
        assert words in str(err.value), str(err.value)
    assert merge(dict(sol, part_1="2", part_2="1.5", part_3="1", comment="=good")) == 0
    r = json.loads((work / "students" / "solution.json").read_text())
    assert r["questions"]["ex01.q7c"]["points"] == 4.5 and r["marks"]["ex01.q7c"]["parts"] == [2, 1.5, 1]
    assert r["marks"]["ex01.q7c"]["comment"] == "=good"  # stored as written; shown with a leading ' in the CSV
    with open(work / "free_text.csv", newline="", encoding="utf-8") as fh:
        again = next(r for r in csv.DictReader(fh) if r["submission"] == "solution")
    assert (again["part_1"], again["part_2"], again["part_3"], again["comment"]) == ("2", "1.5", "1", "'=good")
    assert merge(dict(again)) == 0  # the export merges back as it is: the apostrophe is not kept
    assert json.loads((work / "students" / "solution.json").read_text())["marks"]["ex01.q7c"]["comment"] == "=good"


def test_identical_copies_get_identical_rows(graded):
    """Five byte-identical copies of a partly wrong notebook, graded in one batch, get five identical rows: one seed
    per batch, so every submission meets the same hidden cases."""
    assert_identical_rows(graded[3], "n_heads_mistake")


DEPENDENTS = {"q1": ("ex01.q2", "ex01.q3"), "q2": ("ex01.q4", "ex01.q7a", "ex01.q7b"), "q5": ("ex01.q6",)}


def test_every_declared_dependency_is_tested():
    edges = {(q.qid, EXERCISE.question(q.cascade.on).qid) for q in EXERCISE.questions if q.cascade}
    assert edges == {(later, f"ex01.{earlier}") for earlier, laters in DEPENDENTS.items() for later in laters}


@pytest.mark.parametrize("earlier", sorted(DEPENDENTS))
@pytest.mark.parametrize("how", ["raises", "wrong"])
def test_a_raising_or_wrong_earlier_answer_costs_only_its_own_question(graded, earlier, how):
    """For every declared dependency: with the earlier answer raising (the reference's values stand in where the
    later answers call it) or wrong (the later answers are judged on top of it), the later answers keep their
    points, and the submission loses the earlier question's points only."""
    r = graded[3][f"{earlier}_{how}"]
    q = r["questions"]
    for later in DEPENDENTS[earlier]:
        assert q[later]["points"] == q[later]["max"], (later, q[later])
    lost = EXERCISE.question(earlier).points
    assert q[f"ex01.{earlier}"]["points"] < lost and r["total"] >= AUTO - lost, q
