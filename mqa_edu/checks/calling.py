"""Calling (or reading) a student's answer for one case: a time limit the student cannot catch, their error as a
message, and the files of mqa_edu it called (a graded answer must be written from scratch)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from .questions import NotAnswered, Question

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_CHECKS_DIR = Path(__file__).resolve().parent


class _CallTimeout(BaseException):
    """A BaseException, so that a student's ``except Exception`` cannot swallow the time limit."""


def _on_alarm(signum, frame):
    raise _CallTimeout()


def _message(exc) -> str:
    """An exception as 'Type: message', even when its __str__ raises; at most 500 characters."""
    try:
        text = str(exc)
    except BaseException:  # an exception whose __str__ raises
        text = "(its message could not be printed)"
    return f"{type(exc).__name__}: {text[:500]}"


def call_answer(q: Question, answer, case: tuple, seconds: float = 10.0, convert=None):
    """Call (or read) the student's answer for one case. Returns (value, error string or None, mqa_edu files used).

    ``convert`` (the grader's) turns the value into something safe to send back; it runs inside the same time limit
    and error handling as the answer itself, so a value whose __repr__ hangs or raises costs this case only."""
    if answer is None:
        raise NotAnswered()
    used: set = set()
    if q.kind != "function" and not callable(answer):
        if convert is None:
            return answer, None, used
        answer = (lambda value: lambda: value)(answer)
    if not callable(answer):
        return None, f"TypeError: {q.answer_name} must be a function, got {type(answer).__name__}", used

    own = {str(_CHECKS_DIR)}

    def tracer(frame, event, arg):
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(str(PACKAGE_DIR)) and not any(path.startswith(p) for p in own):
                used.add(f"{Path(path).relative_to(PACKAGE_DIR.parent)}:{frame.f_code.co_name}")

    use_alarm = hasattr(signal, "SIGALRM") and _in_main_thread()
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    previous_profile = sys.getprofile()
    traced = not q.runs_course_code
    if traced:
        sys.setprofile(tracer)
    try:
        value = answer(*case) if q.kind == "function" else answer()  # a value's "cases" are what it is judged on
        if convert is not None:
            value = convert(value)
        error = None
    except NotImplementedError:
        raise NotAnswered() from None
    except _CallTimeout:
        value, error = None, f"TimeoutError: took longer than {seconds:g} s"
    except Exception as exc:  # the student's bug, reported as a message
        if isinstance(exc.__cause__, NotImplementedError):  # re-raised by a runner (Triton's interpreter wraps it)
            raise NotAnswered() from None
        value, error = None, _message(exc)
    finally:
        tampered = traced and sys.getprofile() is not tracer
        if traced:
            sys.setprofile(previous_profile)
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if tampered:
        used.add("sys.setprofile (the call tracer was removed)")
    if value is None and error is None and q.kind != "function":
        raise NotAnswered()
    return value, error, used


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
