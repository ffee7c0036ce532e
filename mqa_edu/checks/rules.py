"""Answers judged by a rule rather than compared with one value, and the one protocol they all follow.

A question's reference may return a plain value (a number, a string, an array), which :func:`judging.matches`
compares with the answer, or a :class:`Rule`: a hashed public value (``public.Hashed``), any well-formed split of heads
(:class:`Partition`, and exercise 2's ranked grouping), or the form of a fixed answer graded later (:class:`FormOnly`).
"""
from __future__ import annotations

import importlib
import math
from numbers import Integral
from typing import Protocol, runtime_checkable

from .values import as_array, as_number, nest


@runtime_checkable
class Rule(Protocol):
    """What :func:`judging.judge` asks of an expected answer that is not a plain value. Every rule subclasses it, so
    the defaults below hold unless a rule says otherwise."""

    is_text: bool = False  # the answer is a string (one of the question's choices)
    is_array: bool = False  # the answer is an array ...
    shape: tuple | None = None  # ... of this shape
    graded_later: bool = False  # a fixed answer whose check looks at its form only

    def matches(self, got) -> bool:
        """Whether ``got`` is right."""
        ...

    def explain(self, got) -> str | None:
        """Why ``got`` (which does not match) is wrong, said first in the message; None: judge its form as usual."""
        return None

    def note(self, got) -> str | None:
        """Said beside a matching answer (a proposal whose quality is measured at grading), or None."""
        return None

    def public(self) -> Rule:
        """The rule a public check cell uses (a rule that measures in the grader's process has a lighter twin)."""
        return self


class Partition(Rule):
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


class FormOnly(Rule):
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
            num = as_number(got)
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
        return self.problem(got) or "give an answer in the form asked for"

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
