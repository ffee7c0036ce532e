"""Scoring: the raw values a kernel returned, judged here in the grader's process against the batch's hidden cases.
A question's points, its messages, and credit "given your earlier answer" when a later answer builds on an earlier
one."""
from __future__ import annotations

import json

from ..checks.collect import resolve
from ..checks.judging import judge, matches


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
