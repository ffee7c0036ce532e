"""The "your turn" tasks of the lecture notebooks: one source (solutions/lectures/, solved) gives both versions (the
student's in notebooks/, with stubs), the references agree with the package, every known mistake gets its own hint,
checks are fast and import no torch, and predictions are recorded and revealed."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  imported here, not first inside a check's time limit (an alarm mid-import breaks torch)

from mqa_edu import numpy_attention as na
from mqa_edu.authoring.make_exercise import render
from mqa_edu.checks import cell, judging, predict, reveal
from mqa_edu.checks.yourturn import QUESTIONS as FIRST_HALF
from mqa_edu.checks.yourturn_later import QUESTIONS as SECOND_HALF

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "solutions" / "lectures").glob("*.ipynb"))
QUESTIONS = {**FIRST_HALF, **SECOND_HALF}
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


def test_every_lecture_notebook_01_to_11_has_a_full_version():
    if not SOURCES:
        pytest.skip("a student release has no full versions")
    assert [p.name[:2] for p in SOURCES] == [f"{n:02d}" for n in range(1, 12)]
    assert sorted(QUESTIONS) == [f"nb{n:02d}" for n in range(1, 12)]


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
    task.cases(None, False)  # warm up: the first torch task imports torch (and the train-step task the model)
    task.reference(*task.cases(None, False)[0])
    start = time.perf_counter()
    assert cell.check(task.qid, task.reference).passed is True
    assert time.perf_counter() - start < (1.0 if task.runs_course_code else 0.5)  # the train step trains a model
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


# ---------------------------------------------------------------------------------------------- 06-10
def test_sizing_task_references_agree_with_the_package():
    from mqa_edu.checks.yourturn_later import _configs, _max_context
    from mqa_edu.sizing import from_hf_config, kv_cache_bytes, max_context
    find = {q.qid.split(".")[1]: q for q in TASKS}
    dtypes = {1: "fp8", 2: "fp16", 4: "fp32"}
    for config in _configs():
        spec = from_hf_config(config)
        for context, batch, bpe in ((1, 1, 2), (31, 2, 4), (100, 3, 1), (5000, 1, 2)):
            assert find["yt_config_bytes"].reference(config, context, batch, bpe) == \
                kv_cache_bytes(spec, context, batch, dtypes[bpe]), (config, context)
        for budget, batch, bpe in ((10_000, 1, 2), (700_000, 2, 2), (3_000_000, 1, 4)):
            mine, package = _max_context(config, budget, batch, bpe), max_context(spec, batch, budget, dtypes[bpe])
            limit = config["max_position_embeddings"]
            assert mine == min(package, limit), (config, budget)  # the package has no limit: inf when all fits


def test_decode_floor_references_agree_with_the_package():

    from mqa_edu.bench import decode_attention_intensity, kv_bytes
    find = {q.qid.split(".")[1]: q for q in TASKS}
    cases = ((1, 32, 8, 8192, 128, 2, 3350), (3, 9, 3, 100, 16, 4, 20), (2, 71, 1, 7, 64, 2, 1))
    for b, h, kv, ctx, hd, bpe, bw in cases:
        dtype = {2: torch.float16, 4: torch.float32}[bpe]
        assert find["yt_floor"].reference(b, h, kv, ctx, hd, bpe, bw) == pytest.approx(
            kv_bytes(b, kv, ctx, hd, dtype) / (bw * 1e9) * 1e6, rel=1e-12)
        assert find["yt_intensity"].reference(b, h, kv, ctx, hd, bpe) == pytest.approx(
            decode_attention_intensity(h // kv, bpe), rel=1e-12)


def test_head_comparison_references_agree_with_the_package():

    from mqa_edu.checks.yourturn_later import _rows
    from mqa_edu.redundancy import js_divergence, map_cosine
    find = {q.qid.split(".")[1]: q for q in TASKS}
    for seed in range(4):
        p, q = _rows(seed, 6), _rows(seed + 10, 6)
        assert find["yt_js"].reference(p, q).mean() == pytest.approx(js_divergence(torch.tensor(p), torch.tensor(q)),
                                                                      rel=1e-9)
        assert find["yt_cosine"].reference(p, q) == pytest.approx(map_cosine(torch.tensor(p), torch.tensor(q)),
                                                                   rel=1e-9)


def test_training_task_references_agree_with_the_package():

    from mqa_edu.checks.yourturn_later import train_step, training_run
    from mqa_edu.data import text_batch
    from mqa_edu.train import train_step as package_step
    find = {q.qid.split(".")[1]: q for q in TASKS}
    ids = torch.arange(300) % 37
    gen = torch.Generator().manual_seed(4)
    x, y = text_batch(ids, 5, 12, gen)
    starts = torch.randint(0, 300 - 12 - 1, (5,), generator=torch.Generator().manual_seed(4)).tolist()
    mine_x, mine_y = find["yt_windows"].reference(ids, starts, 12)
    assert torch.equal(mine_x, x) and torch.equal(mine_y, y)

    assert training_run(train_step, 3, 5) == training_run(package_step, 3, 5)


def test_real_model_task_references_agree_with_the_package():
    import math

    from mqa_edu.convert import _pool_heads
    from mqa_edu.model import ModelConfig, Transformer
    from mqa_edu.uptrain import perplexity
    find = {q.qid.split(".")[1]: q for q in TASKS}
    w = torch.randn(3 * 8, 10, dtype=torch.float64)
    torch.testing.assert_close(find["yt_pool_mqa"].reference(w, 3), _pool_heads(w, 1, 8))
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, vocab_size=13, max_seq_len=16))
    ids = torch.randint(0, 13, (1, 12))
    with torch.no_grad():
        mine = find["yt_perplexity"].reference(model(ids), ids)
    assert mine == pytest.approx(perplexity(model, ids), rel=1e-5) and 1 < mine < 13 * math.e


def test_the_train_step_check_is_not_traced_and_its_runs_start_fresh():
    """The train-step task runs the course's model inside the learner's step: that is not 'calling the course's
    answer', and each case starts from a fresh model, so the reference and the learner see the same start."""
    from mqa_edu.checks.yourturn_later import runs_of, train_step
    find = {q.qid.split(".")[1]: q for q in TASKS}
    assert find["yt_train_step"].runs_course_code
    assert runs_of(train_step)(0, 3) == runs_of(train_step)(0, 3)
    assert not [q.qid for q in TASKS if q.runs_course_code and q.qid != "nb09.yt_train_step"]


def _graded_function_questions():
    from mqa_edu.grading.registry import EXERCISES, load_exercise
    return [(name, q) for name in EXERCISES for q in load_exercise(name).questions if q.kind == "function"]


@pytest.mark.skipif(not (ROOT / "mqa_edu" / "grading" / "exercises").is_dir(),
                    reason="a student release has no private exercise definitions")
@pytest.mark.parametrize("task", TASKS, ids=lambda q: q.qid)
def test_no_task_is_a_graded_question_under_another_name(task):
    """A "your turn" task's check must not confirm a graded answer: run its reference on every graded function
    question's hidden cases; it must not reproduce the graded reference on all of them (it raises, or differs)."""
    import random
    import warnings

    from mqa_edu.checks.judging import matches
    for name, graded in _graded_function_questions():
        assert task.answer_name != graded.answer_name, (task.qid, graded.qid)
        cases = graded.cases(random.Random(f"leak-{graded.qid}"), hidden=True)
        same = 0
        for case in cases:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    got = task.reference(*case)
            except Exception:
                continue
            expected = graded.reference(*case)
            same += matches(got, expected, max(graded.rel_tol, 1e-9))
        assert same < len(cases), f"{task.qid} answers {graded.qid} ({name})"


def test_mla_task_references_agree_with_the_package():

    from mqa_edu.checks.yourturn_later import _mla_case
    from mqa_edu.latent import LatentAttention
    find = {q.qid.split(".")[1]: q for q in TASKS}
    h, hd, r, dr, length = 3, 4, 6, 2, 5
    q_nope, q_rope, c, k_rope, w_uk, w_uv = _mla_case(11, h, hd, r, dr, length)
    attn = LatentAttention(h * hd, h, hd, r, dr).double()
    with torch.no_grad():
        attn.k_up.weight.copy_(torch.tensor(w_uk).reshape(h * hd, r))
        attn.v_up.weight.copy_(torch.tensor(w_uv).reshape(h * hd, r))
        attn.o_proj.weight.copy_(torch.eye(h * hd, dtype=torch.float64))  # read the heads' outputs as they are
    t = (lambda a: torch.tensor(a)[None])  # noqa: E731  add the batch axis
    np.testing.assert_allclose(find["yt_up_project"].reference(c, w_uk),
                               torch.einsum("blr,hdr->bhld", t(c), attn.k_up.weight.detach().view(h, hd, r))[0].numpy())
    for absorbed in (False, True):
        with torch.no_grad():
            out = attn.attend(t(q_nope)[:, :, None], t(q_rope)[:, :, None], t(c), t(k_rope), None, absorbed)
        np.testing.assert_allclose(find["yt_absorbed_step"].reference(q_nope, q_rope, c, k_rope, w_uk, w_uv),
                                   out.reshape(h, hd).numpy(), atol=1e-12)
