"""The autograder: ``mqa-grade`` (cli.py) runs each submission's notebook in a fresh, memory-limited kernel
(worker.py, limited_kernel.py) between the harness cells of harness.py; the grader judges the returned values
itself."""
GRADER_VERSION = "4"  # 4: ex03 Q4b reads the study's five recall seeds (issue 23); 3: kernels unprivileged (issue 19)
