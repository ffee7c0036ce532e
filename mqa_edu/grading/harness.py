"""Source of the two cells the worker adds around a submission's own cells.

SETUP runs first, before any student code. It marks the kernel as a grading run (check cells then do nothing) and
installs an audit hook, which Python code cannot remove, that refuses to import or open the exercise's forbidden
modules and files (the package's reference code, the grader, the solutions).

EXTRACT runs last. It calls each answer on the hidden cases the grader chose for this run and writes the raw return
values to a file. It judges nothing: the grader compares the values in its own process.
"""
from __future__ import annotations

import json

SETUP = '''
def __mqa_setup(forbidden_modules, forbidden_paths):
    import os, sys
    os.environ["MQA_EDU_GRADING"] = "1"
    mods = tuple(forbidden_modules)
    paths = tuple(os.path.realpath(p) for p in forbidden_paths)

    def hook(event, args):
        if event == "import" and args and isinstance(args[0], str):
            if any(args[0] == m or args[0].startswith(m + ".") for m in mods):
                raise ImportError(f"{args[0]} is not available while grading: graded answers are written from scratch")
        elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                real = os.path.realpath(os.fsdecode(args[0]))
            except Exception:
                return
            if any(real == p or real.startswith(p + os.sep) for p in paths):
                raise PermissionError(f"{args[0]} is not available while grading")

    sys.addaudithook(hook)


__mqa_setup({modules}, {paths})
del __mqa_setup
'''

EXTRACT = '''
def __mqa_extract(cases_path, result_path, call_timeout):
    import difflib, json, math
    from mqa_edu.checks.core import NotAnswered, Question, call_answer

    namespace = globals()
    with open(cases_path) as f:
        spec = json.load(f)

    def plain(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        item = getattr(v, "item", None)  # numpy scalars
        if callable(item) and getattr(v, "shape", None) == ():
            return plain(item())
        return {{"__opaque__": type(v).__name__, "repr": repr(v)[:200]}}

    out = {{}}
    for qid, q in spec.items():
        name = q["answer_name"]
        if name not in namespace:
            close = difflib.get_close_matches(name, [k for k in namespace if not k.startswith("_")], n=1)
            out[qid] = {{"missing": True, "close": close}}
            continue
        shell = Question(qid, "", 0, q["kind"], name)
        results = []
        try:
            for case in q["cases"]:
                value, error, used = call_answer(shell, namespace[name], tuple(case), seconds=call_timeout)
                results.append({{"value": plain(value), "error": error, "used": sorted(used)}})
        except NotAnswered:
            out[qid] = {{"not_answered": True}}
            continue
        out[qid] = {{"results": results}}
    with open(result_path, "w") as f:
        json.dump(out, f)


__mqa_extract({cases_path}, {result_path}, {call_timeout})
'''


def setup_source(forbidden_modules, forbidden_paths) -> str:
    return SETUP.replace("{modules}", json.dumps(list(forbidden_modules))).replace(
        "{paths}", json.dumps(list(forbidden_paths)))


def extract_source(cases_path: str, result_path: str, call_timeout: float) -> str:
    return EXTRACT.format(cases_path=json.dumps(cases_path), result_path=json.dumps(result_path),
                          call_timeout=float(call_timeout))
