"""The grader's code inside a grading kernel: the only part of the grader that runs there, before and after the
submission's own cells (mqa_edu.grading.harness writes the two cells that call it).

:func:`install` runs first, before any student code:
- it marks the kernel as a grading run (check cells then do nothing);
- it installs an audit hook, which Python code cannot remove, that refuses to import or open the exercise's forbidden
  modules (a second layer with readable messages: the sandbox already leaves them out of the file system);
- it builds the collecting function now, capturing what it needs in a closure, and stores it under a name drawn for
  this run, so patching this module, json or numpy later changes nothing it does.

The collecting function runs last. It calls each answer on the hidden cases the grader chose, **one question at a
time in a forked child** with its own deadline: an answer stuck in C code (where no Python-level alarm can stop it)
is killed and costs its own question only, and what one answer changes in the kernel cannot reach the next. It
writes the raw return values to the answers file. It judges nothing, and the grader trusts nothing in that file
beyond "this is what the submission returned": every point is computed in the grader's own process.
"""
from __future__ import annotations

import os
import sys

from .calling import call_answer
from .questions import NotAnswered, Question
from .values import as_array, as_number, nest

ANSWER_LIMIT = 2**20  # bytes of returned values one question may send back (a wrong, huge array costs its question)


def plain(v, depth=0):
    """A value the grader can read back safely: None, bool, a bounded int, float, a capped str, an array as nested
    lists (at most a million numbers), or a short description of anything else. Runs inside the call's time limit,
    so a __repr__ that hangs is stopped."""
    if v is None or isinstance(v, bool):
        return bool(v) if v is not None else None
    if isinstance(v, int):
        v = int(v)
        if v.bit_length() > 200:  # 10**5000 and friends: no answer here is this large
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


def fingerprint(args) -> str:
    """The same text for the same inputs, in the grader and in a kernel: numbers as numbers (64.0 is 64), arrays by
    their shape and the sums of their entries and squares to 6 significant digits (so the last bits a thread count
    changes do not matter)."""
    import json
    import math

    import numpy as np

    out = []
    for a in args:
        num = as_number(a)  # int, float and numpy scalars alike
        if num is not None:
            out.append(int(num) if math.isfinite(num) and float(num).is_integer() else float(num))
        elif a is None or isinstance(a, (bool, str)):
            out.append(a)
        else:
            try:
                arr = np.asarray(a, dtype=np.float64)
            except (TypeError, ValueError, RuntimeError):
                try:  # a tensor on a GPU, say
                    arr = np.asarray(a.tolist(), dtype=np.float64)
                except Exception:
                    out.append(repr(a)[:200])
                    continue
            finite = arr[np.isfinite(arr)]
            out.append(["array", list(arr.shape), f"{float(finite.sum()):.6g}", f"{float((finite ** 2).sum()):.6g}",
                        int(arr.size - finite.size)])
    return json.dumps(out)


def named(source: str, *path) -> dict:
    """An input given by name rather than by value (exercise 2's attention maps are too large to send): ``source``
    is "module:function" returning the data, ``path`` the keys and indices into it."""
    return {"__input__": source, "path": list(path)}


def resolve(case) -> tuple:
    """``case`` with every :func:`named` input replaced by its value, the same in the grader and in a kernel."""
    import importlib

    out = []
    for a in case:
        if isinstance(a, dict) and "__input__" in a:
            module, name = a["__input__"].split(":")
            value = getattr(importlib.import_module(module), name)()
            for key in a["path"]:
                value = value[key]
            a = value
        out.append(a)
    return tuple(out)


def _stand_in(original, table: dict):
    """The student's earlier function where it runs; where it raises (or is missing), the reference's value at the
    inputs the grader listed: so a later answer built on it is judged on its own step."""
    def earlier(*args):
        if original is not None:
            try:
                return original(*args)
            except Exception:
                pass
        key = fingerprint(args)
        if key in table:
            return table[key]
        raise LookupError("your earlier function raised here, and this is not an input the question builds on")
    return earlier


def _question(fn, q: dict, call_timeout: float, namespace=None) -> dict:
    """Every hidden case of one question: {"results": [{value, error}, ...]} or {"not_answered": True}."""
    fallback = q.get("fallback") if namespace is not None else None
    if fallback:  # for this question only: undone below (in a forked child it would die with the child anyway)
        name, missing = fallback["name"], object()
        original = namespace.get(name, missing)
        namespace[name] = _stand_in(None if original is missing else original, dict(fallback["table"]))
    shell = Question(q["qid"], "", 0, q["kind"], q["answer_name"])
    results = []
    try:
        for case in q["cases"]:
            value, error, _ = call_answer(shell, fn, resolve(case), seconds=call_timeout, convert=plain)
            results.append({"value": value, "error": error})
    except NotAnswered:
        return {"not_answered": True}
    finally:
        if fallback:
            if original is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = original
    return {"results": results}


def _forked(work, seconds: float, dumps, loads):
    """(work()'s value, None) computed in a forked child, or (None, why) when it ran past ``seconds``, sent back
    more than ANSWER_LIMIT bytes or died. The child's output goes nowhere: it cannot flood the notebook."""
    import select
    import signal
    import time

    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process left under the submission's cap (it spent them itself): collect in this process
        os.close(r)
        os.close(w)
        return work(), None
    if pid == 0:  # the child: compute, send, and leave without running any cleanup of the kernel's
        try:
            os.close(r)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")
            data = dumps(work()).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(w, view[:65536]):]
        finally:
            os._exit(0)
    os.close(w)
    chunks, size, end, why = [], 0, time.monotonic() + seconds, None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                why = f"TimeoutError: took longer than {seconds:g} s (stopped from outside)"
                break
            if not select.select([r], [], [], min(left, 1.0))[0]:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > ANSWER_LIMIT:
                why = f"the returned values are over {ANSWER_LIMIT} bytes"
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        if why is not None:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if why is not None:
        return None, why
    try:
        return loads(b"".join(chunks).decode()), None
    except ValueError:
        return None, "the answer's process died before it sent its values"


def install(forbidden_modules, forbidden_paths, entry: str, namespace: dict):
    """Set up a grading kernel (see the module's docstring); ``namespace`` is the notebook's globals()."""
    import difflib
    import json

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
    load, dumps, loads, close_matches, open_ = json.load, json.dumps, json.loads, difflib.get_close_matches, open
    question, forked, can_fork = _question, _forked, hasattr(os, "fork")

    def extract(cases_path, result_path, call_timeout):
        with open_(cases_path) as f:
            spec = load(f)
        out = {}
        for qid, q in spec.items():
            name, n = q["answer_name"], len(q["cases"])
            try:
                if name not in namespace:
                    names = [k for k in namespace if isinstance(k, str) and not k.startswith("_")]
                    out[qid] = {"missing": True, "close": close_matches(name, names, n=1)}
                    continue
                fn, q = namespace[name], {**q, "qid": qid}
                if can_fork:
                    entry_, why = forked(lambda fn=fn, q=q: question(fn, q, call_timeout, namespace),
                                         call_timeout * n + 5, dumps, loads)
                else:  # no fork (not Linux): in this process, Python-level time limits only, and no stand-in
                    entry_, why = question(fn, q, call_timeout), None
                if why is not None:
                    entry_ = {"results": [{"value": None, "error": why}] * n}
                dumps(entry_)  # serialisable? one bad value costs its own question only
                out[qid] = entry_
            except BaseException as exc:
                out[qid] = {"results": [{"value": None, "error": "the answer could not be collected ("
                                         + type(exc).__name__ + ")"}] * n}
        with open_(result_path, "w") as f:
            f.write(dumps(out))

    namespace[entry] = extract
