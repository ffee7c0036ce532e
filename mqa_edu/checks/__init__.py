"""Check cells for the notebooks and exercises: ``from mqa_edu.checks import check, summary``.

Only the standard library is imported here; a question's definition is loaded when it is first checked.
"""
from .cell import GRADING_ENV, check, summary
from .predict import predict, reveal

__all__ = ["check", "summary", "predict", "reveal", "GRADING_ENV"]
