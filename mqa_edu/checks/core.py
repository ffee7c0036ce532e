"""Questions, judging and in-notebook feedback. Imports only the standard library: a check cell costs nothing.

One definition serves two masters:
- in a notebook, ``check(qid, answer)`` runs the question's PUBLIC cases at once and prints what passed, what failed
  and a specific hint for each known mistake;
- the grader (mqa_edu.grading) runs the HIDDEN cases, with fresh random inputs, in a separate process, and judges
  the returned values with the same :func:`judge`.
"""
from __future__ import annotations

import importlib
import math
import os
import random
import signal
import sys
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Callable

GRADING_ENV = "MQA_EDU_GRADING"  # set inside a grading kernel: check cells then do nothing
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_CHECKS_DIR = Path(__file__).resolve().parent


class NotAnswered(Exception):
    """The student has not attempted the question (NotImplementedError or None)."""


@dataclass
class Mistake:
    """A known wrong answer: ``fn`` takes the same arguments as the reference and returns the wrong value."""

    name: str
    fn: Callable
    hint: str


@dataclass
class Cascade:
    """How a later question builds on an earlier one, so that one mistake is counted once.

    ``probes(*case)`` lists the cases of the earlier question (``on``) that this case's answer uses; the grader calls
    the student's earlier function there too, as hidden cases of the earlier question. If the earlier answer is wrong
    at a probe and this answer equals ``combine(case, values)``, what it must be given the student's own earlier
    values, this step is right. ``decoys()``: more inputs of the earlier question that look like the probes (what a
    known mistake would use), so that the list of hidden cases a kernel is given does not tell which input is the
    right one (Falcon-7B's config with 1 KV head, next to the same config with 71 and with 8).

    When the student's earlier function raises or is missing, the later answer is computed with the reference's
    values in its place, at the probes, the decoys and ``stand_in()`` (inputs too large to be hidden cases: exercise
    2's attention maps): the later step is then judged on its own, so one mistake costs once."""

    on: str
    probes: Callable
    combine: Callable | None  # None: no credit from a wrong earlier answer, only the stand-in below
    decoys: Callable = lambda: []
    stand_in: Callable = lambda: []  # more inputs at which a raising or missing earlier answer is stood in for


@dataclass
class Question:
    qid: str  # "ex01.q1", "nb03.flops"
    title: str
    points: int
    kind: str  # "function" (student writes a function of the case's arguments), "value", "choice", "text"
    answer_name: str  # what the student defines: a function name, or a variable name for in-notebook checks
    reference: Callable = None  # (*case) -> expected
    public_cases: Callable = lambda rng: [()]  # rng -> list of argument tuples
    hidden_cases: Callable = None  # rng -> list of argument tuples (defaults to public_cases)
    mistakes: list = field(default_factory=list)
    rel_tol: float = 0.0  # 0: integers must match exactly
    choices: tuple = ()  # for kind "choice"
    hint: str = ""  # shown when the answer is wrong and no known mistake matches
    cascade: Cascade | None = None  # graded only: how this answer builds on an earlier one
    rubric: str = ""  # kind "text": how the instructor marks it (exported with the answers by mqa-grade)
    after: str = ""  # a "your turn" task: what the notebook uses next, so an unsolved task never blocks it
    subject: str = ""  # a fixed graded answer: the name that gives the answer away when it stands next to it

    def cases(self, rng, hidden: bool):
        maker = self.hidden_cases if hidden and self.hidden_cases else self.public_cases
        return [tuple(c) for c in maker(rng)]

    @property
    def rubric_parts(self) -> list:
        """[(label, maximum, what earns it)] of a free-text rubric written "N points in all. 2: ... 2: ... 1: ..."
        (or "A (5): ... C (5): ..."): one column each in free_text.csv, checked by mqa-grade-marks. One part, the
        whole rubric, when it has no parts."""
        import re

        found = list(re.finditer(r"(?:^|(?<=\. ))(?:(?P<label>[A-Z]) \((?P<a>\d+)\)|(?P<b>\d+)): ", self.rubric))
        parts = []
        for n, m in enumerate(found):
            end = found[n + 1].start() if n + 1 < len(found) else len(self.rubric)
            text = self.rubric[m.end():end].strip()
            parts.append((m.group("label") or "", int(m.group("a") or m.group("b")), text))
        return parts or [("", self.points, self.rubric)]

    @property
    def fixed(self) -> bool:
        """One fixed answer (Falcon-7B's bytes per token, a choice): a public check that confirmed it would give it
        away, so its check looks at the form only, and it is graded later."""
        return self.kind in ("value", "choice") and self.hidden_cases is None and self.cases(None, False) == [()]


@dataclass
class Exercise:
    name: str
    title: str
    questions: list
    # module names a graded answer may not use (the grader blocks them outright, and hides their files)
    forbidden_modules: tuple = ()

    @property
    def forbidden_paths(self) -> tuple:
        """The files of ``forbidden_modules``, relative to the repository: ``a.b`` is ``a/b.py`` for a module and
        ``a/b`` for a package or a folder."""
        root = Path(__file__).resolve().parents[2]
        return tuple(rel + ".py" if (root / (rel + ".py")).is_file() else rel
                     for rel in (m.replace(".", "/") for m in self.forbidden_modules))

    @property
    def total(self) -> int:
        return sum(q.points for q in self.questions)

    def question(self, qid):
        for q in self.questions:
            if q.qid == qid or q.qid.split(".")[-1] == qid:
                return q
        raise KeyError(f"no question {qid!r} in {self.name}; questions are {[q.qid for q in self.questions]}")


# -------------------------------------------------------------------------------------------------- judging
SMALL = 8  # numbers: an array up to this size is shown with its values, a larger one by its shape


def _describe(value) -> str:
    """A value in a short form: a small one as it is; a larger array (a tensor, a numpy array, nested lists) by its
    type, shape and dtype, not its values, so that feedback leads with what matters."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (str, bytes)):
        try:
            dims = tuple(int(n) for n in shape)
            if dims and math.prod(dims) > SMALL:
                dtype = str(getattr(value, "dtype", "")).replace("torch.", "")
                return f"{type(value).__name__}(shape={dims}{', ' + dtype if dtype else ''})"
        except (TypeError, ValueError):
            pass
    elif isinstance(value, (list, tuple)) and value:
        arr = as_array(value)
        if arr is not None and len(arr[1]) > SMALL:
            return f"{type(value).__name__} of shape {arr[0]}"
    text = " ".join(repr(value).split())  # on one line
    return text if len(text) <= 80 else text[:77] + "..."


def _as_number(value):
    """A plain int/float from int, float or numpy scalars; None for anything else (str, list, bool, ...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    return None


MAX_ARRAY = 1_000_000  # elements an array answer may have


def as_array(value):
    """(shape, flat list of numbers) for an array answer: a numpy array or torch tensor (anything with ``shape`` and
    ``tolist``) or a rectangular nested list/tuple of numbers; None for anything else (a scalar, ragged lists...)."""
    if isinstance(value, (str, bytes, dict)) or _as_number(value) is not None:
        return None
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        try:
            if math.prod(int(n) for n in value.shape) > MAX_ARRAY:
                return None
            value = value.tolist()
        except Exception:
            return None
    if not isinstance(value, (list, tuple)):
        return None
    shape, flat = [], []

    def walk(v, depth):
        if isinstance(v, (list, tuple)):
            if depth == len(shape):
                if flat:  # numbers were found at this depth before: ragged
                    raise ValueError("ragged")
                shape.append(len(v))
            elif shape[depth] != len(v):
                raise ValueError("ragged")
            for x in v:
                walk(x, depth + 1)
        else:
            n = int(v) if isinstance(v, bool) else _as_number(v)  # a mask's True/False count as 1/0 in an array
            if n is None or depth != len(shape) or len(flat) >= MAX_ARRAY:
                raise ValueError("not a number")
            flat.append(n)

    try:
        walk(value, 0)
    except (ValueError, RecursionError):
        return None
    if len(flat) != math.prod(shape):
        return None
    return tuple(shape), flat


def nest(shape, flat) -> list:
    """The nested lists of an array given as (shape, flat values): the form an array answer travels in."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(shape[1:], flat[i * step:(i + 1) * step]) for i in range(shape[0])]


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


class Partition:
    """The expected form of a proposal: ``n_items`` items (heads 0 .. n_items - 1) split into ``n_groups`` groups of
    equal size, each item once, given as a list of lists. Any such split matches: the check cell can say whether a
    proposal is well formed, while how good it is (for example the loss of a model converted with it) is measured by
    the grader (a subclass in the exercise's private definition)."""

    is_text = False

    def __init__(self, n_items: int, n_groups: int, note: str = "", measure: str | None = None):
        # measure: "module:function" that scores a well-formed proposal (its loss, say), told to the student
        self.n_items, self.n_groups, self._note, self.measure = n_items, n_groups, note, measure

    def problem(self, got) -> str | None:
        arr = as_array(got)
        if arr is None or len(arr[0]) != 2:
            return f"give a list of {self.n_groups} lists of head indices, e.g. {self.example()}"
        if arr[0][0] != self.n_groups:
            return f"give exactly {self.n_groups} groups (got {arr[0][0]})"
        if arr[0][1] != self.n_items // self.n_groups:
            return f"every group holds n_heads / n_groups = {self.n_items // self.n_groups} heads"
        if any(not float(x).is_integer() for x in arr[1]) or sorted(int(x) for x in arr[1]) != list(range(
                self.n_items)):
            return f"every head 0 .. {self.n_items - 1} must appear exactly once"
        return None

    def example(self) -> list:
        size = self.n_items // self.n_groups
        return [list(range(i * size, (i + 1) * size)) for i in range(self.n_groups)]

    def matches(self, got) -> bool:
        return self.problem(got) is None

    def explain(self, got) -> str:
        return self.problem(got) or "not right"

    def note(self, got) -> str:
        if not self.measure or self.problem(got) is not None:
            return self._note
        module, name = self.measure.split(":")
        fn = getattr(importlib.import_module(module), name)
        groups = tuple(tuple(int(h) for h in g) for g in nest(*as_array(got)))
        return f"{self._note}; your loss after conversion: {fn(groups):.4f} nats (lower is better)"

    def __repr__(self):
        return f"<a split of {self.n_items} heads into {self.n_groups} equal groups>"


class FormOnly:
    """The public check of a fixed graded answer: its form only (one of the choices, a number, a whole number, a
    list of whole numbers, an ordering of 0 .. n-1). Whether it is right is graded later: a check that said so
    would let a student find the answer by trying (every choice, every integer up to a few thousand, a decimal grid)."""

    graded_later = True
    NOTE = "recorded; it is graded later (a check here would give the answer away), and its hints come with your grade"

    def __init__(self, form: str, choices=(), n: int | None = None):
        self.form, self.choices, self.n = form, tuple(choices), n
        self.is_text = form == "choice"

    def problem(self, got) -> str | None:
        if self.form == "choice":
            ok = isinstance(got, str) and got.strip().lower() in self.choices
            return None if ok else f"give one of {list(self.choices)}"
        if self.form in ("number", "integer"):
            num = _as_number(got)
            if num is None or not math.isfinite(num):
                return "give a number"
            if self.form == "integer" and not float(num).is_integer():
                return "give a whole number"
            return None
        arr = as_array(got)
        if arr is None or len(arr[0]) != 1 or not all(float(x).is_integer() for x in arr[1]):
            return "give a list of whole numbers"
        if self.form == "ordering" and sorted(int(x) for x in arr[1]) != list(range(self.n)):
            return f"give each of 0 .. {self.n - 1} once, in your order"
        if len(set(arr[1])) != len(arr[1]):
            return "give each number once"
        return None

    def matches(self, got) -> bool:
        return self.problem(got) is None

    def explain(self, got) -> str:
        return self.problem(got) or ""

    def note(self, got) -> str:
        return self.NOTE

    def __repr__(self):
        return f"<a fixed answer: {self.form}, graded later>"

    @classmethod
    def of(cls, value, choices=()):
        """The form of the answer ``value`` (the reference's)."""
        if isinstance(value, str):
            return cls("choice", choices)
        arr = as_array(value)
        if arr is not None:
            ints = sorted(int(x) for x in arr[1])
            return cls("ordering", n=len(ints)) if ints == list(range(len(ints))) else cls("int_list")
        return cls("integer" if isinstance(value, Integral) else "number")


def is_array_answer(expected) -> bool:
    return getattr(expected, "is_array", False) or as_array(expected) is not None


def matches(got, expected, rel_tol: float) -> bool:
    if hasattr(expected, "matches"):  # a public check's expected value, known only by its digest
        return expected.matches(got)
    if is_array_answer(expected):
        return _arrays_match(got, expected, rel_tol)
    if isinstance(expected, str):
        return isinstance(got, str) and got.strip().lower() == expected.lower()
    g, e = _as_number(got), _as_number(expected)
    if g is None or e is None or (isinstance(g, float) and not math.isfinite(g)):
        return False
    if rel_tol == 0:
        return g == e
    return math.isclose(g, e, rel_tol=rel_tol, abs_tol=1e-12)


def judge(q: Question, case: tuple, got, error: str | None = None) -> tuple[bool, str]:
    """(passed, message) for one case. ``error`` is what the student's code raised, if anything. A failing message
    leads with what to fix (the hint of the known mistake it matches, or the question's hint), then the call in a
    short form: arrays by their shape and dtype, values only when small."""
    args = ", ".join(_describe(a) for a in case)
    call = f"{q.answer_name}({args})" if q.kind == "function" else q.answer_name
    if error is not None:
        return False, f"{call} raised {error}"
    expected = q.reference(*case)
    textual = isinstance(expected, str) or getattr(expected, "is_text", False)
    if textual and isinstance(got, bool) and {"true", "false"} <= set(q.choices):
        got = "true" if got else "false"  # a Python True/False answers a true-or-false question
    returned = f"{call} returned {_describe(got)}"
    if matches(got, expected, q.rel_tol):
        note = getattr(expected, "note", None)  # e.g. a proposal whose quality is measured only at grading
        return True, f"{call} = {_describe(got)}" + (f": {note(got)}" if note else "")
    explain = getattr(expected, "explain", None)  # an answer judged by a rule rather than compared with one value
    if explain is not None:
        return False, f"{explain(got)} ({returned})"
    if textual:
        if not isinstance(got, str) or got.strip().lower() not in q.choices:
            return False, f"give one of {list(q.choices)} ({returned})"
    elif is_array_answer(expected):
        arr, want = as_array(got), getattr(expected, "shape", None)
        want = tuple(int(n) for n in want) if want is not None else as_array(expected)[0]
        if arr is None:
            return False, (f"expected an array of shape {want}, a numpy array or nested lists of numbers ({call} "
                           f"returned {type(got).__name__} {_describe(got)})")
        if any(isinstance(x, float) and math.isnan(x) for x in arr[1]):
            for m in q.mistakes:  # a known mistake may explain the NaN (a softmax without its max subtracted)
                try:
                    if matches(got, m.fn(*case), q.rel_tol):
                        return False, f"{m.hint} ({call} contains NaN)"
                except Exception:
                    continue
            return False, f"NaN entries: look for a 0/0 or an inf - inf ({call} returned an array with NaN entries)"
        if arr[0] != want:
            for m in q.mistakes:  # a known mistake may explain the shape too
                try:
                    if matches(got, m.fn(*case), q.rel_tol):
                        return False, f"{m.hint} ({call} has shape {arr[0]})"
                except Exception:
                    continue
            return False, f"expected shape {want}. {q.hint} ({call} has shape {arr[0]})".replace(".  (", ". (")
    else:
        num = _as_number(got)
        if num is None:
            kind = getattr(got, "type_name", type(got).__name__)
            return False, f"expected a number ({call} returned {kind} {_describe(got)})"
        if isinstance(num, float) and math.isnan(num):
            return False, f"a NaN is no answer: look for a 0/0 or an inf - inf ({call} returned NaN)"
    for m in q.mistakes:
        try:
            wrong = m.fn(*case)
        except Exception:  # a mistake model that does not apply to this case
            continue
        if matches(got, wrong, q.rel_tol):
            return False, f"{m.hint} ({returned})"
    num = None if is_array_answer(expected) else _as_number(got)
    if q.rel_tol and num is not None and math.isfinite(num) and isinstance(expected, Real) \
            and abs(num - expected) <= 0.05 * abs(expected):
        return False, (f"close, but not within the tolerance ({q.rel_tol:.1g} relative): check your rounding, or carry "
                       f"more digits ({returned})")
    return False, f"not right. {q.hint or 'Check your working against the question.'} ({returned})"


# -------------------------------------------------------------------------------------------------- running answers
class _CallTimeout(BaseException):
    """A BaseException, so that a student's ``except Exception`` cannot swallow the time limit."""


def _on_alarm(signum, frame):
    raise _CallTimeout()


def _message(exc) -> str:
    """An exception as 'Type: message', even when its __str__ raises; at most 500 characters."""
    try:
        text = str(exc)
    except BaseException:  # an exception whose __str__ raises
        text = "(its message could not be printed)"
    return f"{type(exc).__name__}: {text[:500]}"


def call_answer(q: Question, answer, case: tuple, seconds: float = 10.0, convert=None):
    """Call (or read) the student's answer for one case. Returns (value, error string or None, mqa_edu files used).

    ``convert`` (the grader's) turns the value into something safe to send back; it runs inside the same time limit
    and error handling as the answer itself, so a value whose __repr__ hangs or raises costs this case only."""
    if answer is None:
        raise NotAnswered()
    used: set = set()
    if q.kind != "function" and not callable(answer):
        if convert is None:
            return answer, None, used
        answer = (lambda value: lambda: value)(answer)
    if not callable(answer):
        return None, f"TypeError: {q.answer_name} must be a function, got {type(answer).__name__}", used

    own = {str(_CHECKS_DIR)}

    def tracer(frame, event, arg):
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(str(PACKAGE_DIR)) and not any(path.startswith(p) for p in own):
                used.add(f"{Path(path).relative_to(PACKAGE_DIR.parent)}:{frame.f_code.co_name}")

    use_alarm = hasattr(signal, "SIGALRM") and _in_main_thread()
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    previous_profile = sys.getprofile()
    sys.setprofile(tracer)
    try:
        value = answer(*case) if q.kind == "function" else answer()  # a value's "cases" are what it is judged on
        if convert is not None:
            value = convert(value)
        error = None
    except NotImplementedError:
        raise NotAnswered()
    except _CallTimeout:
        value, error = None, f"TimeoutError: took longer than {seconds:g} s"
    except Exception as exc:  # the student's bug, reported as a message
        value, error = None, _message(exc)
    finally:
        tampered = sys.getprofile() is not tracer
        sys.setprofile(previous_profile)
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if tampered:
        used.add("sys.setprofile (the call tracer was removed)")
    if value is None and error is None and q.kind != "function":
        raise NotAnswered()
    return value, error, used


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


# -------------------------------------------------------------------------------------------------- in the notebook
_PUBLIC_RESULTS: dict = {}  # qid -> (points earned on public checks, points possible)
def find_exercise(prefix: str) -> Exercise:
    """'ex01' or 'nb03' (or a question id such as 'nb03.flops') -> its Exercise. Notebook checks are defined in
    concepts.py; a graded exercise's check cells use its public form (public.py), never its private definition."""
    prefix = prefix.split(".")[0]
    if prefix.startswith("nb"):
        return importlib.import_module("mqa_edu.checks.concepts").exercise_for(prefix)
    from .public import PUBLIC_DIR, load_public

    found = sorted(PUBLIC_DIR.glob(f"{prefix}_*.json"))
    if not found:
        known = sorted(p.stem.split("_")[0] for p in PUBLIC_DIR.glob("*.json"))
        raise KeyError(f"unknown exercise or question prefix {prefix!r}; known: nb01-nb07, {known}")
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
        lines.append("  ⚠ your answer calls code from mqa_edu (" + ", ".join(sorted(used)) + "). Graded answers must be "
                     "written from scratch: at grading the course's implementation of the answers is not there, and "
                     "an answer that calls it scores 0.")
    all_ok = passed == len(results) and not used
    later = getattr(q.reference(*q.cases(rng, hidden=False)[0]), "graded_later", False)
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
