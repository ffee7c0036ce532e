"""From GQA to MQA on a pretrained model (notebook 10): which layers to pool, and uptraining the new K/V projections.

- :func:`perplexity` of a model on token ids.
- :func:`layer_costs`: pool one layer at a time (``convert.pooled_kv_layers``) and measure what each costs.
- :func:`greedy_pooling`: pool layers one by one, each time choosing, among the layers not yet pooled, the one whose
  pooling costs least *given the layers already pooled* (every remaining layer is re-measured at every step).
- :func:`uptrain_kv`: Ainslie et al. (2023) convert by mean pooling and then continue training. Here only the new
  K/V projections train and every other weight stays frozen, so the run fits a CPU: 2.2 M trainable numbers out of
  135 M for SmolLM2-135M.

All of it on SmolLM2-135M, reproducible with one command, is ``mqa_edu/studies/smollm2.py``
(``python -m mqa_edu.studies smollm2``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .convert import KV_PARAMS, pooled_kv_layers, repeat_kv_heads, to_grouped
from .data import text_batch
from .heads import check_int
from .model import Transformer
from .train import TrainConfig, evaluate, loss_on, train


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
        p.requires_grad_(name.endswith(KV_PARAMS))
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
