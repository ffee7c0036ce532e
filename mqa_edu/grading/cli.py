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
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..checks.collect import fingerprint, resolve
from ..checks.core import judge, matches
from . import GRADER_VERSION, sandbox, worker
from .registry import EXERCISES  # derived: the modules in grading/exercises/

REPO = Path(__file__).resolve().parents[2]


def load_exercise(name):
    if name not in EXERCISES:
        raise SystemExit(f"--exercise must be one of {sorted(EXERCISES)}, got {name!r}")
    try:
        return importlib.import_module(EXERCISES[name]).EXERCISE
    except ModuleNotFoundError:
        raise SystemExit(f"this copy of the course has no private definition of {name} (a student release?): "
                         "grade from the instructor's full copy") from None


class Submission:
    """One file found in the submissions: where it is, the id its results are filed under, and, when it cannot be
    graded at all (a folder or pipe named like a notebook, a link leading outside the folder), why not."""

    def __init__(self, path: Path, label: str, problem: str | None = None):
        self.path, self.label, self.problem = path, label, problem
        self.sid, self.note = "", None


def _printable(text: str) -> str:
    """A file name as text that can be written anywhere (non-UTF-8 bytes and control characters escaped)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def discover(paths, follow_links: bool = False) -> list[Submission]:
    """Every *.ipynb under the given folders (or the given files), without following links out of them.

    Regular files are graded. A link gets a row that names where it leads; it is graded (as the file it leads to)
    only with ``follow_links`` and only when it leads to a regular file inside the same folder: an unpacked zip keeps
    a link to a classmate's file as a link. Anything else named like a notebook (a folder, a pipe, a device, a dangling
    link) still gets a row that says why it was not graded. Nothing here reads a file's content."""
    found = []
    for arg in map(Path, paths):
        if arg.is_dir() and not arg.is_symlink():
            root = arg.resolve()
            for dirpath, dirnames, filenames in os.walk(arg, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d != ".ipynb_checkpoints")
                here = Path(dirpath)
                for name in sorted(filenames) + [d for d in dirnames if d.endswith(".ipynb")]:
                    if name.endswith(".ipynb"):
                        found.append(_classify(here / name, root, arg, follow_links))
                dirnames[:] = [d for d in dirnames if not d.endswith(".ipynb")]
        elif arg.exists() or arg.is_symlink():
            found.append(_classify(arg, arg.parent.resolve(), arg.parent, follow_links))
        else:
            raise SystemExit(f"no such file or folder: {arg}")
    return found


def _classify(path: Path, root: Path, shown_root: Path, follow_links: bool) -> Submission:
    import stat

    try:
        label = path.relative_to(shown_root).as_posix()
    except ValueError:
        label = path.name
    try:
        st = os.lstat(path)
    except OSError as exc:
        return Submission(path, label, f"cannot be read: {type(exc).__name__}")
    link_note = None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return Submission(path, label, "a link that leads nowhere: not graded")
        try:
            shown = target.relative_to(root).as_posix()
        except ValueError:
            return Submission(path, label, "a link to a file outside the submissions folder: not graded")
        if not follow_links:
            return Submission(path, label, f"a link to {_printable(shown)}: not graded (that file has its own row; "
                                           "pass --follow-links to grade links as the files they lead to)")
        link_note = f"a link: graded as the file it leads to, {_printable(shown)}"
        st = os.stat(target)
    if stat.S_ISDIR(st.st_mode):
        return Submission(path, label, "a folder named like a notebook: not graded")
    if not stat.S_ISREG(st.st_mode):
        return Submission(path, label, "not a regular file (a pipe, socket or device): not graded")
    sub = Submission(path, label)
    sub.note = link_note
    return sub


def submission_ids(subs: list[Submission]) -> list[Submission]:
    """A readable, unique, safe id per submission from its path inside the submissions folder: '/' -> '__', only
    letters, digits, '-', '_' and '.', never starting with '.', so it can name a file in any folder."""
    taken = set()
    for sub in subs:
        rel = sub.label[:-6] if sub.label.endswith(".ipynb") else sub.label
        base = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in rel.replace("/", "__"))
        base = base.lstrip(".-")[:120] or "submission"  # never hidden, never an option or a spreadsheet formula
        sid, n = base, 2
        while sid.lower() in taken:
            sid, n = f"{base}-{n}", n + 1
        taken.add(sid.lower())
        sub.sid = sid
    return subs


class _Opaque:
    """A returned value that was not a plain number or string (list, array, object)."""

    def __init__(self, d):
        self.type_name, self.text = d.get("__opaque__", "object"), d.get("repr", "")

    def __repr__(self):
        return self.text


def _value(v):
    return _Opaque(v) if isinstance(v, dict) and "__opaque__" in v else v


MESSAGE_LIMIT = 500  # characters of one message the grader writes
TEXT_LIMIT = 20_000  # characters of one free-text answer kept


def cap(text, limit: int = MESSAGE_LIMIT) -> str:
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit:,} more characters cut]"


def score(exercise, cases: dict, report: dict) -> dict:
    """Judge the raw values of a worker report; the only place points are computed. Everything in the report came
    back from a kernel that ran student code, so each question is judged on its own: whatever is wrong with one
    answer costs that question only."""
    per_q, messages, free_text = {}, [cap(m) for m in report.get("messages", [])], {}
    answers = report.get("answers", {})
    for q in exercise.questions:
        try:
            per_q[q.qid], text = _score_question(q, answers.get(q.qid), cases, report["status"], exercise, answers)
        except Exception as exc:  # a malformed entry: this question only
            per_q[q.qid], text = {"points": 0, "max": q.points, "messages": [
                cap(f"the answer could not be judged ({type(exc).__name__}): the notebook interfered with it")]}, None
        if q.kind == "text":
            free_text[q.qid] = text
    total = sum(v["points"] for v in per_q.values())
    for e in report.get("cell_errors", [])[:5]:
        messages.append(cap(f"cell {e['cell']}: {e['error']}"))
    return {"status": report["status"], "total": total, "max": exercise.total, "questions": per_q,
            "messages": messages, "free_text": free_text, "seconds": report.get("seconds")}


def _results(got, n: int):
    """The list of n result objects of a collected answer, or None where there is none to judge."""
    if not isinstance(got, dict) or got.get("missing") or got.get("not_answered"):
        return None
    results = got.get("results")
    if not isinstance(results, list) or len(results) != n or not all(isinstance(r, dict) for r in results):
        return None
    return results


def _one_value(results) -> bool:
    """Whether an answer returned the same value for every one of its (two or more) cases."""
    return len(results) > 1 and len({json.dumps(r.get("value"), sort_keys=True, default=str) for r in results}) == 1


def _earlier_values(q, cases: dict, exercise, answers: dict):
    """For a question that builds on an earlier one: per case, the student's earlier values at the inputs it uses, as
    the grader collected them (they are hidden cases of the earlier question, judged there). None per case, or for
    the whole question, where no credit may follow from them: the earlier answer is missing, raises, is a constant,
    or is right on every case drawn at random (a function that is wrong only at the fixed inputs later questions
    use, which anyone can read in the exercise, is wrong there on purpose, and earns nothing here)."""
    if q.cascade is None or q.cascade.combine is None:
        return None
    dep = exercise.question(q.cascade.on)
    dep_cases = cases[dep.qid]["cases"]
    results = _results(answers.get(dep.qid), len(dep_cases))
    if results is None or any(r.get("error") is not None for r in results):
        return None
    values = [_value(r.get("value")) for r in results]
    if _one_value(results):
        return None  # a constant where the question needs a computation
    fixed = set(cases[dep.qid].get("fixed", ()))  # what later questions build on, and their decoys
    if all(judge(dep, resolve(dep_cases[i]), values[i])[0] for i in range(len(dep_cases)) if i not in fixed):
        return None
    return [[values[i] for i in idx] for idx in cases[q.qid]["uses"]]


def _score_question(q, got, cases, status, exercise, answers):
    """({points, max, messages}, free text or None) for one question; raises on a malformed entry."""
    lines, pts, text = [], 0, None
    if got is not None and not isinstance(got, dict):
        raise TypeError("the entry is not an object")
    if got is None:
        lines.append("not collected (the notebook did not run to the end)" if status not in
                     ("invalid_notebook", "wrong_exercise", "empty") else "not graded")
    elif got.get("missing"):
        close = (f" (found {cap(str(got['close'][0]), 80)!r}: rename it to {q.answer_name!r})"
                 if got.get("close") else "")
        lines.append(f"{q.answer_name} is not defined{close}")
    elif got.get("not_answered"):
        lines.append("not answered (still raises NotImplementedError)")
    elif q.kind == "text":
        value = got["results"][0]["value"] if got["results"] else None
        text = cap(value, TEXT_LIMIT) if isinstance(value, str) else None
        lines.append(("collected for the instructor" + (f" (marked by hand, {q.points} points)" if q.points else ""))
                     if text is not None else "no text given")
    else:
        results = got["results"]
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise TypeError("results is not a list of objects")
        own = cases[q.qid]["cases"]
        earlier = _earlier_values(q, cases, exercise, answers) if q.cascade else None
        dep = exercise.question(q.cascade.on) if q.cascade else None
        verdicts = [_judge_one(q, resolve(case), r, dep, earlier[i] if earlier else None,
                               [resolve(cases[dep.qid]["cases"][j]) for j in cases[q.qid]["uses"][i]] if earlier
                               else None)
                    for i, (case, r) in enumerate(zip(own, results))]
        passed, n = sum(ok for ok, _ in verdicts), len(own)
        if _constant_where_computed(q, own, results):
            lines.append(f"{q.answer_name} returns the same value for every input, where the answers differ: a "
                         "constant earns nothing")
        elif len(results) == n and n:
            pts = round(q.points * passed / n)  # partial credit: the share of hidden cases passed
        lines.append(f"{passed}/{n} hidden checks passed")
        cascaded = [msg for ok, msg in verdicts if ok and "counted in" in msg]
        lines += [cap(msg) for ok, msg in verdicts if not ok][:3] + cascaded[:1]
    return {"points": pts, "max": q.points, "messages": lines}, text


def _constant_where_computed(q, cases, results) -> bool:
    """A function that returns one value for every hidden input, where the reference's values differ: a guess that
    may match a case by chance (7 is a plausible batch size), not a computation."""
    if q.kind != "function" or len(cases) < 3:
        return False
    if any(r.get("error") is not None for r in results):
        return False
    if not _one_value(results):
        return False
    try:
        expected = {json.dumps(q.reference(*resolve(c)), sort_keys=True, default=str) for c in cases}
    except Exception:
        return False
    return len(expected) > 1


def _judge_one(q, case, r, dep=None, values=None, probes=None):
    """One hidden case: a value that cannot be compared or printed fails this case, with a message. A wrong value
    that is exactly what this step gives on top of the student's own (wrong) earlier answer passes: the mistake is
    counted in the earlier question, and its hint is not repeated here as if this step were wrong. ``values``: the
    student's earlier values at ``probes``, from :func:`_earlier_values`."""
    error = r.get("error")
    try:
        ok, msg = judge(q, tuple(case), _value(r.get("value")), None if error is None else cap(str(error)))
        if ok or error is not None or dep is None or values is None:
            return ok, msg
        if any(isinstance(v, (dict, list, bool, str, _Opaque)) or v is None for v in values):
            return ok, msg
        earlier_right = all(matches(v, dep.reference(*p), dep.rel_tol) for v, p in zip(values, probes))
        if not earlier_right and matches(_value(r.get("value")), q.cascade.combine(tuple(case), values), q.rel_tol):
            return True, (f"{q.answer_name}: right given your {dep.answer_name} (wrong for this input; counted in "
                          f"{dep.qid} only)")
        return ok, msg
    except Exception as exc:
        return False, f"the returned value could not be judged ({type(exc).__name__})"


POOL = 4  # a function question's hidden cases are chosen from this many draws of its generator


def reveals(q, mistake, case) -> bool:
    """Whether ``case`` tells ``mistake`` from the right answer."""
    try:
        return not matches(mistake.fn(*case), q.reference(*case), q.rel_tol)
    except Exception:  # a mistake model that does not apply to this case
        return False


def designed_cases(q, rng) -> list:
    """A question's hidden cases, designed rather than only drawn: from POOL draws of its generator (which already
    mixes its edge cases in), first one case that reveals each known mistake, in the order the mistakes are listed,
    then the rest in the order drawn, as many as one draw gives. So partial credit measures the work, not the luck
    of the draw: every known mistake costs at least one hidden case."""
    first = q.cases(rng, True)
    if q.kind != "function" or not q.mistakes:
        return first
    pool = first + [c for _ in range(POOL - 1) for c in q.cases(rng, True)]
    chosen = []
    for m in q.mistakes:
        hit = next((i for i, c in enumerate(pool) if i not in chosen and reveals(q, m, c)), None)
        if hit is not None:
            chosen.append(hit)
    chosen += [i for i in range(len(pool)) if i not in chosen][:max(0, len(first) - len(chosen))]
    return [pool[i] for i in sorted(chosen)]


def make_cases(exercise, seed: int) -> dict:
    """Per question: the hidden cases, drawn from ``seed``. Every input that a later question builds on (its
    cascade's probes), and its decoys, is a hidden case of the earlier question too, called and judged there like any
    other, in an order shuffled with the rest; ``uses`` says, per case of the later question, which of the earlier
    question's cases it builds on, and ``fixed`` which of a question's cases are such fixed inputs (the rest are drawn
    at random). The kernel is told nothing but the inputs (see :func:`kernel_cases`)."""
    rng = random.Random(seed)
    spec = {q.qid: {"answer_name": q.answer_name, "kind": q.kind, "cases": [list(c) for c in designed_cases(q, rng)]}
            for q in exercise.questions}

    def index(dep, inputs):
        where = dep.setdefault("_where", {json.dumps(c): i for i, c in enumerate(dep["cases"])})
        key = json.dumps(list(inputs))
        if key not in where:
            where[key] = len(dep["cases"])
            dep["cases"].append(list(inputs))
        dep.setdefault("fixed", set()).add(where[key])  # a fixed input, known to anyone who reads the exercise
        return where[key]

    for q in reversed(exercise.questions):  # later first: a question's cases are complete before its own probes
        if q.cascade is None:
            continue
        earlier = exercise.question(q.cascade.on)
        dep = spec[earlier.qid]
        probes = [list(p) for case in spec[q.qid]["cases"] for p in q.cascade.probes(*case)]
        spec[q.qid]["uses"] = [[index(dep, p) for p in q.cascade.probes(*case)] for case in spec[q.qid]["cases"]]
        decoys = [list(d) for d in q.cascade.decoys()]
        for decoy in decoys:
            index(dep, decoy)
        # the stand-in for a raising or missing earlier answer: the reference's values at these inputs only
        inputs = {fingerprint(i): i for i in map(resolve, [*probes, *decoys, *q.cascade.stand_in()])}
        spec[q.qid]["fallback"] = {"name": earlier.answer_name,
                                   "table": [[k, earlier.reference(*i)] for k, i in sorted(inputs.items())]}
    for q in exercise.questions:  # shuffle each question's cases, and point the later questions' uses at the new places
        mine = spec[q.qid]
        mine.pop("_where", None)
        order = list(range(len(mine["cases"])))
        if q.cascade is not None or any(o.cascade and exercise.question(o.cascade.on) is q for o in exercise.questions):
            rng.shuffle(order)
        moved_to = {old: new for new, old in enumerate(order)}
        mine["cases"] = [mine["cases"][i] for i in order]
        mine["fixed"] = sorted(moved_to[i] for i in mine.get("fixed", ()))
        if "uses" in mine:
            mine["uses"] = [mine["uses"][i] for i in order]
        for later in exercise.questions:
            if later.cascade and exercise.question(later.cascade.on) is q:
                spec[later.qid]["uses"] = [[moved_to[i] for i in idx] for idx in spec[later.qid]["uses"]]
    return spec


def kernel_cases(spec: dict) -> dict:
    """What the kernel is told: each answer's name, kind and inputs, and for a later answer the stand-in values of
    the earlier one at the fixed inputs it builds on (used only if the student's earlier function raises there);
    nothing about how they are judged."""
    return {qid: {k: v[k] for k in ("answer_name", "kind", "cases", "fallback") if k in v} for qid, v in spec.items()}


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
        rows.append([r["submission"], _printable(str(r["file"])), r["status"],
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


def batch_seed(out: Path, exercise, seed: int | None) -> int:
    """The seed of this batch's hidden cases: ``seed`` if given, else the one this output folder's manifest recorded
    for the same exercise (a term's re-runs meet the same cases), else a fresh one."""
    if seed is not None:
        return seed
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("exercise") == exercise.name and isinstance(manifest.get("seed"), int):
            return manifest["seed"]
    except (OSError, ValueError, AttributeError):
        pass
    return secrets.randbits(63)


def write_manifest(out: Path, exercise, seed: int, isolation: str, subs):
    """manifest.json: what this folder's grades were computed with (the exercise, the seed of its hidden cases, the
    grader's version, the isolation) and, once the batch ends, every submitted file with its hash."""
    data = {"exercise": exercise.name, "seed": seed, "grader_version": GRADER_VERSION, "isolation": isolation,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0]}
    if subs is not None:
        data["submissions"] = [{"submission": s.sid, "file": _printable(s.label), "sha256": s.digest} for s in subs]
    _atomic_write(out / "manifest.json", json.dumps(data, indent=1))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


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
        sub.digest = None if sub.problem else _digest(sub.path)
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
        result.update(submission=sub.sid, exercise=exercise.name, file=_printable(sub.label), sha256=sub.digest,
                      seed=seed,
                      grader_version=GRADER_VERSION, isolation=isolation,
                      wall_seconds=round(time.perf_counter() - t0, 2))
        _atomic_write(out / "gradescope" / sub.sid / "results.json", json.dumps(gradescope(result, exercise),
                                                                                indent=1))
        _atomic_write(out / "students" / f"{sub.sid}.json", json.dumps(result, indent=1))
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
    print(f"wrote {out / 'grades.csv'} ({n} rows) and {out / 'free_text.csv'} (answers to mark, with the rubric)" + ("; isolation was OFF (--no-sandbox)" if args.no_sandbox else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
