"""Looking inside a trained model, head by head (notebook 08): each head's attention map, keys, values and output,
and how much the model needs each head (ablation, and Michel et al. 2019's gradient score).

The measures that compare two heads live in :mod:`mqa_edu.redundancy`; this module only reads the model. It is its
own room so that exercise 2, whose graded answers are those measures, can build its data (``exercise_data``) in a
kernel that does not see them.
"""
from __future__ import annotations

import torch


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
    from .attention import make_mask, masked_softmax, repeat_kv_interleave
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
        weights = masked_softmax(scores, make_mask(t, t, device=x.device))
        out.append({"weights": weights, "keys": k, "values": v, "outputs": weights @ repeat_kv_interleave(v, g)})
    return out


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
