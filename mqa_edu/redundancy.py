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


def js_divergence(p, q, row_mask=None) -> float:
    """Mean Jensen-Shannon divergence (nats) between matching rows of two attention maps.

    p, q: (..., n_queries, n_keys), each row a distribution over keys. row_mask: bool (..., n_queries), True for
    rows to compare (leave out padded queries, whose rows are all zero)."""
    p, q = _rows(p, q, row_mask)
    for name, t in (("p", p), ("q", q)):
        if (t < 0).any() or not torch.allclose(t.sum(-1), torch.ones(t.shape[0], dtype=t.dtype), atol=1e-4):
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
# Looking inside a trained model: per-head attention maps and representations, head importance
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def head_internals(model, tokens) -> list[dict]:
    """Run ``model`` on ``tokens`` (batch, t) and return, for each layer, the per-head tensors the measures compare:

    - "weights": attention probabilities (batch, n_heads, t, t), causal;
    - "keys", "values": (batch, n_kv_heads, t, head_dim), keys after the rotary embedding;
    - "outputs": each query head's attention output (batch, n_heads, t, head_dim), before the output projection.

    Nothing in the model changes: a hook reads each attention layer's input and the same projections recompute
    the rest in float64.
    """
    inputs = []
    hooks = [layer.self_attn.register_forward_pre_hook(
        lambda mod, args, kwargs: inputs.append((args[0], kwargs.get("rope"))), with_kwargs=True)
        for layer in model.layers]
    try:
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    from .attention import _masked_softmax, make_mask, repeat_kv_interleave
    from .rotary import apply_rotary

    out = []
    for layer, (x, rope) in zip(model.layers, inputs):
        attn = layer.self_attn
        q, k, v = (t.double() for t in attn.project(x))
        if rope is not None:
            cos, sin = (r.double() for r in rope)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        g, t = attn.cfg.group_size, x.shape[1]
        scores = q @ repeat_kv_interleave(k, g).transpose(-1, -2) * attn.cfg.head_dim ** -0.5
        weights = _masked_softmax(scores, make_mask(t, t, device=x.device))
        out.append({"weights": weights, "keys": k, "values": v, "outputs": weights @ repeat_kv_interleave(v, g)})
    return out


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


class head_gates:
    """Context manager: multiplies each query head's attention output by a gate before the output projection.

    ``gates`` (n_layers, n_heads), or (n_layers, batch, 1, n_heads) for one gate per sequence, starts at 1 (the model
    unchanged). Set an entry to 0 to ablate that head; give it ``requires_grad`` to get the gradient Michel et al.
    (2019) score heads by.
    """

    def __init__(self, model, gates=None):
        c = model.cfg
        self.model = model
        self.gates = torch.ones(c.n_layers, c.n_heads, device=model.device) if gates is None else gates
        if self.gates.dim() not in (2, 4) or self.gates.shape[0] != c.n_layers or self.gates.shape[-1] != c.n_heads:
            raise ValueError(f"gates must have shape (n_layers, n_heads) = {(c.n_layers, c.n_heads)} (or "
                             f"(n_layers, batch, 1, n_heads)), got {tuple(self.gates.shape)}")
        self.hooks = []

    def __enter__(self):
        hd = self.model.cfg.head_dim

        def hook(i):
            def gate(mod, args):
                x = args[0]  # (batch, t, n_heads * head_dim): head h owns the slice h*head_dim .. (h+1)*head_dim
                return (x * self.gates[i].to(x.dtype).repeat_interleave(hd, dim=-1),)
            return gate

        self.hooks = [layer.self_attn.o_proj.register_forward_pre_hook(hook(i))
                      for i, layer in enumerate(self.model.layers)]
        return self.gates

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
        self.hooks = []


def _check_batches(batches):
    if not batches:
        raise ValueError("batches is empty: pass at least one (inputs, targets) batch")


@torch.no_grad()
def ablation_importance(model, batches) -> torch.Tensor:
    """(n_layers, n_heads): the rise in mean loss over ``batches`` [(inputs, targets), ...] when that one head's
    output is zeroed. Positive = the model needs the head."""
    from .train import loss_on

    _check_batches(batches)
    c = model.cfg
    model.eval()
    gates = torch.ones(c.n_layers, c.n_heads, device=model.device)

    def mean_loss():
        with head_gates(model, gates):
            return sum(loss_on(model, x, y).item() for x, y in batches) / len(batches)

    base = mean_loss()
    out = torch.zeros(c.n_layers, c.n_heads, dtype=torch.float64)
    for i in range(c.n_layers):
        for h in range(c.n_heads):
            gates[i, h] = 0.0
            out[i, h] = mean_loss() - base
            gates[i, h] = 1.0
    return out


def michel_importance(model, batches, normalize: bool = True) -> torch.Tensor:
    """(n_layers, n_heads): Michel et al. (2019)'s head importance I_h = E_x |dL(x)/d gate_h| at gate = 1, the
    expectation over sequences x of ``batches`` (each sequence gets its own gates, so the absolute value is taken
    per sequence, as in the paper). With ``normalize``, each layer's scores are divided by their l2 norm, as the
    paper does before comparing heads across layers."""
    _check_batches(batches)
    c = model.cfg
    model.eval()
    total, count = torch.zeros(c.n_layers, c.n_heads, dtype=torch.float64), 0
    for x, y in batches:
        b = x.shape[0]
        gates = torch.ones(c.n_layers, b, 1, c.n_heads, device=model.device, requires_grad=True)
        with head_gates(model, gates):
            logits = model(x)
        per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100,
                                                      reduction="none").view(b, -1)
        scored = (y != -100).sum(1).clamp_min(1)
        per_sequence = per_token.sum(1) / scored  # L(x): each sequence's own mean loss
        (grad,) = torch.autograd.grad(per_sequence.sum(), gates)  # d L(x) / d its own gates
        total += grad.abs().sum(dim=(1, 2)).double().cpu()
        count += b
    total /= count
    if normalize:
        total = total / total.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return total
