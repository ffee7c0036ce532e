"""Start an IPython kernel under an address-space limit: ``python -m mqa_edu.grading.limited_kernel MB -m
ipykernel_launcher -f CONNECTION_FILE``. The limit survives the exec, so the submission's code runs under it."""
import os
import sys

if __name__ == "__main__":
    mb = int(sys.argv[1])
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))
    except (ImportError, ValueError, OSError):  # no rlimits here (Windows): run unlimited rather than not at all
        pass
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
