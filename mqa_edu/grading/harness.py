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
    from mqa_edu.checks.core import NotAnswered, Question, as_array, call_answer, nest

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
    load, dumps, close_matches, open_ = json.load, json.dumps, difflib.get_close_matches, open

    def plain(v, depth=0):
        """A value the grader can read back safely: None, bool, a bounded int, float, a capped str, an array as
        nested lists (at most a million numbers), or a short description of anything else. Runs inside the call's time limit, so a __repr__ that hangs is stopped."""
        if v is None or isinstance(v, bool):
            return bool(v) if v is not None else None
        if isinstance(v, int):
            v = int(v)
            if v.bit_length() > 200:  # 10**5000 and friends: no sizing answer is this large
                return {"__opaque__": "int", "repr": f"an integer of about {int(v.bit_length() * 0.30103)} digits"}
            return v
        if isinstance(v, float):
            return float(v)
        if isinstance(v, str):
            text = str.__str__(v)
            return text if len(text) <= 20_000 else text[:20_000] + " [cut]"
        arr = as_array(v)  # a numpy array, a tensor or nested lists of numbers: sent back as nested lists
        if arr is not None:
            return nest(*arr)
        item = getattr(v, "item", None)
        if depth == 0 and callable(item) and getattr(v, "shape", None) == ():  # numpy scalars
            return plain(item(), 1)
        return {"__opaque__": type(v).__name__[:80], "repr": repr(v)[:200]}

    def probe(name, cases, call_timeout):
        """The student's earlier function at the inputs this answer builds on (how a mistake is counted once)."""
        shell = Question("probe", "", 0, "function", name)
        out = []
        for case in cases:
            try:
                value, error, used = call_answer(shell, namespace[name], tuple(case), seconds=call_timeout,
                                                 convert=plain)
            except BaseException:
                value, error = None, "not answered"
            out.append({"value": value, "error": error})
        return out

    def extract(cases_path, result_path, call_timeout):
        with open_(cases_path) as f:
            spec = load(f)
        out = {}
        for qid, q in spec.items():
            name = q["answer_name"]
            try:
                if name not in namespace:
                    names = [k for k in namespace if isinstance(k, str) and not k.startswith("_")]
                    out[qid] = {"missing": True, "close": close_matches(name, names, n=1)}
                    continue
                shell = Question(qid, "", 0, q["kind"], name)
                probes = q.get("probes")
                results = []
                try:
                    for i, case in enumerate(q["cases"]):
                        value, error, used = call_answer(shell, namespace[name], tuple(case), seconds=call_timeout,
                                                         convert=plain)
                        results.append({"value": value, "error": error, "used": sorted(used)})
                        if probes and error is None and probes["answer_name"] in namespace:
                            results[-1]["probes"] = probe(probes["answer_name"], probes["cases"][i], call_timeout)
                except NotAnswered:
                    out[qid] = {"not_answered": True}
                    continue
                entry = {"results": results}
                dumps(entry)  # serialisable? one bad value costs its own question only
                out[qid] = entry
            except BaseException as exc:
                out[qid] = {"results": [{"value": None, "error": "the answer could not be collected ("
                                         + type(exc).__name__ + ")", "used": []}] * len(q["cases"])}
        with open_(result_path, "w") as f:
            f.write(dumps(out))

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
