"""The OS-level sandbox every submission's kernel runs in, built with bubblewrap (``bwrap``, the tool Flatpak uses).

What the kernel gets:
- **an unprivileged user on the host.** When the grader runs as root (CI does; cgroups need it), bubblewrap starts
  without a user namespace and a two-line launcher inside drops to an unused uid (:func:`sandbox_uid`) before the
  kernel starts: root inside would otherwise be the host's root (writes to ``/proc/sys`` are checked against file
  permissions only). When the grader is an ordinary user, the kernel runs as that user in a user namespace;
- its own network namespace (no network at all): the grader talks to it over the ``ipc`` transport, Unix sockets in
  the submission's ``conn/`` folder, which the grader locks (root-owned, read-only) once the kernel is up;
- its own PID namespace: it cannot see or signal the grader or other kernels, and every process it starts dies with
  it (``--die-with-parent``, and the namespace's first process is the kernel);
- a read-only view of the Python installation and a **copy** of the package's public files (:func:`public_view`):
  the exercise's hidden modules, their bytecode caches, the grader's code, ``solutions/``, the submissions folder and
  the output folder are not in its file system at all. Every copy of the package found in the installation is
  covered by that view;
- ``/proc/sys`` empty and read-only; no ``/sys``;
- writable space only on a size-capped tmpfs (``/tmp``, which holds HOME and the working folder: ``DISK_LIMIT``) and
  in the one answers file the grader created for it (capped by the file-size limit); the rest of the submission's
  folder is read-only;
- a minimal environment, no capabilities, a new session (no terminal injection);
- resource limits set by ``limited_kernel`` before bubblewrap starts: address space, file size, CPU time, and, where
  this machine lets the grader create a cgroup, a cap on processes and memory for the whole submission.

Python's audit hooks are not a sandbox (the Python documentation says so); this is the boundary. The audit hook set up
by :mod:`mqa_edu.checks.collect` stays as a second layer that gives readable messages.
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
DISK_LIMIT = 256 * 2**20  # bytes the kernel may write in all (its /tmp: HOME, working folder, caches)
UID_ENV = "MQA_EDU_SANDBOX_UID"  # an instructor may choose the uid kernels run as when the grader is root
# Inside the sandbox, run as root with only CAP_SETUID/CAP_SETGID: drop every group and both ids to the unprivileged
# uid, then become the kernel. After setuid() to a non-zero uid the kernel holds no capability at all.
DROP = ("import os, sys; u = int(sys.argv[1]); os.setgroups([]); os.setgid(u); os.setuid(u); "
        "assert (os.getuid(), os.geteuid(), os.getgid()) == (u, u, u); os.execv(sys.argv[2], sys.argv[2:])")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_uid() -> int | None:
    """The host uid a kernel runs as when the grader is root: ``$MQA_EDU_SANDBOX_UID``, or the first uid from 60777 up
    that names no user on this machine. None when the grader is not root: the kernel then runs as the grader's own
    (unprivileged) user."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    chosen = os.environ.get(UID_ENV)
    if chosen:
        if not chosen.isdigit() or int(chosen) == 0:
            raise SystemExit(f"{UID_ENV} must be a positive uid (not 0), got {chosen!r}")
        return int(chosen)
    import pwd

    for uid in range(60777, 65000):  # Debian's "allocated on demand" range, far from system and login users
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise SystemExit(f"no unused uid found in 60777..64999: set {UID_ENV}")


def sandbox_problem() -> str | None:
    """None when bubblewrap is installed and can build the grader's sandbox here, unprivileged uid included;
    otherwise what stops it."""
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mqa-probe-") as tmp:
        work = Path(tmp)
        view = public_view(work / "view", ())
        result = prepare_workdir(work, sandbox_uid())
        probe = command([sys.executable, "-I", "-S", "-c", "import os; print(os.geteuid())"], work, view, result)
        try:
            res = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start: {exc}"
    if res.returncode != 0:
        return f"bubblewrap cannot build the sandbox on this machine: {res.stderr.strip()[:300]}"
    if res.stdout.strip() == "0":
        return "the sandboxed process still ran as root"
    return None


def public_view(dest: Path, hidden) -> Path:
    """A copy of the package as a kernel may see it: every file but the grader (``grading/``), the exercise's hidden
    modules (``hidden``: paths relative to the repository, such as ``mqa_edu/sizing.py`` or ``mqa_edu/grading``) and
    every bytecode cache (a ``.pyc`` of a hidden module is the module). Returns the copy's package folder."""
    root = PACKAGE_DIR.parent
    hidden = {(root / h).resolve() for h in hidden} | {GRADING_DIR}
    out = Path(dest) / PACKAGE_DIR.name

    def skip(folder, names):
        here = Path(folder).resolve()
        return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo")) or n.endswith(".egg-info")
                or (here / n) in hidden or (here / (n[:-3] if n.endswith(".py") else n)) in hidden]

    shutil.copytree(PACKAGE_DIR, out, ignore=skip, symlinks=False)
    for d, _, files in os.walk(dest):  # readable by the kernel's uid, whoever made the copy
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return out


def prepare_workdir(workdir: Path, uid: int | None) -> Path:
    """Lay out a submission's folder for its kernel: ``conn/`` (its sockets) writable by the kernel until the grader
    locks it, one answers file writable by the kernel, everything else read-only to it. Returns the answers file."""
    workdir = Path(workdir)
    conn = workdir / "conn"
    conn.mkdir(parents=True, exist_ok=True)
    result = workdir / f"answers-{os.urandom(8).hex()}.json"
    result.touch(mode=0o600)
    os.chmod(workdir, 0o711)  # the kernel passes through, reads what it is given, writes nothing new here
    if uid is not None:
        os.chown(conn, uid, uid)
        os.chown(result, uid, uid)
    return result


def give_to_kernel(path: Path, uid: int | None):
    """A file the grader wrote that the kernel must read (its connection file, its cases)."""
    if uid is not None:
        os.chown(path, uid, uid)
    os.chmod(path, 0o600 if uid is not None else 0o644)


def lock(workdir: Path, uid: int | None):
    """Once the kernel has bound its sockets: ``conn/`` becomes the grader's, so the kernel can add nothing there."""
    conn = Path(workdir) / "conn"
    if uid is not None:
        os.chown(conn, 0, 0)
    os.chmod(conn, 0o755)


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


def _python_roots() -> list[str]:
    """The interpreter, the standard library and the environment's packages: folders bound read-only."""
    roots: list[str] = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = os.path.realpath(p)
        if any(real == r or real.startswith(r + os.sep) for r in roots):
            continue
        roots = [r for r in roots if not r.startswith(real + os.sep)] + [real]
    return sorted(roots)


def _package_copies(roots) -> list[str]:
    """Every folder the kernel could import the package from inside the bound installation (a ``pip install .`` copy
    in site-packages, say), besides the package itself: each is covered by the public view too."""
    found = {str(PACKAGE_DIR)}
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if any(real == r or real.startswith(r + os.sep) for r in roots):
            cand = os.path.join(real, PACKAGE_DIR.name)
            if os.path.isdir(cand):
                found.add(os.path.realpath(cand))
    return sorted(found)


class _Mounts:
    """bwrap arguments, with every folder that bubblewrap would create on the way to a mount point made 0755 first
    (bubblewrap copies the mode of the host's folder, and /root is 0700: the unprivileged kernel could not pass)."""

    def __init__(self):
        self.args: list[str] = []
        self.mounted: list[str] = ["/usr"]
        self.made: set = {"/", "/tmp", "/home", "/proc", "/dev"}

    def _parents(self, dest: str):
        for parent in reversed(Path(dest).parents):
            p = str(parent)
            if p in self.made or any(p == m or p.startswith(m + os.sep) for m in self.mounted):
                continue
            self.args += ["--perms", "0755", "--dir", p]
            self.made.add(p)

    def bind(self, flag: str, src: str, dest: str):
        self._parents(dest)
        self.args += [flag, src, dest]
        self.mounted.append(dest)


def command(inner: list[str], workdir: Path, view: Path, result: Path) -> list[str]:
    """The bubblewrap command line that runs ``inner`` (the kernel) in a sandbox around ``workdir``, seeing ``view``
    (from :func:`public_view`) as the package and ``result`` (from :func:`prepare_workdir`) as its one writable file
    outside its tmpfs."""
    workdir, uid = Path(workdir).resolve(), sandbox_uid()
    home, work = "/tmp/home", "/tmp/work"
    # No user namespace is asked for: as root, bubblewrap then needs none (and the uid is dropped inside); as an
    # ordinary user it makes one itself. The empty /tmp and /home come first: a later mount over them would hide
    # anything bound below them before (the course itself may live under /tmp or /home).
    args = [bwrap_path() or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            *(["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if uid is not None else []),
            "--perms", "1777", "--size", str(DISK_LIMIT), "--tmpfs", "/tmp",
            "--perms", "0777", "--dir", home, "--perms", "0777", "--dir", work,
            "--size", "65536", "--tmpfs", "/home", "--remount-ro", "/home"]
    m = _Mounts()
    m.args += _system_binds()
    roots = _python_roots()
    for r in roots:
        m.bind("--ro-bind", r, r)
    for p in (sys.prefix, sys.base_prefix):  # reached through a symlink: make the same path work inside
        if os.path.islink(p):
            m.args += ["--symlink", os.path.realpath(p), p]
    for copy in _package_copies(roots):
        m.bind("--ro-bind", str(view), copy)
    m.bind("--ro-bind", str(workdir), str(workdir))
    m.bind("--bind", str(workdir / "conn"), str(workdir / "conn"))
    m.bind("--bind", str(Path(result).resolve()), str(Path(result).resolve()))
    args += m.args
    args += ["--proc", "/proc", "--size", "65536", "--tmpfs", "/proc/sys", "--remount-ro", "/proc/sys",
             "--dev", "/dev", "--chdir", work, "--clearenv"]
    env = {"HOME": home, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
           "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
           "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config",
           "PYTHONDONTWRITEBYTECODE": "1", "MQA_EDU_GRADING": "1", "OMP_NUM_THREADS": "1",
           # the kernel imports the package the grader runs, as the public view shows it
           "PYTHONPATH": str(PACKAGE_DIR.parent)}
    for k, v in env.items():
        args += ["--setenv", k, v]
    if uid is not None:
        inner = [sys.executable, "-I", "-S", "-c", DROP, str(uid), *inner]
    return [*args, "--", *inner]
