"""Notebook 10's study: SmolLM2-135M to MQA by greedy layer pooling, then K/V-only uptraining. One command:

    python -m mqa_edu.studies smollm2            # the shipped run (about 35 min on 2 CPU cores)
    python -m mqa_edu.studies smollm2 --quick    # the same pipeline, tiny budgets (what the notebook runs live)

It writes ``smollm2_mqa.json`` (seeds, steps, wall times, versions and every curve) next to the trade-off study.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .. import pretrained
from ..data import NOVELS, load_novel, text_batch
from ..device import describe_environment, pick_device
from ..train import environment, evaluate
from ..uptrain import greedy_pooling, mean_loss, to_mqa, uptrain_kv
from .results import read_results

RESULTS_FILE = "smollm2_mqa.json"
MODERN_TEXT = Path(__file__).resolve().parents[1] / "texts" / "modern" / "kv_cache.txt"

# Budgets. "cpu" is what ships; "quick" is what notebook 10 runs live and the tests run; "gpu" goes further.
SIZES = {
    "quick": {"steps": 12, "batch": 2, "seq_len": 128, "lr": 3e-3, "warmup": 2, "eval_every": 4, "eval_batches": 1,
              "eval_seq_len": 256, "train_novels": ("emma",), "greedy_steps": 3, "greedy_candidates": 4},
    "cpu": {"steps": 200, "batch": 4, "seq_len": 256, "lr": 3e-3, "warmup": 10, "eval_every": 20, "eval_batches": 2,
            "eval_seq_len": 256, "train_novels": None, "greedy_steps": None, "greedy_candidates": None},
    "gpu": {"steps": 2000, "batch": 16, "seq_len": 512, "lr": 2e-3, "warmup": 100, "eval_every": 100,
            "eval_batches": 8, "eval_seq_len": 512, "train_novels": None, "greedy_steps": None,
            "greedy_candidates": None},
}


def modern_text() -> str:
    """A short modern text written for the course (about KV caches), to measure perplexity on text unlike Austen."""
    return MODERN_TEXT.read_text(encoding="utf-8")


def smollm2_study(size: str = "cpu", out=None, device=None, seed: int = 0, log=print, progress: bool = False) -> dict:
    """Greedy layer pooling and K/V-only uptraining of SmolLM2-135M as MQA; writes ``smollm2_mqa.json`` to ``out``."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    sz = SIZES[size]
    device = device if isinstance(device, torch.device) else pick_device(device or "auto")
    began = time.perf_counter()
    model = pretrained.load_smollm2(device=device)
    tok = pretrained.load_tokenizer()
    novels = sz["train_novels"] or tuple(n for n in NOVELS if n != "persuasion")
    train_ids = torch.tensor(tok("\n".join(load_novel(n) for n in novels)).input_ids)
    val_ids = torch.tensor(tok(load_novel("persuasion")).input_ids)  # a whole novel never trained on
    # the search's text: fixed windows of the held-out novel, the same for every candidate
    search_ids = text_batch(val_ids, 2, sz["eval_seq_len"], torch.Generator().manual_seed(seed + 2))[0].to(device)
    modern_ids = torch.tensor([tok(modern_text()).input_ids], device=device)

    t0 = time.perf_counter()
    search = greedy_pooling(model, search_ids, 1, sz["greedy_steps"], sz["greedy_candidates"], progress=log)
    search["wall_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"greedy search: {search['forward_passes']} forward passes in {search['wall_seconds']} s")

    shipped = {"search_text": search["base"], "modern": mean_loss(model, modern_ids)}
    mqa = to_mqa(model)
    converted = {"search_text": mean_loss(mqa, search_ids), "modern": mean_loss(mqa, modern_ids)}
    log(f"loss as shipped {shipped}, as MQA {converted}; uptraining {sz['steps']} steps")
    record = uptrain_kv(mqa, train_ids, val_ids, sz["steps"], sz["batch"], sz["seq_len"], sz["lr"], sz["warmup"],
                        sz["eval_every"], sz["eval_batches"], sz["eval_seq_len"], seed=seed, progress=progress)
    uptrained = {"search_text": mean_loss(mqa, search_ids), "modern": mean_loss(mqa, modern_ids)}
    # the curve's validation batches (same seed, same windows), scored by the model as shipped
    val_shipped = evaluate(model, lambda g: [t.to(device) for t in text_batch(val_ids, sz["batch"], sz["eval_seq_len"],
                                                                              g)],
                           sz["eval_batches"], torch.Generator().manual_seed(seed + 1))
    results = {
        "format": "mqa_edu.smollm2_mqa/1", "size": size, "budget": {k: v for k, v in sz.items()}, "seed": seed,
        "command": "python -m mqa_edu.studies smollm2" + ("" if size == "cpu" else f" --size {size}"),
        "model": pretrained.GGUF_FILE, "wheel": pretrained.WHEEL, "device": str(device),
        "environment": {**environment(), **describe_environment()},
        "texts": {"train": list(novels), "validation": "persuasion", "train_tokens": train_ids.numel(),
                  "validation_tokens": val_ids.numel(), "search": f"2 windows of {sz['eval_seq_len']} tokens of "
                  "persuasion", "modern": str(MODERN_TEXT.relative_to(MODERN_TEXT.parents[2]))},
        "search": search,
        "loss": {"shipped": shipped, "mqa_converted": converted, "mqa_uptrained": uptrained,
                 "validation_shipped": round(val_shipped, 5)},
        "uptrain": record,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=1))
        log(f"wrote {out / RESULTS_FILE} in {results['wall_seconds']} s")
    return results


def load_study(path=None) -> dict:
    """The SmolLM2 study's results: the shipped ones by default, or ``path`` (the JSON or its folder)."""
    return read_results(path, RESULTS_FILE, "mqa_edu.smollm2_mqa/1", "smollm2", label="SmolLM2")
