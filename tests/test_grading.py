"""The autograder end to end: a folder of crafted submissions graded with --jobs 2 in one run (exercise 1), the
free-text export and marks, and credit given an earlier answer. Check cells: test_check_cells.py and
test_public_checks.py; the student release: test_release.py."""
import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mqa_edu.grading.cli import main as grade_main
from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE
from mqa_edu.grading.sandbox import INSTALL_HINT, sandbox_problem
from tests.helpers import assert_identical_rows, with_cell, with_copies

# points graded automatically: everything but the free-text answers, which the instructor marks (mqa-grade-marks)
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")
SANDBOX_PROBLEM = sandbox_problem()
# Without bubblewrap the scoring tests still run, with isolation off (the attack tests are in test_grader_*.py).
NO_SANDBOX = ["--no-sandbox"] if SANDBOX_PROBLEM else []
# the attack tests (test_grader_sandbox.py, test_grader_holes.py) import this: they need the sandbox and skip without it
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
                              "weights_bytes) / (2 * n_layers * n_kv_heads * head_dim * seq_len * "
                              "bytes_per_element)))")):
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
