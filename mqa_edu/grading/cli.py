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
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from . import GRADER_VERSION, sandbox, worker
from .cases import batch_seed, kernel_cases, make_cases
from .registry import EXERCISES, load_exercise
from .results import atomic_write, gradescope, load_result, write_csv, write_manifest
from .scoring import score
from .submissions import Submission, digest, discover, printable, submission_ids

REPO = Path(__file__).resolve().parents[2]


def grade_one(path: Path, exercise, args, cases: dict, view: Path | None = None) -> dict:
    """One submission against the batch's hidden cases (:func:`make_cases`: the same for every submission)."""
    with tempfile.TemporaryDirectory(prefix="mqa-grade-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        spec = {"notebook": str(path), "exercise": exercise.name, "cases_path": str(tmp / "cases.json"),
                "workdir": str(tmp), "view": str(view or ""),
                "cell_timeout": args.cell_timeout, "call_timeout": args.call_timeout, "timeout": args.timeout,
                "memory_mb": args.memory_mb, "output_limit_bytes": args.output_limit_kb * 1024,
                "n_calls": sum(len(c["cases"]) for c in cases.values()), "n_questions": len(cases),
                "forbidden_modules": list(exercise.forbidden_modules),
                "forbidden_paths": [str(REPO / p) for p in exercise.forbidden_paths],
                "sandbox": not args.no_sandbox}
        (tmp / "cases.json").write_text(json.dumps(kernel_cases(cases)))
        try:
            report = worker.run(spec)
        except Exception as exc:  # a bug of ours must not cost the batch: the row says what happened
            report = {"status": "error", "messages": [f"the grader failed on this submission: "
                                                      f"{type(exc).__name__}: {str(exc)[:300]}"]}
    return score(exercise, cases, report)


def not_graded(sub: Submission, exercise) -> dict:
    """The row of a file that could not be graded at all."""
    per_q = {q.qid: {"points": 0, "max": q.points, "messages": ["not graded"]} for q in exercise.questions}
    return {"status": "not_a_notebook_file", "total": 0, "max": exercise.total, "questions": per_q,
            "messages": [sub.problem], "free_text": {}, "seconds": 0}


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
    ap.add_argument("--seed", type=int, default=None,
                    help="the hidden cases of this batch: every submission meets the same ones (default: the seed in "
                         "OUT/manifest.json, so re-runs into the same folder meet the same cases all term; else a "
                         "fresh one). Results graded with another seed are graded again")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--follow-links", action="store_true",
                    help="grade a link in the submissions folder as the file it leads to (default: a row that names "
                         "the target, not graded; an unpacked zip keeps a link to a classmate's file as a link)")
    ap.add_argument("--no-sandbox", action="store_true",
                    help="grade without the bubblewrap sandbox (only where it cannot run, and only for trusted "
                         "submissions); the report and grades.csv say that isolation was off")
    args = ap.parse_args(argv)
    sys.dont_write_bytecode = True  # no .pyc of a hidden module is left for a later kernel to find
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    if not args.no_sandbox:
        problem = sandbox.sandbox_problem()
        if problem:
            raise SystemExit(f"mqa-grade runs every submission in a bubblewrap sandbox, but {problem}. "
                             f"{sandbox.INSTALL_HINT}.")
    isolation = "none (--no-sandbox)" if args.no_sandbox else "bubblewrap"
    if args.no_sandbox:
        print("WARNING: --no-sandbox: submissions run without isolation; a submission can read the hidden tests, "
              "other submissions and this machine's files.", file=sys.stderr)
    exercise = load_exercise(args.exercise)
    subs = submission_ids(discover(args.submissions, args.follow_links))
    out = args.out
    (out / "students").mkdir(parents=True, exist_ok=True)
    seed = batch_seed(out, exercise, args.seed)
    write_manifest(out, exercise, seed, isolation, subs=None)  # first: an interrupted run keeps its seed
    todo = []
    for sub in subs:
        sub.digest = None if sub.problem else digest(sub.path)
        prev = load_result(out / "students" / f"{sub.sid}.json")
        if prev is not None and not args.force and prev.get("sha256") == (sub.digest or f"not-graded:{sub.problem}") \
                and prev.get("grader_version") == GRADER_VERSION and prev.get("isolation") == isolation \
                and prev.get("seed") == seed:
            sub.digest = prev["sha256"]
            continue
        todo.append(sub)
    known = {f"{s.sid}.json" for s in subs}
    stale = sorted(p.name for p in (out / "students").glob("*.json") if p.name not in known)
    print(f"{len(subs)} submission(s), {len(todo)} to grade, {len(subs) - len(todo)} already graded", flush=True)
    if stale:
        print(f"ignored {len(stale)} result file(s) in {out / 'students'} that match no submitted file: "
              + ", ".join(stale[:5]) + (" ..." if len(stale) > 5 else ""), flush=True)

    view_dir = None if args.no_sandbox else Path(tempfile.mkdtemp(prefix="mqa-view-"))
    view = sandbox.public_view(view_dir, exercise.forbidden_paths) if view_dir else None

    cases = make_cases(exercise, seed)  # once for the batch: the same hidden cases for every submission

    def work(sub):
        t0 = time.perf_counter()
        if sub.problem:
            result, sub.digest = not_graded(sub, exercise), f"not-graded:{sub.problem}"
        else:
            result = grade_one(sub.path, exercise, args, cases, view)
            if sub.note:
                result["messages"].insert(0, sub.note)
        result.update(submission=sub.sid, exercise=exercise.name, file=printable(sub.label), sha256=sub.digest,
                      seed=seed,
                      grader_version=GRADER_VERSION, isolation=isolation,
                      wall_seconds=round(time.perf_counter() - t0, 2))
        atomic_write(out / "gradescope" / sub.sid / "results.json", json.dumps(gradescope(result, exercise),
                                                                                indent=1))
        atomic_write(out / "students" / f"{sub.sid}.json", json.dumps(result, indent=1))
        return sub.sid, result

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
        n = write_csv(out, exercise, [(s.sid, s.digest) for s in subs], isolation)
        print(f"\ninterrupted: {n} graded submission(s) kept in {out / 'grades.csv'}", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar.close()
        if view_dir:
            shutil.rmtree(view_dir, ignore_errors=True)
    n = write_csv(out, exercise, [(s.sid, s.digest) for s in subs], isolation)
    write_manifest(out, exercise, seed, isolation, subs)
    print(f"wrote {out / 'grades.csv'} ({n} rows) and {out / 'free_text.csv'} (answers to mark, with the rubric)"
          + ("; isolation was OFF (--no-sandbox)" if args.no_sandbox else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
