"""Answers as values: numbers from any numeric type, arrays from numpy, torch or nested lists (as shape and flat
values), and the short form feedback shows them in. Standard library only."""
from __future__ import annotations

import math
from numbers import Integral, Real

SMALL = 8  # numbers: an array up to this size is shown with its values, a larger one by its shape


def describe(value) -> str:
    """A value in a short form: a small one as it is; a larger array (a tensor, a numpy array, nested lists) by its
    type, shape and dtype, not its values, so that feedback leads with what matters."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (str, bytes)):
        try:
            dims = tuple(int(n) for n in shape)
            if dims and math.prod(dims) > SMALL:
                dtype = str(getattr(value, "dtype", "")).replace("torch.", "")
                return f"{type(value).__name__}(shape={dims}{', ' + dtype if dtype else ''})"
        except (TypeError, ValueError):
            pass
    elif isinstance(value, (list, tuple)) and value:
        arr = as_array(value)
        if arr is not None and len(arr[1]) > SMALL:
            return f"{type(value).__name__} of shape {arr[0]}"
    text = " ".join(repr(value).split())  # on one line
    return text if len(text) <= 80 else text[:77] + "..."


def as_number(value):
    """A plain int/float from int, float or numpy scalars; None for anything else (str, list, bool, ...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    return None


MAX_ARRAY = 1_000_000  # elements an array answer may have


def as_array(value):
    """(shape, flat list of numbers) for an array answer: a numpy array or torch tensor (anything with ``shape`` and
    ``tolist``) or a rectangular nested list/tuple of numbers; None for anything else (a scalar, ragged lists...)."""
    if isinstance(value, (str, bytes, dict)) or as_number(value) is not None:
        return None
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        try:
            if math.prod(int(n) for n in value.shape) > MAX_ARRAY:
                return None
            value = value.tolist()
        except Exception:
            return None
    if not isinstance(value, (list, tuple)):
        return None
    shape, flat = [], []

    def walk(v, depth):
        if depth and hasattr(v, "tolist") and hasattr(v, "shape"):  # arrays inside a tuple: (inputs, targets)
            v = v.tolist()
        if isinstance(v, (list, tuple)):
            if depth == len(shape):
                if flat:  # numbers were found at this depth before: ragged
                    raise ValueError("ragged")
                shape.append(len(v))
            elif shape[depth] != len(v):
                raise ValueError("ragged")
            for x in v:
                walk(x, depth + 1)
        else:
            n = int(v) if isinstance(v, bool) else as_number(v)  # a mask's True/False count as 1/0 in an array
            if n is None or depth != len(shape) or len(flat) >= MAX_ARRAY:
                raise ValueError("not a number")
            flat.append(n)

    try:
        walk(value, 0)
    except (ValueError, RecursionError):
        return None
    if len(flat) != math.prod(shape):
        return None
    return tuple(shape), flat


def nest(shape, flat) -> list:
    """The nested lists of an array given as (shape, flat values): the form an array answer travels in."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(shape[1:], flat[i * step:(i + 1) * step]) for i in range(shape[0])]
