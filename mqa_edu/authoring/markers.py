"""The one parser of solution regions, shared by ``make_exercise`` (which replaces them) and ``release`` (which
checks that no line of them leaks), so the two cannot disagree about where a region starts and ends.

In a solution code cell, a region runs from a line ``# BEGIN SOLUTION: <hint>`` (the hint is optional) to a line
``# END SOLUTION``; regions do not nest, and every one is closed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<hint>.*))?$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")  # the text a student copy may never contain


@dataclass(frozen=True)
class Line:
    """One line of a cell: ``kind`` is "begin", "end", "solution" (inside a region) or "code" (outside)."""

    kind: str
    text: str
    indent: str = ""
    hint: str = ""


def lines(source: str, where: str = "cell") -> list[Line]:
    """Every line of ``source``, with what it is; a nested, unopened or unclosed region raises ValueError."""
    out, inside = [], False
    for n, text in enumerate(source.splitlines(), 1):
        begin = BEGIN.match(text)
        if begin:
            if inside:
                raise ValueError(f"{where}, line {n}: BEGIN SOLUTION inside another solution region")
            inside = True
            out.append(Line("begin", text, begin.group("indent"), (begin.group("hint") or "").strip()))
        elif END.match(text):
            if not inside:
                raise ValueError(f"{where}, line {n}: END SOLUTION without BEGIN SOLUTION")
            inside = False
            out.append(Line("end", text))
        else:
            out.append(Line("solution" if inside else "code", text))
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION is never closed")
    return out
