"""Run one submission: execute its notebook in a fresh, memory-limited kernel between the harness cells, and return
a report with the raw values its answers gave on the hidden cases. The kernel is the only process that runs student
code; this module runs in the grader and only talks to it.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from . import sandbox
from .harness import extract_source, setup_source


class LimitedKernelManager(AsyncKernelManager):
    """Launches the kernel through limited_kernel.py (resource limits, then exec) and, with ``sandboxed``, inside
    bubblewrap (sandbox.py), talking to it over the ipc transport through sockets in the submission's own folder.
    Async, as nbclient needs: with a blocking manager its cell timeouts never fire. The class attributes are set per
    submission by :func:`run` (nbclient builds the manager itself)."""

    memory_mb = 4096
    workdir: str = ""
    sandboxed = True
    cgroup: str | None = None
    hidden_files: tuple = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        conn = Path(self.workdir) / "conn"
        conn.mkdir(parents=True, exist_ok=True)
        self.connection_file = str(conn / "kernel.json")  # never the shared runtime folder siblings could read
        if self.sandboxed:
            self.transport = "ipc"  # no network inside the sandbox: Unix sockets in a folder both sides see
            self.ip = str(conn / "k")
            # a signal would reach bubblewrap, not the kernel in its own PID namespace: interrupt by message instead
            # (the kernel then signals itself)
            self.kernel_spec.interrupt_mode = "message"

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # the kernel's own stdout/stderr (not the notebook's output, which travels as messages) go to a file in its
        # folder, capped by the file-size limit, rather than to the grader's terminal
        with open(Path(self.workdir) / "kernel-log.txt", "wb") as log:
            kw["stdout"] = kw["stderr"] = log
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)  # [python, -m, ipykernel_launcher, -f, file]
        kernel = [sys.executable, *cmd[1:]]
        if self.sandboxed:
            kernel = sandbox.command(kernel, Path(self.workdir), hidden=self.hidden_files)
        limits = [sys.executable, "-m", "mqa_edu.grading.limited_kernel", str(self.memory_mb)]
        if self.cgroup:
            limits += ["--cgroup", self.cgroup]
        return [*limits, "--", *kernel]


class CappedClient(NotebookClient):
    """Drops outputs past a byte budget, so a print loop cannot exhaust the grader's memory."""

    def __init__(self, *args, output_limit=2**21, **kwargs):
        super().__init__(*args, store_widget_state=False, **kwargs)  # widget messages are never kept
        self.output_limit, self.emitted, self.truncated = output_limit, 0, False

    def output(self, outs, msg, display_id, cell_index):
        self.emitted += len(json.dumps(msg.get("content", {}), default=str))
        if self.emitted > self.output_limit:
            self.truncated = True
            return None
        return super().output(outs, msg, display_id, cell_index)


NOTEBOOK_LIMIT = 64 * 2**20  # bytes: far above any real exercise notebook


def read_notebook(path: Path):
    """The submission as an nbformat-4 notebook (older formats, such as nbformat 3's worksheets, are upgraded), or a
    ValueError that says what is wrong with the file. Reads at most NOTEBOOK_LIMIT bytes."""
    with open(path, "rb") as f:
        raw = f.read(NOTEBOOK_LIMIT + 1)
    if len(raw) > NOTEBOOK_LIMIT:
        raise ValueError(f"not graded: the file is over {NOTEBOOK_LIMIT // 2**20} MiB")
    if not raw.strip():
        raise ValueError("the file is empty")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a notebook: the file is not valid notebook JSON ({type(exc).__name__}: "
                         f"{str(exc)[:120]})")
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise ValueError("not a notebook: the JSON has no list of 'cells'")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat could not read or upgrade it
        raise ValueError(f"not a notebook nbformat can read ({type(exc).__name__}: {str(exc)[:120]})")
    if not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook: the JSON has no list of 'cells'")
    return nb


def run(spec: dict) -> dict:
    report = {"status": "ok", "messages": [], "answers": {}, "cell_errors": []}
    try:
        nb = read_notebook(Path(spec["notebook"]))
    except Exception as exc:  # malformed, truncated, not a notebook
        report.update(status="invalid_notebook", messages=[str(exc)])
        return report
    meta = nb.metadata.get("mqa_edu")
    found = meta.get("exercise") if isinstance(meta, dict) else None
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
    workdir = Path(spec["workdir"])
    (workdir / "work").mkdir(exist_ok=True)
    cgroup = f"mqa-grade-{secrets.token_hex(6)}" if spec.get("sandbox") else None
    manager = type("LimitedKernelManager", (LimitedKernelManager,), {
        "memory_mb": spec["memory_mb"], "workdir": str(workdir), "sandboxed": bool(spec.get("sandbox")),
        "cgroup": cgroup, "hidden_files": tuple(spec.get("hidden_files", ()))})
    client = CappedClient(run_nb, kernel_manager_class=manager, kernel_name="python3", timeout=spec["cell_timeout"],
                          allow_errors=True, interrupt_on_timeout=True, shutdown_kernel="immediate",
                          resources={"metadata": {"path": str(workdir / "work")}}, record_timing=False,
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
        client.execute(env=kernel_environment())
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
        if cgroup:
            remove_cgroup(cgroup)
    report["seconds"] = round(time.perf_counter() - start, 2)
    for i, c in enumerate(run_nb.cells[1:-1]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                report["cell_errors"].append({"cell": i + 1,
                                              "error": f"{o.get('ename')}: {str(o.get('evalue'))[:200]}"})
    if client.truncated:
        report["messages"].append(f"output past {spec['output_limit_bytes']} bytes was discarded")
    answers, problem = read_answers(Path(spec["result_path"]), spec.get("answers_limit_bytes", 2**22))
    if answers is not None:
        report["answers"] = answers
    elif problem:
        report["messages"].append(problem)
        if report["status"] == "ok":
            report["status"] = "error"
    return report


def kernel_environment() -> dict:
    """What the kernel's launcher sees: a minimal environment, never the grader's own (tokens, paths, settings).
    Inside the sandbox bubblewrap replaces even this with its own minimal set."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "HOME")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(MQA_EDU_GRADING="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    return env


def read_answers(path: Path, limit: int):
    """(answers, None) or (None, why): the kernel's result file, read as something a submission may have forged:
    a regular file (not a pipe, device or link), at most ``limit`` bytes, a JSON object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None, "the answers could not be collected (the last cell did not finish)"
    except OSError as exc:
        return None, f"the answers could not be read back ({type(exc).__name__})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "the answers could not be read back: the result is not a regular file (the notebook " \
                         "interfered with it)"
        if st.st_size > limit:
            return None, f"the answers could not be read back: the result is over {limit} bytes"
        raw = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "the answers could not be read back (the notebook interfered with them)"
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        return None, "the answers could not be read back: unexpected structure (the notebook interfered with them)"
    return data, None


def remove_cgroup(name: str):
    """Remove the submission's (now empty) cgroups; where they were never made, nothing happens."""
    from .limited_kernel import cgroup_dirs

    for path, _ in cgroup_dirs(name):
        for _ in range(50):  # the processes need a moment to be reaped after the kernel is killed
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
