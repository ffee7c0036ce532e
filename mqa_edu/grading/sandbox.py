"""The OS-level sandbox every submission's kernel runs in, built with bubblewrap (``bwrap``, the tool Flatpak uses).

What the kernel gets:
- its own network namespace (no network at all): the grader talks to it over the ``ipc`` transport, Unix sockets in
  the submission's private folder, which is bound into the sandbox at the same path;
- its own PID namespace: it cannot see or signal the grader or other kernels, and every process it starts dies with
  it (``--die-with-parent``, and the namespace's first process is the kernel);
- a read-only view of the Python installation and of the package's public files; the exercise's definition (hidden
  cases, references), the forbidden reference modules, the grader's code, ``solutions/``, the submissions folder and
  the output folder are not there at all;
- an empty private HOME and /tmp, a minimal environment, no capabilities, a new session (no terminal injection);
- resource limits set by ``limited_kernel`` before bubblewrap starts: address space, file size, CPU time, and, where
  this machine lets the grader create a cgroup, a cap on processes and memory for the whole submission.

Python's audit hooks are not a sandbox (the Python documentation says so); this is the boundary. The audit hook in
harness.py stays as a second layer that gives readable messages.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
GRADING_DIR = Path(__file__).resolve().parent
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: dnf install bubblewrap) "
                "or pass --no-sandbox to grade without isolation (not for untrusted submissions)")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_problem() -> str | None:
    """None when bubblewrap is installed and can build a sandbox here; otherwise what stops it."""
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    import subprocess

    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start: {exc}"
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces on this machine: {probe.stderr.strip()[:300]}"
    return None


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/alternatives"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    return args


def _python_binds() -> list[str]:
    """The interpreter, the standard library and the environment's packages, read-only, at their own paths."""
    roots: list[str] = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = os.path.realpath(p)
        if any(real == r or real.startswith(r + os.sep) for r in roots):
            continue
        roots = [r for r in roots if not r.startswith(real + os.sep)] + [real]
    args = []
    for r in sorted(roots):
        args += ["--ro-bind", r, r]
    for p in (sys.prefix, sys.base_prefix):  # reached through a symlink: make the same path work inside
        if os.path.islink(p):
            args += ["--symlink", os.path.realpath(p), p]
    return args


def command(inner: list[str], workdir: Path, hidden=()) -> list[str]:
    """The bubblewrap command line that runs ``inner`` (the kernel) in a sandbox around ``workdir``. ``hidden``: files
    and folders of the package the kernel must not see (they appear empty); anything outside the package, the Python
    installation and /usr is not there at all."""
    workdir = Path(workdir).resolve()
    home = "/home/student"
    # The empty /tmp and /home come first: a later mount over them would hide anything bound below them before (the
    # course itself may live under /tmp or /home).
    args = [bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--tmpfs", "/tmp", "--tmpfs", "/home", "--dir", home,
            *_system_binds(), *_python_binds(),
            "--ro-bind", str(PACKAGE_DIR), str(PACKAGE_DIR)]
    for path in (GRADING_DIR, *map(Path, hidden)):
        path = path.resolve()
        if path.is_dir():  # present as an empty read-only folder
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.is_file():  # present as an empty file
            args += ["--ro-bind", "/dev/null", str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(workdir), str(workdir), "--chdir", str(workdir / "work"),
             "--clearenv"]
    env = {"HOME": home, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
           "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
           "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config",
           "PYTHONDONTWRITEBYTECODE": "1", "MQA_EDU_GRADING": "1", "OMP_NUM_THREADS": "1",
           # the kernel imports the very package the grader runs (only its public files are mounted)
           "PYTHONPATH": str(PACKAGE_DIR.parent)}
    for k, v in env.items():
        args += ["--setenv", k, v]
    return [*args, "--", *inner]
