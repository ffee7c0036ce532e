"""What an exercise is made of: questions, their known mistakes, and how a later answer builds on an earlier one.
Data only (no judging, no running); the standard library only, so a check cell costs nothing to import."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


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
    runs_course_code: bool = False  # a "your turn" task whose cases run the course's model: calls into mqa_edu are
    # expected there, so they are neither traced nor reported

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
