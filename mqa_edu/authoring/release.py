"""mqa-release: write the student copy of the course, without the answers (nbgrader's source -> release split).

    mqa-release OUT_DIR            # a fresh folder; --force replaces an existing one
    mqa-release OUT_DIR --source git+https://github.com/you/course   # Colab installs from your published copy

It copies the course's files (those git tracks, or, outside a git checkout, every file but caches and environments)
and leaves out what only an instructor may see:
- ``solutions/``: the solution notebooks;
- ``mqa_edu/grading/exercises/``: the private exercise definitions (references, hidden-case generators, mistake
  models). Check cells keep working: they use the public forms in ``mqa_edu/checks/public/``;
- the tests and benchmark that need those (:data:`PRIVATE_TESTS`, ``benchmarks/grader_bench.py``).
Then it checks the copy: no private path, no solution region, no line of any solution region's code anywhere in
it, and no fixed graded answer written next to its subject (Falcon-7B's bytes per token, in any usual form).
The copy passes its own test suite and runs every notebook; the instructor grades from the full copy.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from ..grading.registry import EXERCISES, exercise_tests
from . import markers

REPO = Path(__file__).resolve().parents[2]

# the tests that import a private definition or read the solutions (tests/test_release.py checks that no other does)
PRIVATE_TESTS = ("tests/test_grading.py", "tests/test_check_cells.py", "tests/test_public_checks.py",
                 "tests/test_release.py", "tests/test_grader_sandbox.py", "tests/test_grader_holes.py",
                 "tests/test_exercises.py", *sorted(map(exercise_tests, EXERCISES)))
PRIVATE = ("solutions", "mqa_edu/grading/exercises", *PRIVATE_TESTS, "benchmarks/grader_bench.py")
SKIP_PARTS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints", "grading_out",
              "build", "dist"}


def course_files(repo: Path = REPO) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
        files = [Path(p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p.relative_to(repo) for p in repo.rglob("*") if p.is_file()]
    return [f for f in files if not SKIP_PARTS & set(f.parts) and not f.name.endswith(".egg-info")
            and (repo / f).is_file()]


def is_private(rel: Path) -> bool:
    text = rel.as_posix()
    return any(text == p or text.startswith(p + "/") for p in PRIVATE)


def solution_lines(repo: Path = REPO) -> set[str]:
    """Every substantial line of code inside a solution region of a solution notebook."""
    import nbformat

    lines = set()
    for nb_path in sorted((repo / "solutions").rglob("*.ipynb")):  # exercises, and the lectures' full versions
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            for line in markers.lines(cell.source, f"{nb_path.name}, cell {i}"):
                stripped = line.text.strip()
                if line.kind == "solution" and len(stripped) >= 20 and not stripped.startswith("#"):
                    lines.add(stripped)
    return lines


def leaks(out: Path, secret_lines: set[str], private_digests: set[str]) -> list[str]:
    """What in ``out`` should not be there: private paths, solution markers, solution code, private files' content."""
    found = []
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(out)
        if is_private(rel):
            found.append(f"{rel}: a private path")
            continue
        data = p.read_bytes()
        if hashlib.sha256(data).hexdigest() in private_digests:
            found.append(f"{rel}: a copy of a private file")
        text = data.decode("utf-8", "replace")
        # a solution region in a notebook or a module (markers.py, the one parser of regions, names them)
        if p.suffix in (".ipynb", ".py") and rel.as_posix() != "mqa_edu/authoring/markers.py":
            for m in markers.MARKERS:
                if m in text:
                    found.append(f"{rel}: contains {m!r}")
        for line in secret_lines:
            if line in text:
                found.append(f"{rel}: contains solution code {line[:60]!r}")
                break
    return found


def fixed_answers() -> list:
    """(question id, subject, answer) for every graded question with one fixed answer and a subject (the name that
    gives the answer away when it stands next to it), from the private definitions."""
    import importlib

    found = []
    for module in EXERCISES.values():
        for q in importlib.import_module(module).EXERCISE.questions:
            if q.kind != "value" or not q.subject or q.hidden_cases is not None:
                continue
            try:
                cases = q.cases(None, True)
                value = q.reference(*cases[0]) if len(cases) == 1 else None
            except Exception:
                continue
            if isinstance(value, (int, float, list)) and not isinstance(value, bool):
                found.append((q.qid, q.subject, value))
    return found


def answer_forms(value) -> list[str]:
    """The ways a person would write ``value`` in prose or a table: digits grouped or not, a few roundings."""
    import re

    if isinstance(value, list):
        return [", ".join(map(str, value))]
    if isinstance(value, int):
        plain = str(abs(value))
        return sorted({plain, f"{abs(value):,}", f"{abs(value):_}", f"{abs(value):,}".replace(",", " "),
                       f"{abs(value):,}".replace(",", "\u202f"), f"{abs(value):,}".replace(",", "\u2009")})
    forms = {f"{abs(value):.2f}", f"{abs(value):.3f}", f"{abs(value):.3g}"}
    short = repr(abs(value))
    if re.fullmatch(r"\d+\.\d{1,2}", short):  # 3.5 is written 3.5
        forms.add(short)
    return sorted(forms)


def answer_leaks(out: Path, window: int = 200) -> list[str]:
    """Places in ``out`` where a fixed graded answer is written within ``window`` characters of its subject
    (Falcon-7B's bytes per token, say), in any of :func:`answer_forms`."""
    import re

    found = []
    answers = [(qid, subject, re.compile(rf"(?<![\w-]){re.escape(subject)}(?![\w])"),
                [re.compile(rf"(?<![\d.,_]){re.escape(f)}(?![\d_]|[.,]\d)") for f in answer_forms(value)])
               for qid, subject, value in fixed_answers()]
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.suffix in (".safetensors", ".png", ".gguf") or p.stat().st_size > 2**22:
            continue
        text = p.read_bytes().decode("utf-8", "replace")
        for qid, name, subject, forms in answers:
            spots = [m.start() for m in subject.finditer(text)]
            if not spots:
                continue
            for form in forms:
                hit = next((m for m in form.finditer(text)
                            if any(abs(m.start() - s) <= window for s in spots)), None)
                if hit:
                    line = text.count("\n", 0, hit.start()) + 1
                    found.append(f"{p.relative_to(out)}:{line}: the answer to {qid} ({hit.group(0)!r}) next to "
                                 f"{name!r}")
                    break
    return found


def point_setup_cells(out: Path, source: str) -> int:
    """Make every notebook's set-up cell in ``out`` install the course from ``source``; returns how many changed."""
    import nbformat

    from mqa_edu.authoring.setup_cell import check_source, is_setup_cell, setup_source

    check_source(source)
    changed = 0
    for path in sorted(out.rglob("*.ipynb")):
        text = setup_source(path.stem, source)
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and is_setup_cell(cell.source) and cell.source != text:
                cell.source = text
                nbformat.write(nb, path)
                changed += 1
                break
    return changed


def release(out: Path, repo: Path = REPO, force: bool = False, source: str | None = None) -> list[Path]:
    if out.exists():
        if not force:
            raise SystemExit(f"{out} exists: choose a new folder or pass --force")
        shutil.rmtree(out)
    files = course_files(repo)
    kept = [f for f in files if not is_private(f)]
    for f in kept:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / f, out / f)
    private = {hashlib.sha256((repo / f).read_bytes()).hexdigest() for f in files if is_private(f)
               and (repo / f).stat().st_size > 200}
    if source is not None:
        point_setup_cells(out, source)
    found = leaks(out, solution_lines(repo), private) + answer_leaks(out)
    if found:
        raise SystemExit("the student release would leak:\n  " + "\n  ".join(found))
    (out / "STUDENT_RELEASE.md").write_text(
        "# Student release\n\nThis copy of the course was written by `mqa-release`. It has no solutions, no hidden "
        "tests and no reference answers; check cells give immediate feedback from public checks. Your grade comes "
        "from hidden tests your instructor runs.\n")
    return kept


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mqa-release", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the folder to write the student copy to")
    ap.add_argument("--force", action="store_true", help="replace the folder if it exists")
    ap.add_argument("--source", help="where the notebooks' set-up cell installs the course from when it is missing "
                    "(Colab): a pip-installable URL of this release once published, e.g. git+https://github.com/you/"
                    "course; default: mqa_edu.authoring.setup_cell.SOURCE")
    a = ap.parse_args(argv)
    if a.source is not None:
        from mqa_edu.authoring.setup_cell import check_source
        try:
            check_source(a.source)
        except ValueError as e:
            ap.error(f"--source: {e}")
    kept = release(a.out, force=a.force, source=a.source)
    print(f"wrote {len(kept)} files to {a.out}; left out: {', '.join(PRIVATE)}; checked: nothing private leaked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
