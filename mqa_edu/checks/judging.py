"""Judging one answer on one case: whether it matches, and a message that leads with what to fix (the hint of the
known mistake it matches, or the question's). The notebook's check cells and the grader call the same :func:`judge`."""
from __future__ import annotations

import math
from numbers import Real

from .questions import Question
from .rules import Rule
from .values import as_array, as_number, describe


def _arrays_match(got, expected, rel_tol: float) -> bool:
    g, e = as_array(got), as_array(expected)
    if g is None or e is None or g[0] != e[0]:
        return False
    if rel_tol == 0:
        return g[1] == e[1]
    finite = [abs(x) for x in e[1] if math.isfinite(x)]
    scale = max(finite, default=0.0)  # entries near zero are judged against the array's scale

    def same(x, y):
        if not (math.isfinite(x) and math.isfinite(y)):  # NaN or inf: equal only to the same non-finite value
            return (math.isnan(x) and math.isnan(y)) or x == y
        return math.isclose(x, y, rel_tol=rel_tol, abs_tol=rel_tol * scale + 1e-12)

    return all(same(x, y) for x, y in zip(g[1], e[1]))


def is_text_answer(expected) -> bool:
    return isinstance(expected, str) or (isinstance(expected, Rule) and expected.is_text)


def is_array_answer(expected) -> bool:
    return (isinstance(expected, Rule) and expected.is_array) or as_array(expected) is not None


def matches(got, expected, rel_tol: float) -> bool:
    if isinstance(expected, Rule):  # a rule (a hashed public value, a well-formed split, a form)
        return expected.matches(got)
    if is_array_answer(expected):
        return _arrays_match(got, expected, rel_tol)
    if isinstance(expected, str):
        return isinstance(got, str) and got.strip().lower() == expected.lower()
    g, e = as_number(got), as_number(expected)
    if g is None or e is None or (isinstance(g, float) and not math.isfinite(g)):
        return False
    if rel_tol == 0:
        return g == e
    return math.isclose(g, e, rel_tol=rel_tol, abs_tol=1e-12)


def judge(q: Question, case: tuple, got, error: str | None = None) -> tuple[bool, str]:
    """(passed, message) for one case. ``error`` is what the student's code raised, if anything. A failing message
    leads with what to fix (the hint of the known mistake it matches, or the question's hint), then the call in a
    short form: arrays by their shape and dtype, values only when small."""
    call = f"{q.answer_name}({', '.join(describe(a) for a in case)})" if q.kind == "function" else q.answer_name
    if error is not None:
        return False, f"{call} raised {error}"
    expected = q.reference(*case)
    if is_text_answer(expected) and isinstance(got, bool) and {"true", "false"} <= set(q.choices):
        got = "true" if got else "false"  # a Python True/False answers a true-or-false question
    returned = f"{call} returned {describe(got)}"
    if matches(got, expected, q.rel_tol):
        note = expected.note(got) if isinstance(expected, Rule) else None
        return True, f"{call} = {describe(got)}" + (f": {note}" if note else "")
    why = expected.explain(got) if isinstance(expected, Rule) else None
    if why is not None:  # a rule says what is wrong
        return False, f"{why} ({returned})"
    form = _text_form if is_text_answer(expected) else _array_form if is_array_answer(expected) else _number_form
    return False, form(q, case, expected, got, call) or _wrong_value(q, case, expected, got, returned)


def _known_mistake(q: Question, case: tuple, got) -> str | None:
    """The hint of the first known mistake whose wrong answer ``got`` equals, if any."""
    for m in q.mistakes:
        try:
            wrong = m.fn(*case)
        except Exception:  # a mistake model that does not apply to this case
            continue
        if matches(got, wrong, q.rel_tol):
            return m.hint
    return None


def _text_form(q, case, expected, got, call) -> str | None:
    if not isinstance(got, str) or got.strip().lower() not in q.choices:
        return f"give one of {list(q.choices)} ({call} returned {describe(got)})"
    return None


def _array_form(q, case, expected, got, call) -> str | None:
    arr = as_array(got)
    want = expected.shape if isinstance(expected, Rule) and expected.shape is not None else as_array(expected)[0]
    want = tuple(int(n) for n in want)
    if arr is None:
        return (f"expected an array of shape {want}, a numpy array or nested lists of numbers ({call} returned "
                f"{type(got).__name__} {describe(got)})")
    if any(isinstance(x, float) and math.isnan(x) for x in arr[1]):
        hint = _known_mistake(q, case, got)  # a known mistake may explain the NaN (a softmax without its max)
        return (f"{hint} ({call} contains NaN)" if hint else
                f"NaN entries: look for a 0/0 or an inf - inf ({call} returned an array with NaN entries)")
    if arr[0] != want:
        hint = _known_mistake(q, case, got)  # a known mistake may explain the shape too
        return (f"{hint} ({call} has shape {arr[0]})" if hint else
                f"expected shape {want}. {q.hint} ({call} has shape {arr[0]})".replace(".  (", ". ("))
    return None


def _number_form(q, case, expected, got, call) -> str | None:
    num = as_number(got)
    if num is None:
        kind = getattr(got, "type_name", type(got).__name__)  # the grader's stand-in for a value it did not rebuild
        return f"expected a number ({call} returned {kind} {describe(got)})"
    if isinstance(num, float) and math.isnan(num):
        return f"a NaN is no answer: look for a 0/0 or an inf - inf ({call} returned NaN)"
    return None


def _wrong_value(q, case, expected, got, returned) -> str:
    """An answer of the right form with the wrong value: a known mistake's hint, 'close', or the question's hint."""
    hint = _known_mistake(q, case, got)
    if hint:
        return f"{hint} ({returned})"
    num = None if is_array_answer(expected) else as_number(got)
    if q.rel_tol and num is not None and math.isfinite(num) and isinstance(expected, Real) \
            and abs(num - expected) <= 0.05 * abs(expected):
        return (f"close, but not within the tolerance ({q.rel_tol:.1g} relative): check your rounding, or carry "
                f"more digits ({returned})")
    return f"not right. {q.hint or 'Check your working against the question.'} ({returned})"
