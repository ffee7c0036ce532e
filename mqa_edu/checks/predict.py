"""'Predict, then run': the learner commits to a prediction before a cell computes the answer, and a later cell
compares the two. Standard library only.

    predict("nb01.saturation", my_prediction, choices={"a": "...", "b": "...", "c": "..."})
    ...  # the cell that measures it
    reveal("nb01.saturation", measured_letter, why="...")
"""
from __future__ import annotations

_PREDICTIONS: dict = {}
_CHOICES: dict = {}


def predict(name: str, answer, choices: dict) -> None:
    """Record a prediction (one of ``choices``' keys) before running the cells that measure it."""
    _CHOICES[name] = dict(choices)
    if answer is None:
        _PREDICTIONS.pop(name, None)
        print("no prediction recorded: put a letter in place of None first (it is more fun to be wrong on the record)")
        return
    key = str(answer).strip().lower()
    if key not in choices:
        _PREDICTIONS.pop(name, None)
        print(f"the prediction must be one of {sorted(choices)}, got {answer!r}")
        return
    _PREDICTIONS[name] = key
    print(f"recorded: ({key}) {choices[key]}. Now run the next cells.")


def reveal(name: str, actual: str, why: str = "") -> bool | None:
    """Compare the recorded prediction with what the cells measured; True, False, or None when none was made."""
    choices = _CHOICES.get(name, {})
    said = f"({actual}) {choices.get(actual, '')}".rstrip()
    guess = _PREDICTIONS.get(name)
    if guess is None:
        print(f"the measurement says {said}. {why}".rstrip())
        return None
    if guess == actual:
        print(f"your prediction was right: {said}. {why}".rstrip())
    else:
        print(f"you predicted ({guess}); the measurement says {said}. {why}".rstrip())
    return guess == actual
