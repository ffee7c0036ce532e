"""The trade-off study: the --quick pipeline end to end (as a subprocess, like a user runs it), and the results that
ship with the package (complete, consistent with their checkpoints, reproducible from what they record)."""
import json
import subprocess
import sys

import pytest
import torch

from mqa_edu.heads import divisors
from mqa_edu.model import ModelConfig, Transformer
from mqa_edu.studies.results import RESULTS_DIR
from mqa_edu.studies.tradeoff import (
    SIZES,
    Task,
    beyond_designs,
    cache_bytes_per_token,
    load_results,
    matched_d_ff,
    task_seeds,
    tradeoff,
)
from mqa_edu.train import load_checkpoint
from tests.helpers import raises_naming


def check_complete(res, seeds_at_least):
    """Every task x comparison x divisor x seed was trained, and the summary table agrees with the runs."""
    for task, setup in res["tasks"].items():
        n_heads = setup["model"]["n_heads"]
        for comparison in ("same", "matched"):
            for kv in divisors(n_heads):
                if comparison == "matched" and kv == n_heads:
                    continue
                runs = [r for r in res["runs"]
                        if (r["task"], r["comparison"], r["n_kv_heads"]) == (task, comparison, kv)]
                assert len({r["seed"] for r in runs}) == len(runs) >= seeds_at_least, (task, comparison, kv)
                row = next(t for t in res["table"] if (t["task"], t["comparison"], t["n_kv_heads"]) ==
                           (task, comparison, kv))
                vals = [r["val_loss"] for r in runs]
                assert row["val_loss"]["mean"] == pytest.approx(sum(vals) / len(vals), abs=1e-5)
                assert all(r["steps"] == setup["train"]["steps"] and r["wall_seconds"] > 0 for r in runs)
        mha = next(r for r in res["runs"] if r["task"] == task and r["n_kv_heads"] == n_heads)
        for r in res["runs"]:
            if r["task"] == task:
                assert r["kv_bytes_per_token"] * n_heads == mha["kv_bytes_per_token"] * r["n_kv_heads"]
                if r["comparison"] == "matched":  # the wider MLP gives the K/V parameters back, to within one unit
                    assert abs(r["params"] - mha["params"]) <= 3 * setup["model"]["d_model"]
                elif r["n_kv_heads"] < n_heads:
                    assert r["params"] < mha["params"]
    assert res["environment"]["torch"] and res["environment"]["threads"] >= 1 and res["sizes"]["seeds"]
    assert res["wall_seconds"] > 0 and res["command"].startswith("python -m mqa_edu.studies tradeoff")
    conv = res["conversion"]
    n_heads = res["tasks"]["text"]["model"]["n_heads"]
    assert {(e["n_kv_heads"], e["pooling"]) for e in conv["conversions"]} == {
        (kv, p) for kv in divisors(n_heads)[:-1] for p in ("mean", "first", "random")}
    for e in conv["conversions"]:
        assert [u["fraction"] for u in e["uptrained"]] == [0.05, 0.1, 0.2]
    for gr in conv["groupings"]:
        assert 0 < gr["p_value"] <= 1 and len(gr["random_losses"]) == res["sizes"]["random_groupings"]
    # the fair baseline: from scratch for each uptraining budget, its own schedule, every seed of the text sweep
    base = conv["scratch_same_budget"]
    assert base["wall_seconds"] > 0
    assert sorted((r["n_kv_heads"], r["fraction"], r["seed"]) for r in base["runs"]) == sorted(
        (kv, f, s) for kv in divisors(n_heads)[:-1] for f in res["sizes"]["fractions"]
        for s in task_seeds(res["sizes"], "text"))
    steps = {e["fraction"]: e["steps"] for e in conv["conversions"][0]["uptrained"]}
    assert all(r["steps"] == steps[r["fraction"]] for r in base["runs"])  # the same steps as the uptraining
    for task in res["tasks"]:  # every seed a task's sizes name was trained
        assert {r["seed"] for r in res["runs"] if r["task"] == task} == set(task_seeds(res["sizes"], task))
    # notebook 11's designs: every one the task's model allows, every seed, the sweep's steps, bytes from the formula
    beyond = res["beyond"]
    for task, setup in res["tasks"].items():
        base = ModelConfig(**setup["model"])
        designs, skipped = beyond_designs(base)
        runs = [r for r in beyond["runs"] if r["task"] == task]
        assert sorted((r["design"], r["seed"]) for r in runs) == sorted(
            (d, s) for d in designs for s in task_seeds(res["sizes"], task))
        assert {n["design"] for n in beyond["not_applicable"] if n["task"] == task} == {n for n, _ in skipped}
        for r in runs:
            cfg = ModelConfig(**{**setup["model"], **designs[r["design"]]})
            assert r["kv_bytes_per_token"] == cache_bytes_per_token(cfg) and r["steps"] == setup["train"]["steps"]
    assert beyond["wall_seconds"] > 0 and beyond["environment"]["torch"]


def test_quick_study_runs_end_to_end(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.run([sys.executable, "-m", "mqa_edu.studies", "tradeoff", "--quick", "--out", str(out),
                           "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote" in proc.stdout
    res = load_results(out)
    assert res["size"] == "quick"
    check_complete(res, seeds_at_least=2)
    for name in res["checkpoints"]:
        task = name.split("_")[0]
        model, record = load_checkpoint(out / name, expect=ModelConfig(**{**res["tasks"][task]["model"], **(
            {"n_kv_heads": 1} if "_mqa_" in name else {})}))
        assert record["config"]["steps"] == res["tasks"][task]["train"]["steps"]


def test_shipped_results_are_complete_and_match_their_checkpoints():
    res = load_results()
    assert res["size"] == "cpu"
    check_complete(res, seeds_at_least=3)
    assert len(task_seeds(res["sizes"], "recall")) >= 5  # Welch's df near 4 rather than 2
    # the study, with the parts added since (notebook 11's designs among them), fits in under two hours on 2 CPU cores
    parts = sum(part["wall_seconds"] for part in res.get("parts", [])) + res["beyond"]["wall_seconds"]
    assert res["wall_seconds"] + parts + res["conversion"]["scratch_same_budget"]["wall_seconds"] < 110 * 60
    # The shipped MHA checkpoint (fp16) scores what the study recorded for it (fp32), on the same batches.
    task = Task("text", res["sizes"], torch.device("cpu"))
    model, _ = load_checkpoint(RESULTS_DIR / "text_mha_seed0.safetensors",
                               expect=ModelConfig(**res["tasks"]["text"]["model"]))
    recorded = next(r for r in res["runs"] if r["task"] == "text" and r["n_kv_heads"] == model.cfg.n_heads
                    and r["seed"] == 0)
    assert task.score(model, task.final_batches())["val_loss"] == pytest.approx(recorded["val_loss"], abs=0.01)
    # and another vocabulary is refused with a message that names it
    with raises_naming(ValueError, "vocab_size=256 (expected 512)"):
        load_checkpoint(RESULTS_DIR / "text_mha_seed0.safetensors",
                        expect=ModelConfig(**{**res["tasks"]["text"]["model"], "vocab_size": 512}))
    assert json.loads((RESULTS_DIR / "tradeoff.json").read_text())["format"] == "mqa_edu.tradeoff/1"


def test_matched_width_pays_back_the_kv_parameters():
    base = ModelConfig(n_layers=2, d_model=96, n_heads=8, vocab_size=50)
    mha = sum(p.numel() for p in Transformer(base).parameters())
    for kv in (4, 2, 1):
        cfg = ModelConfig(n_layers=2, d_model=96, n_heads=8, n_kv_heads=kv, vocab_size=50, d_ff=matched_d_ff(base, kv))
        assert abs(sum(p.numel() for p in Transformer(cfg).parameters()) - mha) <= 3 * 96 * 2 / 2


def test_bad_study_input_is_named(tmp_path):
    with raises_naming(ValueError, "size must be one of", "'quick'"):
        tradeoff("huge", out=tmp_path)
    with raises_naming(FileNotFoundError, "python -m mqa_edu.studies tradeoff"):
        load_results(tmp_path)
    (tmp_path / "tradeoff.json").write_text('{"format": "other"}')
    with raises_naming(ValueError, "not a tradeoff study result"):
        load_results(tmp_path)
    assert set(SIZES) == {"quick", "cpu", "gpu"}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_size_builds_its_models(size):
    """The GPU sizes never train in CI: at least every model and batch they would use is built and checked here."""
    for name in ("text", "recall"):
        task = Task(name, {**SIZES[size], name: {**SIZES[size][name], **(
            {"max_bytes": 100_000} if name == "text" else {})}}, torch.device("cpu"))
        x, y = task.batch("train")(torch.Generator().manual_seed(0))
        assert x.shape == (SIZES[size][name]["batch"], task.seq_len)
        for kv in divisors(task.base.n_heads):
            for d_ff in {task.base.d_ff, matched_d_ff(task.base, kv)}:
                cfg = ModelConfig(**{**task.base.__dict__, "n_kv_heads": kv, "d_ff": d_ff})
                model = Transformer(cfg)  # the largest is a few million parameters: built and run once, on 4 tokens
                with torch.no_grad():
                    assert model(x[:1, :4]).shape == (1, 4, task.vocab)
        cfg = task.train_config(0, 0.05)
        assert cfg.steps >= 1 and cfg.warmup <= cfg.steps
