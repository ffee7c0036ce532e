"""Helpers the tests share: head ratios, error-message checks, small models, planted notebooks and graded batches.
Fixtures and the hooks that sort tests into the fast and slow lanes stay in conftest.py."""
import contextlib
import os
from pathlib import Path

import pytest


def head_ratios(n_heads):
    """Every valid n_kv_heads for n_heads: MHA, each divisor in between, MQA."""
    return [d for d in range(1, n_heads + 1) if n_heads % d == 0]


# (n_heads, n_kv_heads) pairs covering every divisor of several head counts, plus the odd real ones.
HEAD_PAIRS = [(h, kv) for h in (1, 4, 6, 8) for kv in head_ratios(h)] + [(9, 3), (9, 1), (9, 9), (71, 1)]


@contextlib.contextmanager
def raises_naming(exc, *words):
    """pytest.raises(exc), and the message must contain every one of ``words`` (the parameter, the allowed values)."""
    with pytest.raises(exc) as err:
        yield err
    for w in words:
        assert w in str(err.value), f"{w!r} not in the error message: {err.value}"


# ---------------------------------------------------------------- small models for the cache and generation tests
RATIOS = [(8, 8), (8, 4), (8, 2), (8, 1), (9, 3), (9, 1)]
PROMPTS = [[5, 9, 2, 7, 1, 3, 3], [4], [8, 8, 1], [11, 2, 9, 9, 9]]


def make_model(n_heads, n_kv_heads, dtype=None, seed=0):
    import torch

    from mqa_edu.model import ModelConfig, Transformer

    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=2, d_model=8 * n_heads, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=8,
                      vocab_size=53, max_seq_len=48)
    return Transformer(cfg, dtype=dtype or torch.float64).eval()


def assert_public_checks_name_mistakes(exercise, capsys):
    """Every reference passes its public check, and every known mistake that a public case shows gets its own hint.
    Answers are tabulated first: a check flags any answer that runs the course's own code while it is called."""
    import json

    from mqa_edu.checks import cell, judging, rules
    from mqa_edu.checks.public import load_public

    public = load_public(exercise.name)
    for q in exercise.questions:
        if q.kind == "text":
            continue
        cases = public.question(q.qid).cases(None, False)

        def as_answer(fn, q=q, cases=cases):
            if q.kind != "function":
                value = fn(*cases[0])
                if isinstance(value, rules.Partition):  # a proposal question: any well-formed split passes
                    value = value.example()
                return lambda: value
            table = {json.dumps(c): fn(*c) for c in cases}
            return lambda *args: table[json.dumps(args)]

        if q.fixed:  # a fixed answer: the check records its form and says nothing of whether it is right
            assert cell.check(q.qid, as_answer(q.reference)).passed is None, q.qid
            out = capsys.readouterr().out
            assert "recorded, graded later" in out and "correct" not in out, (q.qid, out)
            for m in q.mistakes:  # a known mistake of the same form is recorded alike: its hint comes with the grade
                if rules.FormOnly.of(q.reference(), q.choices).matches(m.fn()):
                    cell.check(q.qid, as_answer(m.fn))
                    assert capsys.readouterr().out == out.replace(repr(q.reference()), repr(m.fn())), (q.qid, m.name)
            continue
        assert cell.check(q.qid, as_answer(q.reference)).passed is True, q.qid
        capsys.readouterr()
        for m in q.mistakes:
            if all(judging.matches(m.fn(*c), q.reference(*c), q.rel_tol) for c in cases):
                continue  # no public case shows this mistake (the hidden ones do)
            verdict = cell.check(q.qid, as_answer(m.fn))
            out = capsys.readouterr().out
            assert verdict.passed is False and m.hint in out, (q.qid, m.name, out)


def with_cell(nb, defines: str, source: str):
    """A copy of notebook ``nb`` whose code cell that defines ``defines`` (e.g. 'def max_batch(') is replaced by
    ``source``: how the grading tests plant a mistake."""
    import copy

    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.cell_type == "code" and defines in c.source:
            c.source = source
            return nb
    raise AssertionError(f"no cell defines {defines}")


def with_copies(notebooks: dict, name: str, n: int = 4) -> dict:
    """``notebooks`` plus ``n`` byte-identical copies of notebook ``name`` (five in all, with the original)."""
    return {**notebooks, **{f"{name}_copy{i}": notebooks[name] for i in range(1, n + 1)}}


def assert_identical_rows(results: dict, name: str, n: int = 4):
    """The same work gets the same grade: every copy of ``name`` has the original's status, points and messages."""
    keep = lambda r: (r["status"], r["total"], r["seed"], {q: (v["points"], v["messages"])  # noqa: E731
                                                             for q, v in r["questions"].items()})
    first = keep(results[name])
    for i in range(1, n + 1):
        assert keep(results[f"{name}_copy{i}"]) == first, (name, i)


def grade_batch(folder, exercise: str, notebooks: dict, *, cell_timeout: int, call_timeout: int, timeout: int) -> dict:
    """Write ``notebooks`` (name -> notebook) into ``folder``/submissions, grade them all in one ``mqa-grade`` run
    (sandboxed where bubblewrap works) and return each one's result, by name."""
    import json
    from pathlib import Path

    import nbformat

    from mqa_edu.grading.cli import main as grade_main
    from mqa_edu.grading.sandbox import sandbox_problem

    subs, out = Path(folder) / "submissions", Path(folder) / "grades"
    subs.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    argv = [str(subs), "--exercise", exercise, "--out", str(out), "--jobs", "2", "--cell-timeout", str(cell_timeout),
            "--call-timeout", str(call_timeout), "--timeout", str(timeout), "--no-progress",
            *(["--no-sandbox"] if sandbox_problem() else [])]
    assert grade_main(argv) == 0
    return {p.stem: json.loads(p.read_text()) for p in (out / "students").glob("*.json")}


# where the browser tests (tests/test_browser.py) save a screenshot per notebook and of the decks
SHOTS = Path(os.environ.get("MQA_EDU_SCREENSHOTS", Path(__file__).resolve().parents[1] / "screenshots"))
