"""How alike are the heads of a layer? (notebook 08). Measures between heads, on attention distributions and on
representations. Float64 inside, whatever the input dtype.

- Jensen-Shannon divergence between two heads' attention distributions, per query row, averaged over the rows that
  are real (padding rows are left out). In nats: 0 for identical rows, at most ln 2 for rows with disjoint support.
  0 * log 0 counts as 0, so masked keys (weight exactly 0) are fine.
- Cosine similarity of two attention maps, over the same real rows.
- Linear CKA (Kornblith et al. 2019) between two heads' representations (keys, values or outputs): 1 for the same
  representation up to a rotation and a scale, near 0 for unrelated ones.
"""
from __future__ import annotations

import math

import torch


def _rows(p, q, row_mask, name="attention"):
    if not isinstance(p, torch.Tensor) or not isinstance(q, torch.Tensor):
        raise TypeError(f"{name} maps must be torch.Tensors")
    if p.shape != q.shape or p.dim() < 1:
        raise ValueError(f"the two {name} maps must have the same shape (..., n_queries, n_keys), got "
                         f"{tuple(p.shape)} and {tuple(q.shape)}")
    p, q = p.double().reshape(-1, p.shape[-1]), q.double().reshape(-1, q.shape[-1])
    if row_mask is not None:
        row_mask = torch.as_tensor(row_mask, dtype=torch.bool, device=p.device).reshape(-1)
        if row_mask.numel() != p.shape[0]:
            raise ValueError(f"row_mask must have one entry per query row ({p.shape[0]}), got {row_mask.numel()}")
        p, q = p[row_mask], q[row_mask]
    if p.shape[0] == 0:
        raise ValueError("no query rows to compare (row_mask masks every row)")
    return p, q


def _sum_tolerance(*maps) -> float:
    """How far from 1 a row may sum, given the dtype the maps arrive in: 1e-4, or twice the dtype's machine epsilon
    where that is larger. Rounding alone puts fp16 rows about 3e-4 off and bf16 rows about 2.5e-3 off, so half
    precision maps (an fp16 model, autocast) are accepted, and the check is made in float64 after the cast."""
    eps = [torch.finfo(m.dtype).eps for m in maps if isinstance(m, torch.Tensor) and m.is_floating_point()]
    return max([1e-4, *(2 * e for e in eps)])


def js_divergence(p, q, row_mask=None) -> float:
    """Mean Jensen-Shannon divergence (nats) between matching rows of two attention maps.

    p, q: (..., n_queries, n_keys), each row a distribution over keys. row_mask: bool (..., n_queries), True for
    rows to compare (leave out padded queries, whose rows are all zero)."""
    tol = _sum_tolerance(p, q)
    p, q = _rows(p, q, row_mask)
    for name, t in (("p", p), ("q", q)):
        if (t < 0).any() or not torch.allclose(t.sum(-1), torch.ones(t.shape[0], dtype=t.dtype), atol=tol):
            raise ValueError(f"every compared row of {name} must be a distribution (non-negative, summing to 1); mask "
                             "padded rows out with row_mask and normalise after masking keys, not before")
    m = 0.5 * (p + q)
    kl_pm = torch.xlogy(p, p).sum(-1) - torch.xlogy(p, m).sum(-1)  # xlogy: 0 * log 0 = 0
    kl_qm = torch.xlogy(q, q).sum(-1) - torch.xlogy(q, m).sum(-1)
    return float((0.5 * (kl_pm + kl_qm)).clamp(0.0, math.log(2)).mean())


def map_cosine(p, q, row_mask=None) -> float:
    """Cosine similarity of two attention maps, flattened over the compared rows."""
    p, q = _rows(p, q, row_mask)
    return float(torch.nn.functional.cosine_similarity(p.flatten(), q.flatten(), dim=0))


def linear_cka(x, y) -> float:
    """Linear CKA between representations x (n, d1) and y (n, d2) of the same n examples (tokens)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 2 or y.dim() != 2:
        raise ValueError("x and y must be 2-d tensors (n examples, features)")
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"x and y must hold the same n >= 2 examples, got {x.shape[0]} and {y.shape[0]}")
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    cross = (y.T @ x).square().sum()
    norm = (x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()
    if norm == 0:
        raise ValueError("a representation is constant over the examples: CKA is undefined")
    return float(cross / norm)


def pairwise(items, measure) -> torch.Tensor:
    """(n, n) matrix of ``measure(items[i], items[j])``, e.g. ``pairwise(weights[0], js_divergence)`` for the heads of
    one layer (weights (batch, n_heads, q, k) -> items are per-head maps)."""
    n = len(items)
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i, n):
            out[i, j] = out[j, i] = measure(items[i], items[j])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Comparing the heads of a trained model (the per-head tensors come from mqa_edu.head_probes)
# ---------------------------------------------------------------------------------------------------------------
# notebooks and studies import these from here, as they always have
from .head_probes import (  # noqa: E402,F401
    ablation_importance,
    head_gates,
    head_internals,
    michel_importance,
)


def head_similarity(internals: list[dict], what: str = "weights", measure: str = "js") -> torch.Tensor:
    """(n_layers, n, n) similarity or divergence between the heads of each layer.

    what="weights" with measure "js" (divergence, 0 = identical) or "cosine"; what="keys", "values" or "outputs"
    with measure "cka" (each head's vectors over every token of the batch).
    """
    allowed = {"weights": ("js", "cosine"), "keys": ("cka",), "values": ("cka",), "outputs": ("cka",)}
    if what not in allowed:
        raise ValueError(f"what must be one of {list(allowed)}, got {what!r}")
    if measure not in allowed[what]:
        raise ValueError(f"measure for {what!r} must be one of {list(allowed[what])}, got {measure!r}")
    fn = {"js": js_divergence, "cosine": map_cosine, "cka": linear_cka}[measure]
    mats = []
    for layer in internals:
        x = layer[what]
        items = [x[:, h] for h in range(x.shape[1])]
        if measure == "cka":
            items = [i.reshape(-1, i.shape[-1]) for i in items]
        mats.append(pairwise(items, fn))
    return torch.stack(mats)
