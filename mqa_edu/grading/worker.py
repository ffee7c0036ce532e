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
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from . import sandbox
from .harness import extract_source, setup_source

MESSAGE_LIMIT = 8 * 2**20  # bytes of one message from a kernel: a larger one is dropped by ZeroMQ before it is read


class CappedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse any message over MESSAGE_LIMIT as it arrives (ZeroMQ's MAXMSGSIZE): a
    600 MB print never reaches the grader's memory. ZeroMQ then drops that connection for good, so the output
    socket carries a monitor, and :class:`CappedClient` connects it again after the cell."""

    iopub_monitor = None

    def _create_connected_socket(self, channel, identity=None):
        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, MESSAGE_LIMIT)  # before connect: it applies to the connections made after
        if identity:
            sock.identity = identity
        if channel == "iopub":
            self.iopub_monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(self._make_url(channel))
        return sock


class LimitedKernelManager(AsyncKernelManager):
    """Launches the kernel through limited_kernel.py (resource limits, then exec) and, with ``sandboxed``, inside
    bubblewrap (sandbox.py), talking to it over the ipc transport through sockets in the submission's own folder.
    Async, as nbclient needs: with a blocking manager its cell timeouts never fire. The class attributes are set per
    submission by :func:`run` (nbclient builds the manager itself)."""

    memory_mb = 4096
    workdir: str = ""
    sandboxed = True
    cgroup: str | None = None
    view: str = ""  # the public view of the package (sandbox.public_view)
    result: str = ""  # the answers file, the one file outside its tmpfs the kernel may write
    uid: int | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_class = "mqa_edu.grading.worker.CappedKernelClient"
        conn = Path(self.workdir) / "conn"
        self.connection_file = str(conn / "kernel.json")  # never the shared runtime folder siblings could read
        if self.sandboxed:
            self.transport = "ipc"  # no network inside the sandbox: Unix sockets in a folder both sides see
            self.ip = str(conn / "k")
            # a signal would reach bubblewrap, not the kernel in its own PID namespace: interrupt by message instead
            # (the kernel then signals itself)
            self.kernel_spec.interrupt_mode = "message"

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        sandbox.give_to_kernel(Path(self.connection_file), self.uid)  # written 0600 by the grader: the kernel reads it
        # the kernel's own stdout/stderr (not the notebook's output, which travels as messages) go to a file in its
        # folder, capped by the file-size limit, rather than to the grader's terminal
        with open(Path(self.workdir) / "kernel-log.txt", "wb") as log:
            kw["stdout"] = kw["stderr"] = log
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)  # [python, -m, ipykernel_launcher, -f, file]
        kernel = [sys.executable, *cmd[1:]]
        if self.sandboxed:
            kernel = sandbox.command(kernel, Path(self.workdir), Path(self.view), Path(self.result))
        limits = [sys.executable, "-m", "mqa_edu.grading.limited_kernel", str(self.memory_mb)]
        if self.cgroup:
            limits += ["--cgroup", self.cgroup]
        return [*limits, "--", *kernel]


class CappedClient(NotebookClient):
    """Drops outputs past a byte budget, so a print loop cannot exhaust the grader's memory; one message over
    MESSAGE_LIMIT is refused before it is read (see :class:`CappedKernelClient`)."""

    def __init__(self, *args, output_limit=2**21, **kwargs):
        super().__init__(*args, store_widget_state=False, **kwargs)  # widget messages are never kept
        self.output_limit, self.emitted, self.truncated = output_limit, 0, False

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        km = self.km
        if getattr(km, "sandboxed", False):  # the sockets exist now: the kernel may add nothing more to conn/
            sandbox.lock(Path(km.workdir), km.uid)
        return kc

    async def async_execute_cell(self, *args, **kwargs):
        try:
            return await super().async_execute_cell(*args, **kwargs)
        finally:
            await self._reconnect_dropped_output()

    async def _reconnect_dropped_output(self):
        """After a message over MESSAGE_LIMIT, ZeroMQ has closed the output connection: open a new one."""
        kc = getattr(self, "kc", None)
        monitor = getattr(kc, "iopub_monitor", None)
        if monitor is None or not await monitor.poll(0):
            return
        while await monitor.poll(0):
            await monitor.recv_multipart()
        channel = kc.iopub_channel
        channel.socket.disable_monitor()
        channel.socket.close(linger=0)
        channel.socket = kc.connect_iopub()
        self.truncated = True

    def output(self, outs, msg, display_id, cell_index):
        self.emitted += len(json.dumps(msg.get("content", {}), default=str))
        if self.emitted > self.output_limit:
            self.truncated = True
            return None
        return super().output(outs, msg, display_id, cell_index)


NOTEBOOK_LIMIT = 16 * 2**20  # bytes: far above any real exercise notebook (the largest solution is under 100 kB)
CELL_LIMIT = 2000  # cells: the exercises have under 80


def read_notebook(path: Path):
    """The submission as an nbformat-4 notebook (older formats, such as nbformat 3's worksheets, are upgraded), or a
    ValueError that says what is wrong with the file. Reads at most NOTEBOOK_LIMIT bytes, and counts the cells in the
    raw JSON before nbformat (slow on huge notebooks) sees it."""
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
                         f"{str(exc)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise ValueError("not a notebook: the JSON has no list of 'cells'")
    sheets = data.get("worksheets") if "cells" not in data else [data]
    n_cells = sum(len(w.get("cells", [])) if isinstance(w, dict) else 0 for w in sheets)
    if n_cells > CELL_LIMIT:
        raise ValueError(f"not graded: the notebook has {n_cells:,} cells, over the limit of {CELL_LIMIT:,}")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat could not read or upgrade it
        raise ValueError(f"not a notebook nbformat can read ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook: the JSON has no list of 'cells'")
    return nb


def run(spec: dict) -> dict:
    report = {"status": "ok", "messages": [], "answers": {}, "cell_errors": []}
    start = time.perf_counter()  # the submission's time counts from here: reading its file is part of it
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
    workdir = Path(spec["workdir"])
    uid = sandbox.sandbox_uid() if spec.get("sandbox") else None
    result = sandbox.prepare_workdir(workdir, uid)
    sandbox.give_to_kernel(Path(spec["cases_path"]), uid)
    cells = [nbformat.v4.new_code_cell(setup_source(spec["forbidden_modules"], spec["forbidden_paths"], entry))]
    cells += [nbformat.v4.new_code_cell(c.source) for c in code]
    extract = nbformat.v4.new_code_cell(extract_source(entry, spec["cases_path"], str(result), spec["call_timeout"]))
    cells.append(extract)
    run_nb = nbformat.v4.new_notebook(cells=cells)
    extract_timeout = int(spec["call_timeout"] * spec["n_calls"] + 5 * spec.get("n_questions", 1) + 30)
    cgroup = f"mqa-grade-{secrets.token_hex(6)}" if spec.get("sandbox") else None
    manager = type("LimitedKernelManager", (LimitedKernelManager,), {
        "memory_mb": spec["memory_mb"], "workdir": str(workdir), "sandboxed": bool(spec.get("sandbox")),
        "cgroup": cgroup, "view": str(spec.get("view", "")), "result": str(result), "uid": uid})
    work = workdir / "work"  # the kernel's folder without the sandbox (inside it, a private tmpfs)
    work.mkdir(exist_ok=True)
    client = CappedClient(run_nb, kernel_manager_class=manager, kernel_name="python3", timeout=spec["cell_timeout"],
                          allow_errors=True, interrupt_on_timeout=True, shutdown_kernel="immediate",
                          resources={"metadata": {"path": str(work)}}, record_timing=False,
                          timeout_func=lambda cell: extract_timeout if cell is extract else spec["cell_timeout"],
                          output_limit=spec["output_limit_bytes"])
    fired = threading.Event()

    def kill_kernel():  # the whole-submission deadline: kill the kernel; nbclient then sees it dead
        fired.set()
        proc = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(max(0.0, spec["timeout"] - (time.perf_counter() - start)), kill_kernel)
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
    for o in run_nb.cells[0].get("outputs", []):  # the grader's own set-up cell: a failure there is ours
        if o.get("output_type") == "error":
            report["messages"].append(f"the grader's set-up cell failed: {o.get('ename')}: "
                                      f"{str(o.get('evalue'))[:200]}")
    for i, c in enumerate(run_nb.cells[1:-1]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                report["cell_errors"].append({"cell": i + 1,
                                              "error": f"{o.get('ename')}: {str(o.get('evalue'))[:200]}"})
    if client.truncated:
        report["messages"].append(f"output past {spec['output_limit_bytes']} bytes was discarded")
    answers, problem = read_answers(result, spec.get("answers_limit_bytes", 2**24))
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
        if st.st_size == 0:
            return None, "the answers could not be collected (the last cell did not finish)"
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
