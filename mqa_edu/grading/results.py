"""What a batch writes: one JSON per student, grades.csv, the free-text sheet, Gradescope's results.json and the
manifest. Every file is written whole or not at all, and no CSV cell is one a spreadsheet would run."""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

from . import GRADER_VERSION
from .scoring import cap
from .submissions import printable


def atomic_write(path: Path, text: str):
    """Write ``text`` whole or not at all: a reader (or an interrupted run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def gradescope(result: dict, exercise) -> dict:
    tests = [{"name": f"{qid} · {q.title}", "score": result["questions"][qid]["points"], "max_score": q.points,
              "output": "\n".join(result["questions"][qid]["messages"]), "visibility": "visible"}
             for qid, q in ((q.qid, q) for q in exercise.questions)]
    return {"score": result["total"], "output": "\n".join(result["messages"]) or result["status"],
            "execution_time": result.get("seconds"), "tests": tests}


def load_result(path: Path):
    """A result file the grader wrote earlier, or None if it is missing, too big or not what the grader writes."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 2**24:
            return None
        r = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    needed = ("submission", "file", "status", "questions", "total", "max", "seed", "sha256", "messages")
    return r if isinstance(r, dict) and all(k in r for k in needed) else None


def write_csv(out: Path, exercise, entries, isolation: str):
    """grades.csv: exactly one row per submitted file, from the result filed under its id for its current hash.
    ``entries``: (id, sha256 or a prefix of it) per submitted file."""
    rows = []
    for sid, digest in entries:
        r = load_result(out / "students" / f"{sid}.json")
        if r is None or not digest or not str(r.get("sha256", "")).startswith(digest):
            continue
        rows.append([r["submission"], printable(str(r["file"])), r["status"],
                     *[r["questions"].get(q.qid, {}).get("points", 0) for q in exercise.questions], r["total"],
                     r["max"], r["seed"], r["sha256"][:16], r.get("isolation", isolation),
                     cap(" | ".join(map(str, r["messages"])), 300)])
    header = ["submission", "file", "status", *[q.qid for q in exercise.questions], "total", "max", "seed", "sha256",
              "isolation", "messages"]
    _write_table(out / "grades.csv", header, rows)
    write_free_text(out, exercise, [sid for sid, digest in entries if digest])
    return len(rows)


FREE_TEXT_COLUMNS = ["submission", "question", "max_points", "points", "comment", "answer", "rubric"]


def part_columns(exercise) -> list[str]:
    """One column per rubric part, as many as the exercise's longest rubric has: part_1, part_2, ..."""
    most = max([len(q.rubric_parts) for q in exercise.questions if q.kind == "text"], default=0)
    return [f"part_{i}" for i in range(1, most + 1)]


def write_free_text(out: Path, exercise, ids):
    """free_text.csv: every free-text answer with its rubric, one row per submission and question, for the instructor
    to fill in a column per rubric part (``parts`` says what each is worth), or ``points`` alone, and ``comment``;
    ``mqa-grade-marks`` merges them back. Marks already merged are kept."""
    texts = [q for q in exercise.questions if q.kind == "text"]
    parts = part_columns(exercise)
    rows = []
    for sid in ids:
        r = load_result(out / "students" / f"{sid}.json")
        if r is None:
            continue
        for q in texts:
            mark = (r.get("marks") or {}).get(q.qid, {})
            answer = (r.get("free_text") or {}).get(q.qid)
            given = list(mark.get("parts") or [])
            shown = [given[i] if i < len(given) else "" for i in range(len(parts))]
            guide = " | ".join(f"part_{i}{f' ({label})' if label else ''}, up to {most}: {text}"
                               for i, (label, most, text) in enumerate(q.rubric_parts, 1))
            rows.append([sid, q.qid, q.points, mark.get("points", ""), *shown, mark.get("comment", ""),
                         "" if answer is None else answer, guide])
    header = [*FREE_TEXT_COLUMNS[:4], *parts, *FREE_TEXT_COLUMNS[4:6], "rubric"]
    _write_table(out / "free_text.csv", header, rows)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def safe_cell(value):
    """A CSV cell a spreadsheet shows as text: a string that would start a formula gets a leading apostrophe (the
    usual defence against CSV injection). Numbers are left as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def unsafe_cell(value: str) -> str:
    """The text :func:`safe_cell` protected, as it was (for reading the instructor's comments back)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def _write_table(path: Path, header, rows):
    """A CSV written whole or not at all (a reader never sees half a file), with no cell a spreadsheet would run."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows([safe_cell(v) for v in row] for row in rows)
    os.replace(tmp, path)


def write_manifest(out: Path, exercise, seed: int, isolation: str, subs):
    """manifest.json: what this folder's grades were computed with (the exercise, the seed of its hidden cases, the
    grader's version, the isolation) and, once the batch ends, every submitted file with its hash."""
    data = {"exercise": exercise.name, "seed": seed, "grader_version": GRADER_VERSION, "isolation": isolation,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0]}
    if subs is not None:
        data["submissions"] = [{"submission": s.sid, "file": printable(s.label), "sha256": s.digest} for s in subs]
    atomic_write(out / "manifest.json", json.dumps(data, indent=1))
