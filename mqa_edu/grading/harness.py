"""The two cells the worker adds around a submission's own cells. Both only call :mod:`mqa_edu.checks.collect`, the
grader's code inside the kernel: SETUP installs the audit hook and the collecting function (under a name drawn for
this run, before any student code), EXTRACT calls it on the hidden cases and writes the raw values to the answers file.
"""
from __future__ import annotations

import json


def setup_source(forbidden_modules, forbidden_paths, entry: str) -> str:
    return ("from mqa_edu.checks.collect import install as __mqa_install\n"
            f"__mqa_install({json.dumps(list(forbidden_modules))}, {json.dumps(list(forbidden_paths))}, "
            f"{json.dumps(entry)}, globals())\n"
            "del __mqa_install")


def extract_source(entry: str, cases_path: str, result_path: str, call_timeout: float) -> str:
    return f"{entry}({json.dumps(cases_path)}, {json.dumps(result_path)}, {float(call_timeout)})"
