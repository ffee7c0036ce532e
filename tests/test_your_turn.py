"""The "your turn" tasks of the lecture notebooks: one source (solutions/lectures/, solved) gives both versions (the
student's in notebooks/, with stubs), the references agree with the package, every known mistake gets its own hint,
checks are fast and import no torch, and predictions are recorded and revealed."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mqa_edu import numpy_attention as na
from mqa_edu.authoring.make_exercise import render
from mqa_edu.checks import cell, judging, predict, reveal
from mqa_edu.checks.yourturn import QUESTIONS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "solutions" / "lectures").glob("*.ipynb"))
TASKS = [q for qs in QUESTIONS.values() for q in qs]
MISTAKES = [(q, m) for q in TASKS for m in q.mistakes]


@pytest.mark.skipif(not SOURCES, reason="a student release has no full versions of the lecture notebooks")
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_student_version_is_generated_from_the_full_version(source):
    student = ROOT / "notebooks" / source.name
    assert student.read_text() == render(source), "run: mqa-make-exercise solutions/lectures/ notebooks/"
    text = student.read_text()
    assert "BEGIN SOLUTION" not in text and "raise NotImplementedError" in text
    for q in QUESTIONS[f"nb{source.name[:2]}"]:  # every task of the notebook has its stub and its check cell
        assert f"def {q.answer_name}(" in text and q.qid in text, q.qid


def test_every_lecture_notebook_01_to_05_has_a_full_version():
    if not SOURCES:
        pytest.skip("a student release has no full versions")
    assert [p.name[:2] for p in SOURCES] == ["01", "02", "03", "04", "05"]


def test_at_least_two_tasks_and_a_prediction_per_converted_notebook():
    for source in SOURCES:
        nb = f"nb{source.name[:2]}"
        assert 2 <= len(QUESTIONS[nb]) <= 4
        text = source.read_text()
        assert "predict(" in text and "reveal(" in text and "Predict, then run" in text


def test_references_agree_with_the_package():
    rng = np.random.default_rng(0)
    find = {q.qid.split(".")[1]: q for q in TASKS}
    s = rng.normal(size=(4, 7)) * 30
    np.testing.assert_allclose(find["yt_softmax"].reference(s), na.softmax(s))
    assert np.array_equal(find["yt_causal_mask"].reference(5), na.causal_mask(5))
    q, k, v = (rng.normal(size=(6, 8)) for _ in range(3))
    np.testing.assert_allclose(find["yt_attention"].reference(q, k, v, na.causal_mask(6)),
                               na.scaled_dot_product_attention(q, k, v, na.causal_mask(6)))
    x = rng.normal(size=(2, 5, 12))
    np.testing.assert_array_equal(find["yt_split_heads"].reference(x, 3), na.split_heads(x, 3))
    np.testing.assert_array_equal(find["yt_merge_heads"].reference(na.split_heads(x, 3)), x)
    cfg = na.HeadConfig(12, 3)
    p = na.init_attention_params(cfg, seed=2)
    np.testing.assert_allclose(find["yt_multi_head"].reference(x, p["w_q"], p["w_k"], p["w_v"], p["w_o"], 3),
                               na.multi_head_attention(x, p, cfg), atol=1e-12)


def test_torch_task_references_agree_with_the_package():
    import torch

    from mqa_edu.attention import grouped_attention, make_mask
    from mqa_edu.heads import head_mapping
    from mqa_edu.rotary import Rotary, apply_rotary
    find = {q.qid.split(".")[1]: q for q in TASKS}
    for n_heads, n_kv in ((8, 2), (9, 3), (8, 8), (8, 1), (71, 1)):
        assert find["yt_head_mapping"].reference(n_heads, n_kv) == list(head_mapping(n_heads, n_kv))
    k = np.random.default_rng(1).normal(size=(2, 3, 4, 2))
    np.testing.assert_array_equal(find["yt_repeat_kv"].reference(k, 3), na.repeat_kv(k, 3))
    gen = torch.Generator().manual_seed(0)
    q, kk, v = (torch.randn(2, h, 5, 4, generator=gen, dtype=torch.float64) for h in (9, 3, 3))
    am = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    mask = make_mask(5, 5, attention_mask=am.bool())
    assert torch.equal(find["yt_mask"].reference(am, 5), mask)
    torch.testing.assert_close(find["yt_batched_gqa"].reference(q, kk, v, mask), grouped_attention(q, kk, v, mask))
    np.testing.assert_allclose(find["yt_grouped"].reference(q.numpy(), kk.numpy(), v.numpy(), na.causal_mask(5)),
                               grouped_attention(q, kk, v, make_mask(5, 5)).numpy(), atol=1e-12)
    x, pos = torch.randn(6, 8, generator=gen, dtype=torch.float64), torch.arange(3, 9)
    cos, sin = Rotary(8, 32)(pos[None], torch.float64)
    torch.testing.assert_close(find["yt_rope"].reference(x, pos.tolist()), apply_rotary(x[None, None], cos, sin)[0, 0],
                               atol=1e-6, rtol=1e-6)  # the package's tables are float32


def test_the_decode_step_reference_equals_attention_over_the_rotated_sequence():
    import torch

    from mqa_edu.checks.yourturn import _rope
    find = {q.qid.split(".")[1]: q for q in TASKS}
    gen = torch.Generator().manual_seed(3)
    keys, values = torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, 4, generator=gen,
                                                                                        dtype=torch.float64)
    q = torch.randn(4, generator=gen, dtype=torch.float64)
    rotated = _rope(keys, list(range(5)))  # the full sequence, every key rotated at its own position
    expected = torch.softmax(rotated @ _rope(q[None], [4])[0] / 2.0, dim=0) @ values
    got = find["yt_decode_step"].reference(q, keys[4], values[4], rotated[:4], values[:4], 4)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("task, mistake", MISTAKES, ids=lambda t: getattr(t, "qid", getattr(t, "name", "")))
def test_a_planted_mistake_gets_its_hint(task, mistake, capsys):
    verdict = cell.check(task.qid, mistake.fn)
    out = capsys.readouterr().out
    assert verdict.passed is False and mistake.hint in out, out
    for line in out.splitlines():  # the hint leads: no wall of numbers before it
        if mistake.hint in line:
            assert line.index(mistake.hint) < 300, line[:400]


@pytest.mark.parametrize("task", TASKS, ids=lambda q: q.qid)
def test_the_reference_passes_fast_and_a_stub_is_not_yet_attempted(task, capsys):
    task.cases(None, False)  # warm up: the first torch task imports torch
    start = time.perf_counter()
    assert cell.check(task.qid, task.reference).passed is True
    assert time.perf_counter() - start < 0.5
    capsys.readouterr()

    def stub(*args):
        raise NotImplementedError("hint")

    assert cell.check(task.qid, stub).passed is None
    assert "not yet attempted. The notebook goes on with the package's" in capsys.readouterr().out


def test_numpy_checks_import_no_torch():
    code = ("import sys, numpy as np\nfrom mqa_edu.checks import check\n"
            "check('nb01.yt_softmax', lambda s: np.exp(s - s.max(-1, keepdims=True)) / "
            "np.exp(s - s.max(-1, keepdims=True)).sum(-1, keepdims=True))\n"
            "check('nb02.yt_merge_heads', lambda x: x)\ncheck('nb03.yt_head_mapping', lambda h, kv: [0] * h)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().endswith("False")


def test_predictions_are_recorded_and_revealed(capsys):
    choices = {"a": "stays", "b": "grows", "c": "saturates"}
    predict("t.one", "C", choices)
    assert "recorded: (c)" in capsys.readouterr().out
    assert reveal("t.one", "c") is True and "right" in capsys.readouterr().out
    predict("t.two", "a", choices)
    assert reveal("t.two", "c", why="because") is False
    assert "you predicted (a); the measurement says (c) saturates. because" in capsys.readouterr().out
    predict("t.three", None, choices)
    assert reveal("t.three", "b") is None and "(b) grows" in capsys.readouterr().out
    predict("t.four", "z", choices)
    assert "must be one of" in capsys.readouterr().out


def test_no_check_says_only_that_an_answer_is_not_right():
    """Every concept question gives a reason with a wrong answer it has no specific hint for (nb05.position answered
    3 used to get an empty "is not right.")."""
    from mqa_edu.checks.concepts import NOTEBOOKS

    for questions in NOTEBOOKS.values():
        for q in questions:
            if q.kind == "value":
                assert q.hint, q.qid
                ok, message = judging.judge(q, (), -12345)
                assert not ok and len(message.split("is not right.")[-1].strip()) > 20, (q.qid, message)
