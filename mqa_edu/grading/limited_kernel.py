"""Start a command (the kernel, usually inside bubblewrap) under resource limits:

    python -m mqa_edu.grading.limited_kernel MEMORY_MB [--cgroup NAME] -- COMMAND ...

Runs in the grader's trust domain, before any student code: it sets the limits, then exec-s COMMAND, which inherits
them. Limits: address space (MEMORY_MB), the size of any file written, core dumps off, and, with --cgroup, a cgroup of
that name with a process cap and a memory cap for everything the submission starts (where this machine lets the
grader create one; see sandbox.py).
"""
import os
import sys

FILE_SIZE_LIMIT = 64 * 2**20  # no submission needs to write a bigger file (the answers file is read up to 16 MiB)
MAX_PROCESSES = 256


def own_cgroups() -> dict:
    """controller (or "" for cgroup v2) -> this process's cgroup path, from /proc/self/cgroup."""
    found = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    found[c] = path
    except OSError:
        pass
    return found


def cgroup_dirs(name: str, memory_mb: int = 0) -> list:
    """(folder, limits) of the submission's cgroups: children of the grader's own cgroups (never beside them, which
    would take the kernel out of whatever limits the grader itself runs under)."""
    root, own, memory = "/sys/fs/cgroup", own_cgroups(), memory_mb * 2**20
    if os.path.exists(f"{root}/cgroup.controllers"):  # cgroup v2: one hierarchy for both limits
        return [(f"{root}{own.get('', '/').rstrip('/')}/{name}", {"pids.max": MAX_PROCESSES, "memory.max": memory})]
    return [(f"{root}/pids{own.get('pids', '/').rstrip('/')}/{name}", {"pids.max": MAX_PROCESSES}),
            (f"{root}/memory{own.get('memory', '/').rstrip('/')}/{name}", {"memory.limit_in_bytes": memory})]


def join_cgroup(name: str, memory_mb: int) -> bool:
    """Put this process into fresh cgroups capped at MAX_PROCESSES processes and memory_mb of memory. False where
    cgroups cannot be written (not root, no delegation): then the address-space limit and the timeouts remain."""
    done = False
    for path, limits in cgroup_dirs(name, memory_mb):
        try:
            os.makedirs(path, exist_ok=True)
            for key, value in limits.items():
                if os.path.exists(f"{path}/{key}"):  # a controller this hierarchy lacks is skipped
                    with open(f"{path}/{key}", "w") as f:
                        f.write(str(value))
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            done = True
        except OSError:
            continue
    return done


def main(argv):
    mb = int(argv[0])
    rest = argv[1:]
    if rest[:1] == ["--cgroup"]:
        join_cgroup(rest[1], mb)
        rest = rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        import resource

        for limit, value in ((resource.RLIMIT_AS, mb * 2**20), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                             (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))
    except (ImportError, ValueError, OSError):  # no rlimits here (Windows): run unlimited rather than not at all
        pass
    os.execvp(rest[0], rest)


if __name__ == "__main__":
    main(sys.argv[1:])
