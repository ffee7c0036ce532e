"""Finding the submissions: every notebook under the given paths, the id its results are filed under, and why a file
cannot be graded at all (a folder or pipe named like a notebook, a link leading outside the folder)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


class Submission:
    """One file found in the submissions: where it is, the id its results are filed under, and, when it cannot be
    graded at all (a folder or pipe named like a notebook, a link leading outside the folder), why not."""

    def __init__(self, path: Path, label: str, problem: str | None = None):
        self.path, self.label, self.problem = path, label, problem
        self.sid, self.note = "", None


def printable(text: str) -> str:
    """A file name as text that can be written anywhere (non-UTF-8 bytes and control characters escaped)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def discover(paths, follow_links: bool = False) -> list[Submission]:
    """Every *.ipynb under the given folders (or the given files), without following links out of them.

    Regular files are graded. A link gets a row that names where it leads; it is graded (as the file it leads to)
    only with ``follow_links`` and only when it leads to a regular file inside the same folder: an unpacked zip keeps
    a link to a classmate's file as a link. Anything else named like a notebook (a folder, a pipe, a device, a dangling
    link) still gets a row that says why it was not graded. Nothing here reads a file's content."""
    found = []
    for arg in map(Path, paths):
        if arg.is_dir() and not arg.is_symlink():
            root = arg.resolve()
            for dirpath, dirnames, filenames in os.walk(arg, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d != ".ipynb_checkpoints")
                here = Path(dirpath)
                for name in sorted(filenames) + [d for d in dirnames if d.endswith(".ipynb")]:
                    if name.endswith(".ipynb"):
                        found.append(_classify(here / name, root, arg, follow_links))
                dirnames[:] = [d for d in dirnames if not d.endswith(".ipynb")]
        elif arg.exists() or arg.is_symlink():
            found.append(_classify(arg, arg.parent.resolve(), arg.parent, follow_links))
        else:
            raise SystemExit(f"no such file or folder: {arg}")
    return found


def _classify(path: Path, root: Path, shown_root: Path, follow_links: bool) -> Submission:
    import stat

    try:
        label = path.relative_to(shown_root).as_posix()
    except ValueError:
        label = path.name
    try:
        st = os.lstat(path)
    except OSError as exc:
        return Submission(path, label, f"cannot be read: {type(exc).__name__}")
    link_note = None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return Submission(path, label, "a link that leads nowhere: not graded")
        try:
            shown = target.relative_to(root).as_posix()
        except ValueError:
            return Submission(path, label, "a link to a file outside the submissions folder: not graded")
        if not follow_links:
            return Submission(path, label, f"a link to {printable(shown)}: not graded (that file has its own row; "
                                           "pass --follow-links to grade links as the files they lead to)")
        link_note = f"a link: graded as the file it leads to, {printable(shown)}"
        st = os.stat(target)
    if stat.S_ISDIR(st.st_mode):
        return Submission(path, label, "a folder named like a notebook: not graded")
    if not stat.S_ISREG(st.st_mode):
        return Submission(path, label, "not a regular file (a pipe, socket or device): not graded")
    sub = Submission(path, label)
    sub.note = link_note
    return sub


def submission_ids(subs: list[Submission]) -> list[Submission]:
    """A readable, unique, safe id per submission from its path inside the submissions folder: '/' -> '__', only
    letters, digits, '-', '_' and '.', never starting with '.', so it can name a file in any folder."""
    taken = set()
    for sub in subs:
        rel = sub.label[:-6] if sub.label.endswith(".ipynb") else sub.label
        base = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in rel.replace("/", "__"))
        base = base.lstrip(".-")[:120] or "submission"  # never hidden, never an option or a spreadsheet formula
        sid, n = base, 2
        while sid.lower() in taken:
            sid, n = f"{base}-{n}", n + 1
        taken.add(sid.lower())
        sub.sid = sid
    return subs


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()
