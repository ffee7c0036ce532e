"""mqa-grade: grade a folder of exercise notebooks.

    mqa-grade submissions/ --out grades/ --jobs 2

For each submission: a fresh kernel (its own process, memory limited, cells and the whole run time limited) runs the
notebook, calls the answers on hidden cases drawn fresh for this run, and returns the raw values; the grader judges
them here, in its own process, where no submission code ever runs. Results:
grades.csv (one row per submission), students/<id>.json (messages, free text), gradescope/<id>/results.json.
Each submission's result is written as soon as it is graded, so an interrupted run loses nothing; a re-run skips
what is already graded unless --force.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import json
import os
import random
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..checks.core import judge
from . import GRADER_VERSION, worker

EXERCISES = {"ex01_cache_sizing": "mqa_edu.checks.ex01_cache_sizing"}
REPO = Path(__file__).resolve().parents[2]


def load_exercise(name):
    if name not in EXERCISES:
        raise SystemExit(f"--exercise must be one of {sorted(EXERCISES)}, got {name!r}")
    return importlib.import_module(EXERCISES[name]).EXERCISE


def discover(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
        elif p.exists():
            found.append(p)
        else:
            raise SystemExit(f"no such file or folder: {p}")
    return found


def submission_ids(files) -> dict:
    """A readable, unique id per file: its path relative to the common folder, '/' -> '__'."""
    files = [f.resolve() for f in files]
    root = Path(os.path.commonpath([f.parent for f in files])) if files else Path(".")
    ids = {}
    for f in files:
        rel = f.relative_to(root).as_posix()
        base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in rel.replace("/", "__"))
        base = base[:-6] if base.endswith(".ipynb") else base
        sid, n = base, 2
        while sid in ids.values():
            sid, n = f"{base}-{n}", n + 1
        ids[f] = sid
    return ids


class _Opaque:
    """A returned value that was not a plain number or string (list, array, object)."""

    def __init__(self, d):
        self.type_name, self.text = d.get("__opaque__", "object"), d.get("repr", "")

    def __repr__(self):
        return self.text


def _value(v):
    return _Opaque(v) if isinstance(v, dict) and "__opaque__" in v else v


def score(exercise, cases: dict, report: dict) -> dict:
    """Judge the raw values of a worker report; the only place points are computed."""
    per_q, messages, free_text = {}, list(report.get("messages", [])), {}
    answers = report.get("answers", {})
    for q in exercise.questions:
        got = answers.get(q.qid)
        lines, pts = [], 0
        if got is None:
            lines.append("not collected (the notebook did not run to the end)" if report["status"] not in
                         ("invalid_notebook", "wrong_exercise", "empty") else "not graded")
        elif got.get("missing"):
            close = f" (found {got['close'][0]!r}: rename it to {q.answer_name!r})" if got.get("close") else ""
            lines.append(f"{q.answer_name} is not defined{close}")
        elif got.get("not_answered"):
            lines.append("not answered (still raises NotImplementedError)")
        elif q.kind == "text":
            text = got["results"][0]["value"] if got["results"] else None
            free_text[q.qid] = text if isinstance(text, str) else None
            lines.append("collected for the instructor" if isinstance(text, str) else "no text given")
        else:
            results = got["results"]
            used = sorted({u for r in results for u in r.get("used", [])})
            verdicts = [judge(q, tuple(case), _value(r["value"]), r["error"])
                        for case, r in zip(cases[q.qid]["cases"], results)]
            passed = sum(ok for ok, _ in verdicts)
            if used:
                lines.append("scores 0: the answer calls the course's own code (" + ", ".join(used) + "); graded "
                             "answers must be written from scratch")
            elif passed == len(cases[q.qid]["cases"]) and len(results) == passed:
                pts = q.points
            lines.append(f"{passed}/{len(cases[q.qid]['cases'])} hidden checks passed")
            lines += [msg for ok, msg in verdicts if not ok][:3]
        per_q[q.qid] = {"points": pts, "max": q.points, "messages": lines}
    total = sum(v["points"] for v in per_q.values())
    for e in report.get("cell_errors", [])[:5]:
        messages.append(f"cell {e['cell']}: {e['error']}")
    return {"status": report["status"], "total": total, "max": exercise.total, "questions": per_q,
            "messages": messages, "free_text": free_text, "seconds": report.get("seconds")}


def make_cases(exercise, seed: int) -> dict:
    rng = random.Random(seed)
    return {q.qid: {"answer_name": q.answer_name, "kind": q.kind, "cases": [list(c) for c in q.cases(rng, True)]}
            for q in exercise.questions}


def grade_one(path: Path, exercise, args, seed: int) -> dict:
    cases = make_cases(exercise, seed)
    with tempfile.TemporaryDirectory(prefix="mqa-grade-") as tmp:
        tmp = Path(tmp)
        spec = {"notebook": str(path), "exercise": exercise.name, "cases_path": str(tmp / "cases.json"),
                "result_path": str(tmp / f"answers-{secrets.token_hex(8)}.json"), "workdir": str(tmp),
                "cell_timeout": args.cell_timeout, "call_timeout": args.call_timeout, "timeout": args.timeout,
                "memory_mb": args.memory_mb, "output_limit_bytes": args.output_limit_kb * 1024,
                "n_calls": sum(len(c["cases"]) for c in cases.values()),
                "forbidden_modules": list(exercise.forbidden_modules),
                "forbidden_paths": [str(REPO / p) for p in exercise.forbidden_paths]}
        (tmp / "cases.json").write_text(json.dumps(cases))
        try:
            report = worker.run(spec)
        except Exception as exc:  # a bug of ours must not cost the batch: the row says what happened
            report = {"status": "error", "messages": [f"the grader failed on this submission: "
                                                      f"{type(exc).__name__}: {str(exc)[:300]}"]}
    return score(exercise, cases, report)


def _atomic_write(path: Path, text: str):
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


def write_csv(out: Path, exercise):
    rows = []
    for f in sorted((out / "students").glob("*.json")):
        r = json.loads(f.read_text())
        rows.append([r["submission"], r["file"], r["status"],
                     *[r["questions"][q.qid]["points"] for q in exercise.questions], r["total"], r["max"], r["seed"],
                     r["sha256"][:16], " | ".join(r["messages"])[:300]])
    header = ["submission", "file", "status", *[q.qid for q in exercise.questions], "total", "max", "seed", "sha256",
              "messages"]
    tmp = out / "grades.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, out / "grades.csv")
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mqa-grade", description=__doc__.splitlines()[0])
    ap.add_argument("submissions", nargs="+", help="notebooks, or folders searched for *.ipynb")
    ap.add_argument("--out", required=True, type=Path, help="folder for grades.csv, students/, gradescope/")
    ap.add_argument("--exercise", default="ex01_cache_sizing", help=f"one of {sorted(EXERCISES)}")
    ap.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    ap.add_argument("--force", action="store_true", help="re-grade submissions already graded")
    ap.add_argument("--cell-timeout", type=int, default=60, help="seconds per notebook cell")
    ap.add_argument("--call-timeout", type=float, default=10.0, help="seconds per call of a graded function")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per submission in all")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the notebook's kernel")
    ap.add_argument("--output-limit-kb", type=int, default=2048, help="notebook output kept per submission")
    ap.add_argument("--seed", type=int, default=None, help="replay the hidden cases of an earlier run")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    exercise = load_exercise(args.exercise)
    files = discover(args.submissions)
    ids = submission_ids(files)
    out = args.out
    (out / "students").mkdir(parents=True, exist_ok=True)
    todo = []
    for f, sid in ids.items():
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        prev = out / "students" / f"{sid}.json"
        if prev.exists() and not args.force:
            try:
                old = json.loads(prev.read_text())
                if old.get("sha256") == digest and old.get("grader_version") == GRADER_VERSION:
                    continue
            except json.JSONDecodeError:
                pass
        todo.append((f, sid, digest))
    print(f"{len(files)} submission(s), {len(todo)} to grade, {len(files) - len(todo)} already graded", flush=True)

    def work(item):
        f, sid, digest = item
        seed = args.seed if args.seed is not None else secrets.randbits(63)
        t0 = time.perf_counter()
        result = grade_one(f, exercise, args, seed)
        result.update(submission=sid, file=str(f), sha256=digest, seed=seed, grader_version=GRADER_VERSION,
                      wall_seconds=round(time.perf_counter() - t0, 2))
        _atomic_write(out / "gradescope" / sid / "results.json", json.dumps(gradescope(result, exercise), indent=1))
        _atomic_write(out / "students" / f"{sid}.json", json.dumps(result, indent=1))
        return sid, result

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="submission", file=sys.stderr)
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for fut in as_completed([pool.submit(work, t) for t in todo]):
                sid, result = fut.result()
                if bar:
                    bar.update(1)
                    bar.set_postfix_str(f"{sid}: {result['total']}/{result['max']} {result['status']}")
    except KeyboardInterrupt:
        n = write_csv(out, exercise)
        print(f"\ninterrupted: {n} graded submission(s) kept in {out / 'grades.csv'}", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar.close()
    n = write_csv(out, exercise)
    print(f"wrote {out / 'grades.csv'} ({n} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
