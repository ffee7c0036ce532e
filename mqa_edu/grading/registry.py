"""The graded exercises, derived rather than listed: one place knows them.

In an instructor's copy they are the modules in ``mqa_edu/grading/exercises/`` (the private definitions); in a student
release, which has no private definitions, they are the public forms in ``mqa_edu/checks/public/``. A new exercise is
registered by adding its private module (and running ``mqa-make-exercise``, which writes its public form):
``mqa-grade``,
``mqa-release``, ``mqa-make-exercise`` and the tests all read :data:`EXERCISES`.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from ..checks.public import PUBLIC_DIR

PRIVATE_PACKAGE = "mqa_edu.grading.exercises"
PRIVATE_DIR = Path(__file__).resolve().parent / "exercises"


def exercise_names() -> list[str]:
    if PRIVATE_DIR.is_dir():
        return sorted(m.name for m in pkgutil.iter_modules([str(PRIVATE_DIR)]) if not m.name.startswith("_"))
    return sorted(p.stem for p in PUBLIC_DIR.glob("*.json"))


EXERCISES = {name: f"{PRIVATE_PACKAGE}.{name}" for name in exercise_names()}  # name -> its private module


def exercise_tests(name: str) -> str:
    """The test file of one exercise (private: it needs the definition): tests/test_ex02.py for ex02_..."""
    return f"tests/test_{name.split('_')[0]}.py"


def load_exercise(name):
    """The private definition of exercise ``name`` (an ``Exercise``); a clear exit for an unknown name or a student
    copy."""
    if name not in EXERCISES:
        raise SystemExit(f"--exercise must be one of {sorted(EXERCISES)}, got {name!r}")
    try:
        return importlib.import_module(EXERCISES[name]).EXERCISE
    except ModuleNotFoundError:
        raise SystemExit(f"this copy of the course has no private definition of {name} (a student release?): "
                         "grade from the instructor's full copy") from None
