"""The public form of a graded exercise: everything a check cell needs, and no answer.

Written by ``mqa-make-exercise`` from the exercise's private definition (mqa_edu/grading/exercises/) into
``mqa_edu/checks/public/<name>.json``; a test fails when the two drift apart. It holds the questions, hints and public
cases. Expected values and known-mistake values appear only as salted SHA-256 digests of a canonical form (numbers on a
grid fine enough for the question's tolerance), so a check can tell a right answer from a wrong one, and name the
mistake, without the file saying what the answer is. A check is an oracle all the same: like any autograder with
public feedback, it confirms a guess. The grade comes from hidden cases drawn fresh at grading.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

from .core import Exercise, Mistake, Question, _as_number

PUBLIC_DIR = Path(__file__).resolve().parent / "public"


def _grid(x: float, rel_tol: float):
    """(exponent, index): x on a decimal grid a few times finer than rel_tol, and how many steps the tolerance spans."""
    digits = math.ceil(-math.log10(rel_tol)) + 1
    exp = math.floor(math.log10(abs(x))) - digits + 1
    step = 10.0 ** exp
    return exp, round(x / step), max(1, math.floor(rel_tol * abs(x) / step))


def canonical(value, rel_tol: float) -> list[str]:
    """The canonical forms of an answer: one for an exact value, several neighbouring grid points for a value that
    may be off by the tolerance. [] for anything that cannot be an answer (NaN, a list, None)."""
    if isinstance(value, str):
        return ["s:" + value.strip().lower()]
    num = _as_number(value)
    if num is None or (isinstance(num, float) and not math.isfinite(num)):
        return []
    if rel_tol == 0 or num == 0:
        return [f"i:{int(num)}"] if float(num).is_integer() else [f"x:{float(num).hex()}"]
    exp, n, k = _grid(float(num), rel_tol)
    return [f"g:{exp}:{m}" for m in range(n - k, n + k + 1)]


def exact_form(value, rel_tol: float) -> str | None:
    """The one canonical form stored for an expected value."""
    if isinstance(value, str):
        return "s:" + value.strip().lower()
    num = _as_number(value)
    if num is None or (isinstance(num, float) and not math.isfinite(num)):
        return None
    if rel_tol == 0 or num == 0:
        return f"i:{int(num)}" if float(num).is_integer() else f"x:{float(num).hex()}"
    exp, n, _ = _grid(float(num), rel_tol)
    return f"g:{exp}:{n}"


def digest(salt: str, qid: str, form: str) -> str:
    return hashlib.sha256(f"{salt}|{qid}|{form}".encode()).hexdigest()[:32]


class Hashed:
    """An expected (or known-wrong) value known only by its digest."""

    def __init__(self, hexdigest: str, salt: str, qid: str, rel_tol: float, is_text: bool):
        self.hexdigest, self.salt, self.qid, self.rel_tol, self.is_text = hexdigest, salt, qid, rel_tol, is_text

    def matches(self, got) -> bool:
        if self.is_text != isinstance(got, str):
            return False
        return any(digest(self.salt, self.qid, form) == self.hexdigest for form in canonical(got, self.rel_tol))

    def __repr__(self):
        return "<hidden>"


def _key(case) -> str:
    return json.dumps(list(case))


def to_public(exercise: Exercise, salt: str) -> dict:
    """The public form of a private exercise definition (see the module docstring)."""
    questions = []
    for q in exercise.questions:
        entry = {"qid": q.qid, "title": q.title, "points": q.points, "kind": q.kind, "answer_name": q.answer_name,
                 "rel_tol": q.rel_tol, "choices": list(q.choices), "hint": q.hint,
                 "mistakes": [{"name": m.name, "hint": m.hint} for m in q.mistakes], "cases": []}
        if q.kind != "text":
            for case in q.cases(random.Random(f"public-{q.qid}"), hidden=False):
                expected = q.reference(*case)
                form = exact_form(expected, q.rel_tol)
                wrong = {}
                for m in q.mistakes:
                    try:
                        value = m.fn(*case)
                    except Exception:  # a mistake model that does not apply to this case
                        continue
                    mform = exact_form(value, q.rel_tol)
                    if mform is not None and mform != form:
                        wrong[m.name] = digest(salt, q.qid, mform)
                entry["cases"].append({"args": list(case), "text": isinstance(expected, str),
                                       "expected": digest(salt, q.qid, form), "mistakes": wrong})
        questions.append(entry)
    return {"name": exercise.name, "title": exercise.title, "salt": salt, "questions": questions}


def load_public(name: str) -> Exercise:
    """The Exercise a check cell judges with: references and mistakes look the case up in the public file."""
    data = json.loads((PUBLIC_DIR / f"{name}.json").read_text())
    salt, questions = data["salt"], []
    for qd in data["questions"]:
        table = {_key(c["args"]): c for c in qd["cases"]}
        qid, tol = qd["qid"], qd["rel_tol"]

        def reference(*case, table=table, qid=qid, tol=tol):
            c = table[_key(case)]
            return Hashed(c["expected"], salt, qid, tol, c["text"])

        def mistake(name, table=table, qid=qid, tol=tol):
            def fn(*case):
                c = table[_key(case)]
                if name not in c["mistakes"]:
                    raise LookupError(name)  # does not apply to this case
                return Hashed(c["mistakes"][name], salt, qid, tol, c["text"])
            return fn

        cases = [tuple(c["args"]) for c in qd["cases"]] or [()]
        questions.append(Question(
            qid, qd["title"], qd["points"], qd["kind"], qd["answer_name"], reference=reference,
            public_cases=lambda rng, cases=cases: cases, rel_tol=tol, choices=tuple(qd["choices"]), hint=qd["hint"],
            mistakes=[Mistake(m["name"], mistake(m["name"]), m["hint"]) for m in qd["mistakes"]]))
    return Exercise(name=data["name"], title=data["title"], questions=questions)


