"""Source of the two cells the worker adds around a submission's own cells.

SETUP runs first, before any student code:
- it marks the kernel as a grading run (check cells then do nothing);
- it installs an audit hook, which Python code cannot remove, that refuses to import or open the exercise's
  forbidden modules and files (the package's reference code, the grader, the solutions);
- it builds the extraction function now, capturing the functions it needs in a closure, and stores it under a name
  drawn for this run, so patching mqa_edu.checks, json or numpy later changes nothing it does.

EXTRACT runs last and only calls that function: it calls each answer on the hidden cases the grader chose for this
run and writes the raw return values to a file. It judges nothing: the grader compares the values in its own
process.
"""
from __future__ import annotations

import json

SETUP = '''
def __mqa_setup(forbidden_modules, forbidden_paths, entry):
    import difflib, json, os, sys
    from mqa_edu.checks.core import NotAnswered, Question, call_answer

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
    namespace = globals()
    load, dump, close_matches = json.load, json.dump, difflib.get_close_matches

    def plain(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        item = getattr(v, "item", None)  # numpy scalars
        if callable(item) and getattr(v, "shape", None) == ():
            return plain(item())
        return {"__opaque__": type(v).__name__, "repr": repr(v)[:200]}

    def extract(cases_path, result_path, call_timeout):
        with open(cases_path) as f:
            spec = load(f)
        out = {}
        for qid, q in spec.items():
            name = q["answer_name"]
            if name not in namespace:
                out[qid] = {"missing": True,
                            "close": close_matches(name, [k for k in namespace if not k.startswith("_")], n=1)}
                continue
            shell = Question(qid, "", 0, q["kind"], name)
            results = []
            try:
                for case in q["cases"]:
                    value, error, used = call_answer(shell, namespace[name], tuple(case), seconds=call_timeout)
                    results.append({"value": plain(value), "error": error, "used": sorted(used)})
            except NotAnswered:
                out[qid] = {"not_answered": True}
                continue
            out[qid] = {"results": results}
        with open(result_path, "w") as f:
            dump(out, f)

    namespace[entry] = extract


__mqa_setup({modules}, {paths}, {entry})
del __mqa_setup
'''

EXTRACT = '{entry}({cases_path}, {result_path}, {call_timeout})'


def setup_source(forbidden_modules, forbidden_paths, entry: str) -> str:
    return (SETUP.replace("{modules}", json.dumps(list(forbidden_modules)))
            .replace("{paths}", json.dumps(list(forbidden_paths))).replace("{entry}", json.dumps(entry)))


def extract_source(entry: str, cases_path: str, result_path: str, call_timeout: float) -> str:
    return EXTRACT.format(entry=entry, cases_path=json.dumps(cases_path), result_path=json.dumps(result_path),
                          call_timeout=float(call_timeout))
