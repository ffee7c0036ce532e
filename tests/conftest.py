"""Fixtures, and the hooks that sort tests into the fast and slow lanes. Shared helpers live in tests/helpers.py."""
import os
import time

import pytest

from tests.helpers import HEAD_PAIRS, SHOTS

os.environ.setdefault("MPLBACKEND", "Agg")
# Triton's interpreter must be chosen before anything imports Triton (torch's optimizers may, in another test), or
# notebook 12's kernels cannot run on a CPU; mqa_edu.decode_kernel sets the same when it is imported first.
import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(params=HEAD_PAIRS, ids=lambda p: f"h{p[0]}kv{p[1]}")
def head_pair(request):
    return request.param


@pytest.fixture
def cuda_like_sdpa(monkeypatch):
    """SDPA returning its output in the layout CUDA's fused (flash / memory-efficient) kernels use: memory ordered
    (batch, seq, heads, head_dim), seen as (batch, heads, seq, head_dim). No CPU run produces it by itself."""
    import torch.nn.functional as F

    from mqa_edu.device import fused_sdpa_layout

    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: fused_sdpa_layout(sdpa(*a, **k)))


# ---------------------------------------------------------------- the fast lane: pytest -m "not slow"
# A test is slow when it executes a notebook, opens a browser, grades a batch or runs a study: it uses one of these
# fixtures, or its body makes one of these calls. Marked here, in one place, so a new test of that kind joins the slow
# lane by itself. The README's test command runs both lanes (what CI runs).
SLOW_FIXTURES = {"graded", "batch", "student_release", "decks", "lab"}
SLOW_CALLS = ("grade_main(", "grade_batch(", "subprocess.", "NotebookClient(", "execute(", "head_maps()",
              "_all_losses()", "converted_loss(")


def pytest_collection_modifyitems(items):
    import inspect

    for item in items:
        fn = getattr(item, "function", None)
        try:
            body = inspect.getsource(fn) if fn is not None else ""
        except (OSError, TypeError):
            body = ""
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.module.__name__.endswith("test_browser")
                or any(call in body for call in SLOW_CALLS)):
            item.add_marker(pytest.mark.slow)


_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """Say where the browser tests put the screenshots this run took."""
    fresh = [p for p in SHOTS.glob("*.png") if p.stat().st_mtime >= _STARTED] if SHOTS.is_dir() else []
    if fresh:
        terminalreporter.write_line(f"browser screenshots: {len(fresh)} in {SHOTS}")
