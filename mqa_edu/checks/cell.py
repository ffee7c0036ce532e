"""What a check cell calls in a notebook: ``check(qid, answer)`` runs the question's PUBLIC cases at once and prints
what passed, what failed and a specific hint for each known mistake; ``summary(prefix)`` adds them up. Inside a grading
kernel (``GRADING_ENV`` set) both do nothing: the grader runs the HIDDEN cases and judges the values in its own process
with the same :func:`judging.judge`."""
from __future__ import annotations

import importlib
import os
import random

from .calling import call_answer
from .judging import judge
from .questions import Exercise, NotAnswered
from .rules import Partition, Rule

GRADING_ENV = "MQA_EDU_GRADING"  # set inside a grading kernel: check cells then do nothing
_PUBLIC_RESULTS: dict = {}  # qid -> (points earned on public checks, points possible)
def find_exercise(prefix: str) -> Exercise:
    """'ex01' or 'nb03' (or a question id such as 'nb03.flops') -> its Exercise. Notebook checks are defined in
    concepts.py; a graded exercise's check cells use its public form (public.py), never its private definition."""
    prefix = prefix.split(".")[0]
    if prefix.startswith("nb"):
        return importlib.import_module("mqa_edu.checks.concepts").exercise_for(prefix)  # loaded on use
    from .public import PUBLIC_DIR, load_public

    found = sorted(PUBLIC_DIR.glob(f"{prefix}_*.json"))
    if not found:
        known = sorted(p.stem.split("_")[0] for p in PUBLIC_DIR.glob("*.json"))
        raise KeyError(f"unknown exercise or question prefix {prefix!r}; known: the nbNN of notebooks with check "
                       f"questions, {known}")
    return load_public(found[0].stem)


def find_question(qid: str):
    """'ex01.q1' or 'nb03.flops' -> (Exercise, Question)."""
    ex = find_exercise(qid)
    return ex, ex.question(qid)


class Verdict:
    """What :func:`check` returns. ``passed`` is True, False or None (not answered). Truthy only when passed. It shows
    nothing of its own in a notebook: the feedback is already printed above it."""

    __slots__ = ("qid", "passed")

    def __init__(self, qid: str, passed: bool | None):
        self.qid, self.passed = qid, passed

    def __bool__(self):
        return self.passed is True

    def __repr__(self):
        return f"Verdict({self.qid!r}, passed={self.passed})"

    def _ipython_display_(self):  # IPython calls this instead of echoing the value under the cell
        pass


def check(qid: str, answer) -> Verdict:
    """Run the public checks of one question and print feedback; returns a :class:`Verdict`."""
    verdict = _check(qid, answer)
    return Verdict(qid, verdict)


def _check(qid: str, answer) -> bool | None:
    if os.environ.get(GRADING_ENV):
        return None  # the grader runs its own hidden tests in a controlled way
    _, q = find_question(qid)
    rng = random.Random(f"public-{q.qid}")
    header = f"{q.qid} · {q.title} ({q.points} point{'s' if q.points != 1 else ''})"
    if q.kind == "text":
        try:
            text, error, _ = call_answer(q, answer, ())
        except NotAnswered:
            text, error = None, None
        ok = isinstance(text, str) and len(text.strip()) >= 20
        print(f"{header}\n  " + ("recorded for your instructor (not auto-graded)." if ok else
                                 f"write a few sentences (at least 20 characters) for your instructor. {error or ''}"))
        _PUBLIC_RESULTS[q.qid] = (0, 0)
        return ok
    results, used = [], set()
    try:
        for case in q.cases(rng, hidden=False):
            value, error, u = call_answer(q, answer, case)
            used |= u
            results.append(judge(q, case, value, error))
    except NotAnswered:
        print(f"{header}\n  " + (f"not yet attempted. {q.after}" if q.after else "not answered yet."))
        _PUBLIC_RESULTS[q.qid] = (0, q.points)
        return None
    passed = sum(ok for ok, _ in results)
    lines = [f"  {'✓' if ok else '✗'} {msg}" for ok, msg in results]
    if used:
        lines.append("  ⚠ your answer calls code from mqa_edu (" + ", ".join(sorted(used)) + "). Graded answers "
                     "must be "
                     "written from scratch: at grading the course's implementation of the answers is not there, and "
                     "an answer that calls it scores 0.")
    all_ok = passed == len(results) and not used
    first = q.reference(*q.cases(rng, hidden=False)[0])
    later = isinstance(first, Rule) and first.graded_later
    if later:  # a fixed answer: only its form is checked here
        verdict = "recorded, graded later." if all_ok else "not in the form the question asks for."
        print(f"{header}\n  {verdict}\n" + "\n".join(lines))
        _PUBLIC_RESULTS[q.qid] = ("recorded" if all_ok else 0, q.points)
        return None if all_ok else False
    if all_ok and q.after:  # a "your turn" task: nothing is graded
        verdict = f"all {passed} checks passed."
    elif all_ok and q.kind == "function":
        verdict = f"public checks passed ({passed}/{len(results)}). Hidden tests with other inputs run at grading."
    elif all_ok and isinstance(q.reference(*q.cases(rng, hidden=False)[0]), Partition):
        verdict = "a valid proposal: its quality is scored at grading."
    elif all_ok:
        verdict = "correct."
    elif q.kind != "function":
        verdict = "not right yet."
    else:
        verdict = f"{passed}/{len(results)} public checks passed."
    print(f"{header}\n  {verdict}\n" + "\n".join(lines))
    _PUBLIC_RESULTS[q.qid] = (q.points if all_ok else 0, q.points)
    return all_ok


def summary(prefix: str = "ex01") -> None:
    """Points earned on the public checks run so far in this kernel (not a grade: hidden tests run at grading)."""
    if os.environ.get(GRADING_ENV):
        return
    ex = find_exercise(prefix)
    earned = 0
    print(f"{ex.title}: public checks so far")
    for q in ex.questions:
        got, possible = _PUBLIC_RESULTS.get(q.qid, (None, q.points))
        earned += got if isinstance(got, int) else 0
        state = ("not checked yet" if got is None else f"recorded, graded later (/{possible})" if got == "recorded"
                 else f"{got}/{possible}")
        print(f"  {q.qid:10} {q.title[:48]:48} {state}")
    print(f"  total on public checks: {earned}/{ex.total}. Your grade comes from hidden tests run by the grader.")
