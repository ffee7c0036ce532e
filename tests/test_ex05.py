"""Exercise 5 (beyond MQA): the references agree with the course's sizing and with the caches the model allocates,
the design question follows from its rule, the Pareto question from the shipped study, and the grader gives the
solution full marks, the blank zero, and a hint for each planted mistake (the rotary key counted per head, CLA on an
odd number of layers, CLA not halving the layers)."""
import math
from pathlib import Path

import nbformat
import pytest
import torch

from mqa_edu.grading.exercises import ex05_kv_design as ex05
from tests.helpers import assert_identical_rows, grade_batch, with_cell, with_copies

EXERCISE = ex05.EXERCISE
ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ex05_kv_design.ipynb"
STUDENT = ROOT / "exercises" / "ex05_kv_design.ipynb"
AUTO = EXERCISE.total - sum(q.points for q in EXERCISE.questions if q.kind == "text")


def test_references_agree_with_the_course_sizing_and_the_allocated_caches():
    from mqa_edu.kv_cache import KVCache
    from mqa_edu.model import ModelConfig
    from mqa_edu.sizing import LATENT_MODELS, ModelSpec, kv_cache_bytes
    v2 = LATENT_MODELS["DeepSeek-V2"]
    assert ex05._mla(60, 128, 512, 64, 1, 1, 2) == kv_cache_bytes(v2, 1, 1, "bf16") == 69_120
    for n_layers, share, kv, hd, tokens, batch in ((5, 2, 1, 16, 7, 3), (7, 3, 2, 8, 10, 1), (4, 2, 4, 8, 3, 2)):
        spec = ModelSpec("cla", n_layers, kv * hd * 2, kv * 2, kv, hd, kv_share=share)
        assert ex05._cla(n_layers, share, kv, hd, tokens, batch, 2) == kv_cache_bytes(spec, tokens, batch, "fp16")
        cfg = ModelConfig(n_layers=n_layers, d_model=kv * hd * 2, n_heads=kv * 2, n_kv_heads=kv, kv_share=share,
                          vocab_size=10, max_seq_len=16)
        assert KVCache.for_model(cfg, batch, tokens, dtype=torch.float16).nbytes == \
            ex05._cla(n_layers, share, kv, hd, tokens, batch, 2)
    cfg = ModelConfig(n_layers=3, d_model=32, n_heads=4, kv_lora_rank=12, rope_dim=4, vocab_size=10, max_seq_len=16)
    assert KVCache.for_model(cfg, 2, 9, dtype=torch.float16).nbytes == ex05._mla(3, 4, 12, 4, 9, 2, 2)


def test_the_design_follows_from_its_rule():
    sizes = {n: ex05._design_bytes(n) for n in ex05.DESIGNS}
    budget = ex05.S["budget_gib"] * 2**30
    assert ex05._fits() == "gqa-8+cla2" and sizes["GQA-8+CLA2"] <= budget < sizes["GQA-8"]
    assert sizes["GQA-8"] == 64 * 2**30 and sizes["MLA"] == 18 * 2**30
    assert ex05._fits(cla=False) == "mla"  # the "CLA does not halve" mistake picks another design


def test_the_pareto_question_reads_the_shipped_study():
    rows = ex05._study_rows()
    assert {"MHA", "MQA"} <= set(rows) and any(n.startswith("MLA") for n in rows) and "MQA+CLA2" in rows
    within = {n: v for n, v in rows.items() if v[1] <= ex05.BUDGET_BYTES}
    assert ex05._best_under() == min(within, key=lambda n: within[n][0]).lower()
    assert ex05._best_under() in ex05._q4_choices()
    assert math.isclose(rows["MHA"][1], 2 * 2 * 8 * 16 * 2)  # 2 layers, K and V, 8 heads of 16, fp16


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    sol = nbformat.read(SOLUTION, as_version=4)
    planted = with_cell(with_cell(
        sol, "def mla_cache_bytes(", "def mla_cache_bytes(n_layers, n_heads, kv_lora_rank, rope_dim, tokens, batch, "
                                     "bytes_per_element):\n    return n_layers * (kv_lora_rank + n_heads * rope_dim) "
                                     "* tokens * batch * bytes_per_element"),
        "def cla_cache_bytes(", "def cla_cache_bytes(n_layers, kv_share, n_kv_heads, head_dim, tokens, batch, "
                                "bytes_per_element):\n    return (n_layers // kv_share) * 2 * n_kv_heads * head_dim "
                                "* tokens * batch * bytes_per_element")
    no_cla = with_cell(sol, "def design_that_fits(", "def design_that_fits():\n    return 'MLA'")
    course_code = with_cell(sol, "def mla_cache_bytes(", "def mla_cache_bytes(*args):\n    from mqa_edu.sizing "
                            "import kv_cache_bytes\n    return 0")
    notebooks = {"solution": sol, "planted": planted, "no_cla": no_cla, "course_code": course_code,
                 "blank": nbformat.read(STUDENT, as_version=4)}
    notebooks = with_copies(notebooks, "planted")  # five identical copies: five identical rows
    return grade_batch(tmp_path_factory.mktemp("ex05"), "ex05_kv_design", notebooks,
                       cell_timeout=20, call_timeout=5, timeout=90)


def messages(r, qid):
    return " ".join(r["questions"][qid]["messages"])


def test_grader_gives_the_solution_full_marks_and_the_blank_zero(graded):
    assert graded["solution"]["total"] == AUTO == 80, graded["solution"]
    assert graded["solution"]["free_text"]["ex05.q6"].startswith("Cache: MLA stores 576")
    assert graded["blank"]["total"] == 0


def test_grader_names_planted_mistakes(graded):
    r = graded["planted"]
    assert r["questions"]["ex05.q1"]["points"] == 0 and "ONE vector shared by every head" in messages(r, "ex05.q1")
    q2 = r["questions"]["ex05.q2"]  # floor division is right where kv_share divides n_layers: half the hidden cases
    assert 0 < q2["points"] < q2["max"] and "ceil(n_layers / kv_share)" in messages(r, "ex05.q2")
    assert r["total"] == AUTO - 20 - (q2["max"] - q2["points"]), r["questions"]  # two mistakes, two questions
    r = graded["no_cla"]
    assert r["questions"]["ex05.q3"]["points"] == 0 and "every second layer" in messages(r, "ex05.q3")
    assert r["total"] == AUTO - 15


def test_course_code_scores_zero_for_its_question(graded):
    r = graded["course_code"]
    assert r["questions"]["ex05.q1"]["points"] == 0 and r["total"] == AUTO - 20


def test_identical_copies_get_identical_rows(graded):
    assert_identical_rows(graded, "planted")
