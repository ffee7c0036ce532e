"""Start a command (the kernel, usually inside bubblewrap) under resource limits:

    python -m mqa_edu.grading.limited_kernel MEMORY_MB [--cgroup NAME] -- COMMAND ...

Runs in the grader's trust domain, before any student code: it sets the limits, then exec-s COMMAND, which inherits
them. Limits: address space (MEMORY_MB), the size of any file written, core dumps off, and, with --cgroup, a cgroup of
that name with a process cap and a memory cap for everything the submission starts (where this machine lets the
grader create one; see sandbox.py).
"""
import os
import sys

FILE_SIZE_LIMIT = 256 * 2**20  # no submission needs to write a bigger file
MAX_PROCESSES = 256


def join_cgroup(name: str, memory_mb: int) -> bool:
    """Put this process into a fresh cgroup capped at MAX_PROCESSES processes and memory_mb of memory (v2, or v1's
    pids and memory controllers). False where cgroups cannot be written (not root, or no delegation)."""
    pid = str(os.getpid())
    done = False
    root = "/sys/fs/cgroup"
    targets = []
    if os.path.exists(f"{root}/cgroup.controllers"):  # cgroup v2
        targets.append((f"{root}/{name}", {"pids.max": MAX_PROCESSES, "memory.max": memory_mb * 2**20}))
    else:
        targets += [(f"{root}/pids/{name}", {"pids.max": MAX_PROCESSES}),
                    (f"{root}/memory/{name}", {"memory.limit_in_bytes": memory_mb * 2**20})]
    for path, limits in targets:
        try:
            os.makedirs(path, exist_ok=True)
            for key, value in limits.items():
                with open(f"{path}/{key}", "w") as f:
                    f.write(str(value))
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(pid)
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
