"""Run one submission: execute its notebook in a fresh, memory-limited kernel between the harness cells, and return
a report with the raw values its answers gave on the hidden cases. The kernel is the only process that runs student
code; this module runs in the grader and only talks to it.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .harness import extract_source, setup_source


class LimitedKernelManager(AsyncKernelManager):
    """Launches the kernel through limited_kernel.py, which sets RLIMIT_AS before exec-ing ipykernel. Async, as
    nbclient needs: with a blocking manager its cell timeouts never fire."""

    memory_mb = 4096

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)  # [python, -m, ipykernel_launcher, -f, file]
        return [sys.executable, "-m", "mqa_edu.grading.limited_kernel", str(self.memory_mb), *cmd[1:]]


class CappedClient(NotebookClient):
    """Drops outputs past a byte budget, so a print loop cannot exhaust the grader's memory."""

    def __init__(self, *args, output_limit=2**21, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_limit, self.emitted, self.truncated = output_limit, 0, False

    def output(self, outs, msg, display_id, cell_index):
        self.emitted += len(json.dumps(msg.get("content", {}), default=str))
        if self.emitted > self.output_limit:
            self.truncated = True
            return None
        return super().output(outs, msg, display_id, cell_index)


def read_notebook(path: Path):
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError("the file is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a notebook: the file is not valid notebook JSON ({type(exc).__name__}: "
                         f"{str(exc)[:120]})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("not a notebook: the JSON has no list of 'cells'")
    return nbformat.reads(json.dumps(data), as_version=4)


def run(spec: dict) -> dict:
    report = {"status": "ok", "messages": [], "answers": {}, "cell_errors": []}
    try:
        nb = read_notebook(Path(spec["notebook"]))
    except Exception as exc:  # malformed, truncated, not a notebook
        report.update(status="invalid_notebook", messages=[str(exc)])
        return report
    found = (nb.metadata.get("mqa_edu") or {}).get("exercise")
    if found and found != spec["exercise"]:
        report.update(status="wrong_exercise",
                      messages=[f"this notebook is exercise {found!r}, not {spec['exercise']!r}"])
        return report
    if not found:
        report["messages"].append("the notebook has no exercise metadata (was it created from scratch?); graded as "
                                  + spec["exercise"])
    code = [c for c in nb.cells if c.cell_type == "code" and str(c.source).strip()]
    if not code:
        report.update(status="empty", messages=report["messages"] + ["the notebook has no code"])
        return report

    entry = "_mqa_extract_" + secrets.token_hex(8)  # drawn now: student code cannot know it before it runs
    cells = [nbformat.v4.new_code_cell(setup_source(spec["forbidden_modules"], spec["forbidden_paths"], entry))]
    cells += [nbformat.v4.new_code_cell(c.source) for c in code]
    extract = nbformat.v4.new_code_cell(extract_source(entry, spec["cases_path"], spec["result_path"],
                                                       spec["call_timeout"]))
    cells.append(extract)
    run_nb = nbformat.v4.new_notebook(cells=cells)
    extract_timeout = int(spec["call_timeout"] * spec["n_calls"] + 30)
    manager = type("LimitedKernelManager", (LimitedKernelManager,), {"memory_mb": spec["memory_mb"]})
    client = CappedClient(run_nb, kernel_manager_class=manager, kernel_name="python3", timeout=spec["cell_timeout"],
                          allow_errors=True, interrupt_on_timeout=True, shutdown_kernel="immediate",
                          resources={"metadata": {"path": spec["workdir"]}}, record_timing=False,
                          timeout_func=lambda cell: extract_timeout if cell is extract else spec["cell_timeout"],
                          output_limit=spec["output_limit_bytes"])
    fired = threading.Event()

    def kill_kernel():  # the whole-submission deadline: kill the kernel; nbclient then sees it dead
        fired.set()
        proc = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(spec["timeout"], kill_kernel)
    start = time.perf_counter()
    watchdog.start()
    try:
        client.execute(env={**os.environ, "MQA_EDU_GRADING": "1", "MPLBACKEND": "Agg"})
    except DeadKernelError:
        if fired.is_set():
            report["status"] = "timeout"
            report["messages"].append(f"the submission ran past the {spec['timeout']} s limit")
        else:
            report["status"] = "kernel_died"
            report["messages"].append(f"the kernel died (most often: the memory limit of {spec['memory_mb']} MB "
                                      "was exceeded)")
    except Exception as exc:  # nbclient's own failure: still a row with a message
        report["status"] = "timeout" if fired.is_set() else "error"
        report["messages"].append(f"running the notebook failed: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        watchdog.cancel()  # nbclient owns the kernel manager and shuts the kernel down itself
    report["seconds"] = round(time.perf_counter() - start, 2)
    for i, c in enumerate(run_nb.cells[1:-1]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                report["cell_errors"].append({"cell": i + 1,
                                              "error": f"{o.get('ename')}: {str(o.get('evalue'))[:200]}"})
    if client.truncated:
        report["messages"].append(f"output past {spec['output_limit_bytes']} bytes was discarded")
    result = Path(spec["result_path"])
    if result.exists():
        try:
            report["answers"] = json.loads(result.read_text())
        except json.JSONDecodeError:
            report["messages"].append("the answers could not be read back (the notebook interfered with them)")
    elif report["status"] == "ok":
        report["status"] = "error"
        report["messages"].append("the answers could not be collected (the last cell did not finish)")
    return report
