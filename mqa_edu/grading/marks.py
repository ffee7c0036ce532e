"""mqa-grade-marks: merge the instructor's marks for free-text answers back into a graded folder.

    mqa-grade submissions/ --out grades/          # writes grades/free_text.csv: answers, rubric, empty points
    (fill in part_1, part_2, ... (or points alone) and comment)
    mqa-grade-marks grades/ grades/free_text.csv  # updates students/*.json, gradescope/*/results.json, grades.csv

Every row is checked first (known submission, a free-text question of its exercise, each rubric part a number from 0
to that part's maximum, or points alone from 0 to the question's; points given with parts must be their sum); if any
row is wrong, nothing is changed and each bad row is named. Rows with nothing filled in are skipped. Marks live in
each student's result, so re-running mqa-grade (without --force) keeps them.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .registry import load_exercise
from .results import atomic_write, gradescope, load_result, unsafe_cell, write_csv
from .scoring import cap


def read_marks(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"submission", "question", "points"} <= set(rows[0]):
        raise SystemExit(f"{path}: needs the columns submission, question and points (as free_text.csv has)")
    return rows


def _number(raw: str):
    value = float(raw)
    return int(value) if value.is_integer() else value


def _row_points(n: int, row: dict, q) -> tuple:
    """(points, parts, problem) of one row: parts each within their maximum (``points``, if also given, must be their
    sum), or points alone within the question's maximum. (None, None, None) for a row with nothing filled in."""
    spec = q.rubric_parts
    raw_parts = [(row.get(f"part_{i}") or "").strip() for i in range(1, len(spec) + 1)]
    raw = (row.get("points") or "").strip()
    extra = [k for k, v in row.items() if k and k.startswith("part_") and k[5:].isdigit() and int(k[5:]) > len(spec)
             and (v or "").strip()]
    if extra:
        return None, None, f"line {n}: {q.qid} has {len(spec)} rubric part(s); {', '.join(sorted(extra))} must be empty"
    if any(raw_parts):
        parts = []
        for i, ((_, most, _), v) in enumerate(zip(spec, raw_parts), 1):
            try:
                value = _number(v) if v else 0
            except ValueError:
                return None, None, f"line {n}: part_{i} of {q.qid} must be a number from 0 to {most}, got {v!r}"
            if not 0 <= value <= most:
                return None, None, f"line {n}: part_{i} of {q.qid} must be from 0 to {most}, got {v}"
            parts.append(value)
        total = sum(parts)
        if raw:
            try:
                if _number(raw) != total:
                    return None, None, f"line {n}: points {raw} is not the sum of the parts ({total})"
            except ValueError:
                return None, None, f"line {n}: points must be a number from 0 to {q.points}, got {raw!r}"
        return total, parts, None
    if not raw:
        return None, None, None
    try:
        points = _number(raw)
    except ValueError:
        return None, None, f"line {n}: points must be a number from 0 to {q.points}, got {raw!r}"
    if not 0 <= points <= q.points:
        return None, None, f"line {n}: points must be from 0 to {q.points} for {q.qid}, got {raw}"
    return points, None, None


def merge(out: Path, marks_csv: Path) -> int:
    students = out / "students"
    results, problems, updates = {}, [], []
    for n, row in enumerate(read_marks(marks_csv), start=2):  # line 1 is the header
        sid, qid = (row.get("submission") or "").strip(), (row.get("question") or "").strip()
        if not (row.get("points") or "").strip() and not any((v or "").strip() for k, v in row.items()
                                                              if k and k.startswith("part_")):
            continue
        r = results.get(sid) or load_result(students / f"{sid}.json")
        if r is None:
            problems.append(f"line {n}: no graded submission {sid!r} in {students}")
            continue
        results[sid] = r
        exercise = load_exercise(r.get("exercise", "ex01_cache_sizing"))
        texts = {q.qid: q for q in exercise.questions if q.kind == "text"}
        if qid not in texts:
            problems.append(f"line {n}: question must be one of the free-text questions {sorted(texts)}, got {qid!r}")
            continue
        points, parts, problem = _row_points(n, row, texts[qid])
        if problem:
            problems.append(problem)
            continue
        updates.append((sid, qid, points, parts, cap(unsafe_cell(row.get("comment") or ""))))
    if problems:
        raise SystemExit("no marks were merged; fix these rows first:\n  " + "\n  ".join(problems))
    for sid, qid, points, parts, comment in updates:
        r = results[sid]
        r.setdefault("marks", {})[qid] = {"points": points, "comment": comment, **({"parts": parts} if parts else {})}
        q = r["questions"][qid]
        q["points"] = points
        q["messages"] = [f"marked by your instructor: {points}/{q['max']}"] + ([comment] if comment else [])
        r["total"] = sum(v["points"] for v in r["questions"].values())
    for sid in {u[0] for u in updates}:
        r = results[sid]
        exercise = load_exercise(r.get("exercise", "ex01_cache_sizing"))
        atomic_write(out / "gradescope" / sid / "results.json", json.dumps(gradescope(r, exercise), indent=1))
        atomic_write(students / f"{sid}.json", json.dumps(r, indent=1))
    if updates:  # the rows of grades.csv, in their order, each with its result's current marks
        exercise = load_exercise(results[updates[0][0]].get("exercise", "ex01_cache_sizing"))
        with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
            entries = [(row["submission"], row["sha256"]) for row in csv.DictReader(fh)]
        write_csv(out, exercise, entries, isolation="")
    return len(updates)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mqa-grade-marks", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the folder mqa-grade wrote (its --out)")
    ap.add_argument("marks", type=Path, help="free_text.csv with the points (and comment) columns filled in")
    a = ap.parse_args(argv)
    n = merge(a.out, a.marks)
    print(f"merged {n} mark(s) into {a.out / 'students'}, {a.out / 'gradescope'} and {a.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
