"""The public form check cells use: in sync with the private definition, holding no answer, judging like the
private one, keeping tolerances, and recording (not confirming) a fixed answer."""
import json

from mqa_edu.checks import cell, judging
from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE


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
