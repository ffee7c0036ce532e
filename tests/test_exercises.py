"""What every graded exercise (ex01-ex04) must satisfy: the student version is generated from the solution, the
points add up to 100, hidden cases are fresh at every run and catch every known mistake, and the public checks pass
the references and name each planted mistake a public case can show. (Exercise-specific behaviour and grader runs are
in test_grading.py for ex01 and test_ex02/03/04 for the others.)"""
import importlib
import json
import random
from pathlib import Path

import nbformat
import pytest

from mqa_edu.authoring.make_exercise import render
from mqa_edu.checks import judging, rules
from mqa_edu.grading.registry import EXERCISES
from tests.helpers import assert_public_checks_name_mistakes

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(EXERCISES)  # every exercise, ex01 included


def exercise(name):
    return importlib.import_module(EXERCISES[name]).EXERCISE


def test_the_registry_holds_all_five_exercises():
    assert sorted(EXERCISES) == ["ex01_cache_sizing", "ex02_head_redundancy", "ex03_quality_tradeoff",
                                 "ex04_case_studies", "ex05_kv_design"]


@pytest.mark.parametrize("name", NAMES)
def test_student_version_is_generated_from_the_solution(name):
    solution, student = ROOT / "solutions" / f"{name}.ipynb", ROOT / "exercises" / f"{name}.ipynb"
    assert student.read_text() == render(solution), "run: mqa-make-exercise solutions/ exercises/"
    assert nbformat.read(student, as_version=4).metadata["mqa_edu"]["exercise"] == name
    assert "BEGIN SOLUTION" not in student.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_points_add_up_and_every_answer_has_a_check_cell(name):
    ex = exercise(name)
    assert ex.total == 100
    source = (ROOT / "solutions" / f"{name}.ipynb").read_text()
    for q in ex.questions:
        assert f'check(\\"{q.qid}\\", {q.answer_name})' in source, q.qid
        assert f"def {q.answer_name}(" in source, q.qid
        if q.kind == "text":
            assert q.rubric, q.qid


@pytest.mark.parametrize("name", NAMES)
def test_hidden_cases_are_fresh_and_catch_every_mistake(name):
    for q in exercise(name).questions:
        if q.kind != "function":
            continue
        a, b = q.cases(random.Random(1), True), q.cases(random.Random(2), True)
        assert a != b, q.qid
        assert json.loads(json.dumps(a)) == [list(c) for c in a], q.qid  # cases travel to the kernel as JSON
        for m in q.mistakes:
            assert any(not judging.matches(m.fn(*c), q.reference(*c), q.rel_tol) for c in a), (q.qid, m.name)


@pytest.mark.parametrize("name", NAMES)
def test_public_checks_pass_the_references_and_name_every_planted_mistake(name, capsys):
    assert_public_checks_name_mistakes(exercise(name), capsys)


def test_falcon_7b_matches_its_published_bytes_per_token():
    """Falcon-7B's bytes per token is exercise 1's graded answer, so the student release (sizing.py, references.md)
    does not print it; its published figure (mqa_facts.md: 8,192 in fp16) is checked here, in a private test."""
    from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE
    from mqa_edu.sizing import REAL_MODELS, bytes_per_token

    published = 8_192  # mqa_facts.md's table (this file is private: mqa-release leaves it out)
    assert bytes_per_token(REAL_MODELS["Falcon-7B"], "fp16") == published == EXERCISE.question("q3").reference()


def _candidates(expected):
    """What a student would try against a fixed answer's public check, by the answer's form."""
    from itertools import combinations, permutations

    if isinstance(expected, str) or getattr(expected, "is_text", False):
        return list("abcdefgh") + ["fp16", "fp8", "bf16", "true", "false"] + [f"{i},{j}" for i in range(8)
                                                                            for j in range(i + 1, 8)]
    if getattr(expected, "form", "") in ("ordering", "int_list"):
        return [list(c) for k in (1, 2, 3) for c in combinations(range(30), k)] + [list(p) for p in
                                                                                permutations(range(8))]
    return list(range(0, 5001)) + [i / 100 for i in range(-2000, 20001)] + [i / 1000 for i in range(-3000, 10001)]


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_no_fixed_answer_can_be_recovered_from_the_public_data(name):
    """Plays the student who tries answers against the public data (every choice, every integer up to 5,000, decimal
    grids, short lists of small integers, every ordering of 8 heads): for no question with a fixed answer does the
    public check accept the right answer and refuse a wrong one of the same form, and none holds a digest."""
    from mqa_edu.checks.public import Hashed, load_public

    private = importlib.import_module(EXERCISES[name]).EXERCISE
    public = load_public(name)
    fixed = [q for q in private.questions if q.fixed]
    assert fixed, name
    for q in fixed:
        pq = public.question(q.qid)
        expected = pq.reference()
        assert not isinstance(expected, Hashed), q.qid
        answer = q.reference()
        form = rules.FormOnly.of(answer, q.choices)
        assert judging.matches(answer, expected, q.rel_tol), q.qid  # the right answer is recorded...
        for c in _candidates(expected):  # ...and so is every other answer of its form
            if form.matches(c):
                assert judging.matches(c, expected, q.rel_tol), (q.qid, c)
        ok, message = judging.judge(pq, (), answer)
        assert ok and "graded later" in message and "correct" not in message, (q.qid, message)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_rubric_splits_into_parts_that_add_up(name):
    """free_text.csv has a column per rubric part; the parts' maxima add up to the question's points."""
    for q in importlib.import_module(EXERCISES[name]).EXERCISE.questions:
        if q.kind == "text":
            parts = q.rubric_parts
            assert len(parts) >= 2 and sum(most for _, most, _ in parts) == q.points, (q.qid, parts)


def test_the_instructor_guide_describes_every_hidden_set():
    """INSTRUCTORS.md's table of hidden sets: per function question, the cases drawn at random, the later questions
    whose inputs are its hidden cases too, and the known mistakes its hidden cases show (all of them, by design)."""
    from mqa_edu.grading.cases import make_cases, reveals
    guide = (Path(__file__).resolve().parents[1] / "INSTRUCTORS.md").read_text()
    for name in sorted(EXERCISES):
        ex = importlib.import_module(EXERCISES[name]).EXERCISE
        spec = make_cases(ex, 0)
        for q in ex.questions:
            if q.kind != "function":
                continue
            drawn = len(q.cases(random.Random(0), True))
            later = sorted(o.qid.split(".")[1] for o in ex.questions
                           if o.cascade and o.cascade.combine and ex.question(o.cascade.on) is q)
            cases = [tuple(c) for c in spec[q.qid]["cases"]]
            shown = sum(any(reveals(q, m, c) for c in cases) for m in q.mistakes)
            assert shown == len(q.mistakes), q.qid  # every known mistake costs at least one hidden case
            row = (f"| {q.qid} | `{q.answer_name}` | {drawn} | {', '.join(later) or '-'} | {shown} of "
                   f"{len(q.mistakes)} |")
            assert row in guide, row
