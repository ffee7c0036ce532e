"""The autograder: ``mqa-grade`` (cli.py) runs each submission's notebook in a fresh, memory-limited kernel
(worker.py, limited_kernel.py) between the harness cells of harness.py; the grader judges the returned values
itself."""
GRADER_VERSION = "3"  # 3: kernels unprivileged, cascades from hidden cases only (issue 19)
