"""Make the student notebook from the solution notebook (the one source of truth).

    mqa-make-exercise solutions/ex01_cache_sizing.ipynb exercises/ex01_cache_sizing.ipynb
    mqa-make-exercise --check solutions/ exercises/      # exit 1 if exercises/ is out of date

In a solution code cell, each solution region (its markers are defined in markers.py) becomes
``raise NotImplementedError("<hint>")`` at the region's indentation. Outputs are stripped.

It also writes (or, with --check, checks) the public form of every graded exercise, mqa_edu/checks/public/<name>.json,
from its private definition: what check cells use (see mqa_edu/checks/public.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

from . import markers


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with each solution region replaced by ``raise NotImplementedError(<its hint>)``."""
    out = []
    for line in markers.lines(source, where):
        if line.kind == "begin":
            hint = line.hint or "replace this line with your solution"
            out.append(f"{line.indent}raise NotImplementedError({hint!r})")
        elif line.kind == "code":
            out.append(line.text)
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(solution)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"cell {i}")
            cell.outputs, cell.execution_count = [], None
    return nb


def render(solution_path: Path) -> str:
    nb = make_exercise(nbformat.read(solution_path, as_version=4))
    return nbformat.writes(nb) + "\n"


def render_public(name: str) -> str:
    """The public form of the exercise ``name`` as the text of its JSON file (deterministic: same input, same file)."""
    from ..checks.public import to_public
    from ..grading.registry import load_exercise

    return json.dumps(to_public(load_exercise(name), salt=f"mqa-edu:{name}"), indent=1, sort_keys=True) + "\n"


def sync_public(check: bool) -> list[str]:
    """Write each exercise's public file, or (check) list those that are out of date."""
    from ..checks.public import PUBLIC_DIR
    from ..grading.registry import EXERCISES

    return [str(p) for name in sorted(EXERCISES)
            if not _sync(p := PUBLIC_DIR / f"{name}.json", render_public(name), check)]


def _sync(path: Path, text: str, check: bool) -> bool:
    """Write ``text`` to ``path`` (check: only compare). True when the file is (now) up to date."""
    if check:
        return path.exists() and path.read_text() == text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mqa-make-exercise", description=__doc__.splitlines()[0])
    ap.add_argument("solution", type=Path, help="a solution notebook, or the solutions/ folder")
    ap.add_argument("exercise", type=Path, help="the student notebook to write, or the exercises/ folder")
    ap.add_argument("--check", action="store_true", help="only report whether the exercise is up to date")
    a = ap.parse_args(argv)
    pairs = ([(s, a.exercise / s.name) for s in sorted(a.solution.glob("*.ipynb"))] if a.solution.is_dir()
             else [(a.solution, a.exercise)])
    stale = [str(ex) for sol, ex in pairs if not _sync(ex, render(sol), a.check)]
    stale += sync_public(a.check)
    if stale:
        print("out of date with solutions/ or the exercise definitions: " + ", ".join(stale)
              + " (run mqa-make-exercise solutions/ exercises/)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
