"""The public form of a graded exercise: everything a check cell needs, and no answer.

Written by ``mqa-make-exercise`` from the exercise's private definition (mqa_edu/grading/exercises/) into
``mqa_edu/checks/public/<name>.json``; a test fails when the two drift apart. It holds the questions, hints and public
cases. Expected values and known-mistake values appear only as salted SHA-256 digests of a canonical form (numbers on a
grid fine enough for the question's tolerance), so a check can tell a right answer from a wrong one, and name the
mistake, without the file saying what the answer is. That is safe only where the grade comes from other inputs: a
function question's hidden cases are drawn at grading. A question with one fixed answer (a model's bytes per token, a
choice) has no digest at all: its check looks at the form only (:class:`~mqa_edu.checks.rules.FormOnly`) and says
"recorded, graded later", since trying every choice, every integer up to a few thousand or a decimal grid against a
digest recovers the answer in seconds. Its known-mistake hints come with the grade.

One exception: a function whose answer is an array (exercise 3's pooled weights) has its public cases' expected arrays
stored as they are, since a digest cannot allow for rounding in every entry. They give nothing away: the inputs are
public too, and the grade comes from fresh hidden inputs.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

from .judging import matches
from .questions import Exercise, Mistake, Question
from .rules import FormOnly, Partition, Rule
from .values import as_array, as_number, nest

PUBLIC_DIR = Path(__file__).resolve().parent / "public"


def _grid(x: float, rel_tol: float):
    """(exponent, index): x on a decimal grid a few times finer than rel_tol, and how many steps the tolerance spans."""
    digits = math.ceil(-math.log10(rel_tol)) + 1
    exp = math.floor(math.log10(abs(x))) - digits + 1
    step = 10.0 ** exp
    return exp, round(x / step), max(1, math.floor(rel_tol * abs(x) / step))


def _int_array_form(value) -> str | None:
    """An array of whole numbers (a ranking, a list of indices) in one exact form; None for anything else."""
    arr = as_array(value)
    if arr is None or not all(float(x).is_integer() for x in arr[1]):
        return None
    return "a:" + json.dumps([list(arr[0]), [int(x) for x in arr[1]]])


def canonical(value, rel_tol: float) -> list[str]:
    """The canonical forms of an answer: one for an exact value, several neighbouring grid points for a value that
    may be off by the tolerance. [] for anything that cannot be an answer (NaN, None, an array of non-integers)."""
    if isinstance(value, str):
        return ["s:" + value.strip().lower()]
    if as_array(value) is not None:
        form = _int_array_form(value)
        return [form] if form else []
    num = as_number(value)
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
    if as_array(value) is not None:
        return _int_array_form(value)
    num = as_number(value)
    if num is None or (isinstance(num, float) and not math.isfinite(num)):
        return None
    if rel_tol == 0 or num == 0:
        return f"i:{int(num)}" if float(num).is_integer() else f"x:{float(num).hex()}"
    exp, n, _ = _grid(float(num), rel_tol)
    return f"g:{exp}:{n}"


def digest(salt: str, qid: str, form: str) -> str:
    return hashlib.sha256(f"{salt}|{qid}|{form}".encode()).hexdigest()[:32]


class Hashed(Rule):
    """An expected (or known-wrong) value known only by its digest."""

    def __init__(self, hexdigest: str, salt: str, qid: str, rel_tol: float, is_text: bool, shape=None):
        self.hexdigest, self.salt, self.qid, self.rel_tol, self.is_text = hexdigest, salt, qid, rel_tol, is_text
        self.shape, self.is_array = shape, shape is not None  # an array of whole numbers (a ranking)

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
        if q.fixed:  # the form only, no digest: a check that confirmed a fixed answer would give it away
            form = FormOnly.of(q.reference(), q.choices)
            entry.update(mistakes=[], cases=[{"args": [], "text": form.is_text, "form": form.form, "n": form.n}])
        elif q.kind != "text":
            for case in q.cases(random.Random(f"public-{q.qid}"), hidden=False):
                expected = q.reference(*case)
                if isinstance(expected, Partition):  # a proposal: the public check can only say it is well formed
                    form = expected.public()
                    entry["cases"].append({"args": list(case), "text": False,
                                           "partition": [form.n_items, form.n_groups, form._note, form.measure],
                                           "mistakes": {}})
                    continue
                if as_array(expected) is not None and (q.kind == "function" or _int_array_form(expected) is None):
                    if q.kind != "function":
                        raise ValueError(f"{q.qid}: a value question's array answer must be whole numbers (it is "
                                         "stored as a digest)")
                    entry["cases"].append(_array_case(q, case, expected))
                    continue
                form = exact_form(expected, q.rel_tol)
                if form is None:
                    raise ValueError(f"{q.qid}: the reference gives {expected!r}, which has no public form")
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
                if form.startswith("a:"):
                    entry["cases"][-1]["shape"] = list(as_array(expected)[0])
        questions.append(entry)
    return {"name": exercise.name, "title": exercise.title, "salt": salt, "questions": questions}


def _array_case(q, case, expected) -> dict:
    """A public case whose answer is an array (a function question: its inputs are public and the grade comes from
    fresh hidden inputs) is stored as it is, with the arrays its known mistakes give."""
    wrong = {}
    for m in q.mistakes:
        try:
            value = as_array(m.fn(*case))
        except Exception:  # a mistake model that does not apply to this case
            continue
        if value is not None and not matches(nest(*value), expected, q.rel_tol):
            wrong[m.name] = nest(*value)
    return {"args": list(case), "text": False, "array": True, "expected": nest(*as_array(expected)), "mistakes": wrong}


def load_public(name: str) -> Exercise:
    """The Exercise a check cell judges with: references and mistakes look the case up in the public file."""
    data = json.loads((PUBLIC_DIR / f"{name}.json").read_text())
    salt, questions = data["salt"], []
    for qd in data["questions"]:
        table = {_key(c["args"]): c for c in qd["cases"]}
        qid, tol, choices = qd["qid"], qd["rel_tol"], tuple(qd["choices"])

        def reference(*case, table=table, qid=qid, tol=tol, choices=choices):
            c = table[_key(case)]
            if "partition" in c:
                return Partition(*c["partition"])
            if "form" in c:
                return FormOnly(c["form"], choices, c.get("n"))
            return c["expected"] if c.get("array") else Hashed(c["expected"], salt, qid, tol, c["text"], c.get("shape"))

        def mistake(name, table=table, qid=qid, tol=tol):
            def fn(*case):
                c = table[_key(case)]
                if name not in c["mistakes"]:
                    raise LookupError(name)  # does not apply to this case
                if c.get("array"):
                    return c["mistakes"][name]
                return Hashed(c["mistakes"][name], salt, qid, tol, c["text"], c.get("shape"))
            return fn

        cases = [tuple(c["args"]) for c in qd["cases"]] or [()]
        questions.append(Question(
            qid, qd["title"], qd["points"], qd["kind"], qd["answer_name"], reference=reference,
            public_cases=lambda rng, cases=cases: cases, rel_tol=tol, choices=tuple(qd["choices"]), hint=qd["hint"],
            mistakes=[Mistake(m["name"], mistake(m["name"]), m["hint"]) for m in qd["mistakes"]]))
    return Exercise(name=data["name"], title=data["title"], questions=questions)


