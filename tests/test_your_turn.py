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


def test_every_lecture_notebook_01_to_12_has_a_full_version():
    if not SOURCES:
        pytest.skip("a student release has no full versions")
    assert [p.name[:2] for p in SOURCES] == [f"{n:02d}" for n in range(1, 13)]
    assert sorted(QUESTIONS) == [f"nb{n:02d}" for n in range(1, 13)]


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


def test_kernel_task_reference_agrees_with_sdpa_and_the_package():
    import torch.nn.functional as F

    from mqa_edu import decode_kernel
    from mqa_edu.checks.yourturn_later import _decode_cases

    find = {q.qid.split(".")[1]: q for q in TASKS}
    for q, k, v, key_mask in _decode_cases(None):
        ref = find["yt_kernel"].reference(q, k, v, key_mask)
        tq, tk, tv, tm = (torch.as_tensor(a) for a in (q, k, v, key_mask))
        sdpa = F.scaled_dot_product_attention(tq[:, :, None], tk, tv, attn_mask=tm[:, None, None, :],
                                              enable_gqa=True)[:, :, 0]
        np.testing.assert_allclose(ref, sdpa.double().numpy(), atol=2e-5)
        if decode_kernel.available():
            np.testing.assert_allclose(ref, decode_kernel.gqa_decode(tq, tk, tv, tm).double().numpy(), atol=2e-5)


BUGS = ("no_scale", "no_mask", "interleaved", "no_rescale")


@pytest.mark.parametrize("bug", BUGS)
def test_a_kernel_written_with_a_known_bug_gets_that_bugs_hint(bug, capsys):
    """The mistakes of the kernel task are NumPy models of bugs; here each bug is written into a real Triton kernel
    (run by the interpreter on a CPU), and the check names it."""
    from mqa_edu import decode_kernel

    if not decode_kernel.available():
        pytest.skip("Triton is not installed")
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(Q, K, V, M, Out, n_slots, sm_scale, s_qb, s_qh, s_kb, s_kh, s_kt, s_mb, s_ob, s_oh, n_kv,
               G: tl.constexpr, D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr,
               SCALE: tl.constexpr, MASK: tl.constexpr, GROUPED: tl.constexpr, RESCALE: tl.constexpr):
        b, kv = tl.program_id(0), tl.program_id(1)
        g, d = tl.arange(0, BLOCK_G), tl.arange(0, D)
        ok = g < G
        heads = kv * G + g if GROUPED else g * n_kv + kv  # the bug: head j read from kv head j % n_kv
        q = tl.load(Q + b * s_qb + heads[:, None] * s_qh + d[None, :], mask=ok[:, None], other=0.0)
        m = tl.full([BLOCK_G], float("-inf"), tl.float32)
        total = tl.zeros([BLOCK_G], tl.float32)
        acc = tl.zeros([BLOCK_G, D], tl.float32)
        for first in range(0, n_slots, BLOCK_N):
            n = first + tl.arange(0, BLOCK_N)
            inside = n < n_slots
            keep = inside & (tl.load(M + b * s_mb + n, mask=inside, other=0) != 0) if MASK else inside
            k = tl.load(K + b * s_kb + kv * s_kh + n[:, None] * s_kt + d[None, :], mask=inside[:, None], other=0.0)
            v = tl.load(V + b * s_kb + kv * s_kh + n[:, None] * s_kt + d[None, :], mask=inside[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision="ieee") * (sm_scale if SCALE else 1.0)
            s = tl.where(keep[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            use = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp(m - use) if RESCALE else tl.full([BLOCK_G], 1.0, tl.float32)
            p = tl.exp(s - use[:, None])
            total = total * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
            m = m_new
        out = acc / tl.where(total == 0.0, 1.0, total)[:, None]
        tl.store(Out + b * s_ob + heads[:, None] * s_oh + d[None, :], out, mask=ok[:, None])

    flags = {"SCALE": bug != "no_scale", "MASK": bug != "no_mask", "GROUPED": bug != "interleaved",
             "RESCALE": bug != "no_rescale"}

    def my_gqa_decode(q, k, v, key_mask):
        q, k, v = (torch.as_tensor(a).float().contiguous() for a in (q, k, v))
        mask = torch.as_tensor(key_mask).to(torch.int8).contiguous()
        b, h, d = q.shape
        n_kv = k.shape[1]
        out = torch.zeros(b, h, d)
        kernel[(b, n_kv)](q, k, v, mask, out, k.shape[2], d ** -0.5, q.stride(0), q.stride(1), k.stride(0),
                          k.stride(1), k.stride(2), mask.stride(0), out.stride(0), out.stride(1), n_kv,
                          G=h // n_kv, D=d, BLOCK_G=max(16, triton.next_power_of_2(h // n_kv)), BLOCK_N=16, **flags)
        return out

    verdict = cell.check("nb12.yt_kernel", my_gqa_decode)
    out = capsys.readouterr().out
    hint = next(m.hint for m in QUESTIONS["nb12"][0].mistakes if m.name == bug)
    assert verdict.passed is False and hint in out, out
    flags = dict.fromkeys(flags, True)
    assert cell.check("nb12.yt_kernel", my_gqa_decode).passed  # the same kernel without the bug passes
