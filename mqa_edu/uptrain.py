"""From GQA to MQA on a pretrained model (notebook 10): which layers to pool, and uptraining the new K/V projections.

- :func:`perplexity` of a model on token ids.
- :func:`layer_costs`: pool one layer at a time (``convert.pooled_kv_layers``) and measure what each costs.
- :func:`greedy_pooling`: pool layers one by one, each time choosing, among the layers not yet pooled, the one whose
  pooling costs least *given the layers already pooled* (every remaining layer is re-measured at every step).
- :func:`uptrain_kv`: Ainslie et al. (2023) convert by mean pooling and then continue training. Here only the new
  K/V projections train and every other weight stays frozen, so the run fits a CPU: 2.2 M trainable numbers out of
  135 M for SmolLM2-135M.
- :func:`smollm2_study`: all of it on SmolLM2-135M, reproducible with one command

      python -m mqa_edu.experiments smollm2            # the shipped run (about 35 min on 2 CPU cores)
      python -m mqa_edu.experiments smollm2 --quick    # the same pipeline, tiny budgets

  which writes ``smollm2_mqa.json`` (seeds, steps, wall times, versions and every curve) next to the trade-off study.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .convert import pooled_kv_layers, repeat_kv_heads, to_grouped
from .heads import check_int
from .model import Transformer
from .data import text_batch
from .train import TrainConfig, environment, evaluate, loss_on, train

RESULTS_FILE = "smollm2_mqa.json"
KV_WEIGHTS = ("k_proj.weight", "v_proj.weight")
MODERN_TEXT = Path(__file__).resolve().parent / "texts" / "modern" / "kv_cache.txt"

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
    """A short modern paragraph written for the course (about KV caches), to measure perplexity on text unlike Austen."""
    return MODERN_TEXT.read_text(encoding="utf-8")


@torch.no_grad()
def mean_loss(model: Transformer, ids: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) over a (batch, seq) tensor of token ids."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids must be a (batch, seq) tensor of token ids with seq >= 2, got "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    return loss_on(model, ids[:, :-1], ids[:, 1:]).item()


def perplexity(model: Transformer, ids: torch.Tensor) -> float:
    """e to the mean next-token loss: lower is better; a model that guesses uniformly over V tokens scores V."""
    return math.exp(mean_loss(model, ids))


def layer_costs(model: Transformer, ids: torch.Tensor, n_kv_heads: int = 1, base: float | None = None) -> list[float]:
    """Extra loss (nats per token) of pooling each layer alone to ``n_kv_heads`` K/V heads, the others as shipped.
    ``base``: the unpooled model's loss on ``ids``, when the caller has it already."""
    base = mean_loss(model, ids) if base is None else base
    costs = []
    for layer in range(model.cfg.n_layers):
        with pooled_kv_layers(model, [layer], n_kv_heads):
            costs.append(mean_loss(model, ids) - base)
    return costs


def greedy_pooling(model: Transformer, ids: torch.Tensor, n_kv_heads: int = 1, steps: int | None = None,
                   candidates: int | None = None, progress=None) -> dict:
    """Pool layers greedily: at each step try every layer not yet pooled (with the ones chosen so far pooled too) and
    keep the cheapest. ``candidates`` limits each step to the that many layers cheapest alone (None: all), and
    ``steps`` how many layers to pool (None: all), so a notebook can run a small search live.

    Returns, with losses in nats per token: "base" (nothing pooled), "alone" (each layer pooled alone), "order" and
    "loss" (the greedy choice and the loss after each step), "tried" (every candidate's loss at each step), and for
    comparison "ranked" / "ranked_loss" (pooling in the order of the cost alone, without re-measuring), and
    "forward_passes".
    """
    n = model.cfg.n_layers
    steps = n if steps is None else min(check_int("steps", steps), n)
    base = mean_loss(model, ids)
    alone = layer_costs(model, ids, n_kv_heads, base)
    ranked = [int(i) for i in np.argsort(alone)]
    order, losses, tried, passes = [], [], [], n + 1
    for _ in range(steps):
        pool = [layer for layer in ranked if layer not in order]
        if candidates is not None:
            pool = pool[:check_int("candidates", candidates)]
        scores = {}
        for layer in pool:
            with pooled_kv_layers(model, order + [layer], n_kv_heads):
                scores[layer] = mean_loss(model, ids)
            passes += 1
        best = min(scores, key=scores.get)
        order.append(best)
        losses.append(scores[best])
        tried.append({str(k): round(v, 5) for k, v in scores.items()})
        if progress:
            progress(f"pooled {len(order)}/{steps}: layer {best}, loss {scores[best]:.4f} (base {base:.4f})")
    # the cheaper alternative, for comparison: pool in the order of the cost alone, never re-measuring
    by_alone = []
    for k in range(1, steps + 1):
        with pooled_kv_layers(model, ranked[:k], n_kv_heads):
            by_alone.append(mean_loss(model, ids))
        passes += 1
    return {"base": base, "alone": alone, "order": order, "loss": losses, "tried": tried, "ranked": ranked[:steps],
            "ranked_loss": by_alone, "forward_passes": passes}


def to_mqa(model: Transformer) -> Transformer:
    """A GQA (or MHA) model converted to MQA by mean-pooling its K/V heads (a new model; the input is untouched)."""
    mha = model if model.cfg.n_kv_heads == model.cfg.n_heads else repeat_kv_heads(model)
    return to_grouped(mha, 1, "mean")


def freeze_all_but_kv(model: Transformer) -> int:
    """Train only the K/V projections; returns how many numbers train."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(KV_WEIGHTS))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def uptrain_kv(model: Transformer, train_ids: torch.Tensor, val_ids: torch.Tensor, steps: int, batch: int,
               seq_len: int, lr: float, warmup: int, eval_every: int, eval_batches: int, eval_seq_len: int,
               seed: int = 0, progress: bool = False) -> dict:
    """Uptrain ``model`` in place with every weight but the K/V projections frozen. The validation curve starts at
    step 0 (the converted model before any training). Returns the training record."""
    device = next(model.parameters()).device
    trainable = freeze_all_but_kv(model)
    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, warmup=warmup, weight_decay=0.0, eval_every=eval_every,
                      eval_batches=eval_batches, seed=seed)

    def train_batch(g):
        return [t.to(device) for t in text_batch(train_ids, batch, seq_len, g)]

    def val_batch(g):
        return [t.to(device) for t in text_batch(val_ids, batch, eval_seq_len, g)]

    start = evaluate(model, val_batch, eval_batches, torch.Generator().manual_seed(seed + 1))
    record = train(model, cfg, train_batch, val_batch, progress=progress)
    record["val"] = [{"step": 0, "loss": round(start, 5)}] + record["val"]
    record["trainable"] = trainable
    for p in model.parameters():
        p.requires_grad_(True)
    return record


def smollm2_study(size: str = "cpu", out=None, device=None, seed: int = 0, log=print, progress: bool = False) -> dict:
    """Greedy layer pooling and K/V-only uptraining of SmolLM2-135M as MQA; writes ``smollm2_mqa.json`` to ``out``."""
    from . import pretrained
    from .data import NOVELS, load_novel
    from .device import describe_environment, pick_device
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
        "command": "python -m mqa_edu.experiments smollm2" + ("" if size == "cpu" else f" --size {size}"),
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
    from .experiments import read_results

    return read_results(path, RESULTS_FILE, "mqa_edu.smollm2_mqa/1", "smollm2", label="SmolLM2")
