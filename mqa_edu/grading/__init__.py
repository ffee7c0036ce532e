"""The autograder: ``mqa-grade`` (cli.py) runs each submission in its own worker process (worker.py), which executes the
notebook in a fresh kernel with the harness cells of harness.py; the grader judges the returned values itself."""
GRADER_VERSION = "1"
