"""Converting weights. Between the course's Transformer and Hugging Face's LlamaForCausalLM (same names, same
layout), and from a trained multi-head model to GQA/MQA by pooling its K/V heads (notebook 09).

transformers is imported only inside the Hugging Face functions: it is a test/benchmark dependency, not the course's.
"""
from __future__ import annotations

import itertools
import math

import torch

from .heads import HeadConfig, divisors
from .model import ModelConfig, Transformer


def hf_llama_config(cfg: ModelConfig):
    """The LlamaConfig of the same architecture."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                       num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                       num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
                       max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
                       rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                       tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False,
                       pad_token_id=None, bos_token_id=None, eos_token_id=None)


def _hf_name(name: str) -> str:
    return name if name.startswith("lm_head") else "model." + name


@torch.no_grad()
def to_hf_llama(model: Transformer):
    """A LlamaForCausalLM holding a copy of ``model``'s weights."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(hf_llama_config(model.cfg)).to(dtype=model.embed_tokens.weight.dtype)
    hf_params = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        hf_params[_hf_name(name)].copy_(p)
    return hf.eval()


@torch.no_grad()
def from_hf_llama(hf) -> Transformer:
    """The course's Transformer holding a copy of a LlamaForCausalLM's weights."""
    c = hf.config
    rope = getattr(c, "rope_parameters", None) or {"rope_theta": getattr(c, "rope_theta", 10000.0)}
    cfg = ModelConfig(n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
                      n_kv_heads=c.num_key_value_heads, head_dim=getattr(c, "head_dim", None),
                      vocab_size=c.vocab_size, max_seq_len=c.max_position_embeddings, rope_theta=rope["rope_theta"],
                      norm_eps=c.rms_norm_eps, d_ff=c.intermediate_size, tie_embeddings=c.tie_word_embeddings)
    model = Transformer(cfg, dtype=hf.model.embed_tokens.weight.dtype)
    hf_params = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        p.copy_(hf_params[_hf_name(name)])
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# MHA -> GQA / MQA (notebook 09): pool each group's K/V heads into one (Ainslie et al. 2023, "GQA", section 2.1)
# ---------------------------------------------------------------------------------------------------------------
POOLING = ("mean", "first", "random")
# the parameters that hold K/V heads (a layer's k_proj and v_proj, biases where a model has them): what conversion
# pools and what K/V-only uptraining trains
KV_PARAMS = ("k_proj.weight", "v_proj.weight", "k_proj.bias", "v_proj.bias")


def contiguous_groups(n_heads: int, n_kv_heads: int) -> list[list[int]]:
    """The grouping GQA uses by default: KV head j serves query heads j*group_size .. (j+1)*group_size - 1."""
    check_divisor(n_heads, n_kv_heads)
    g = n_heads // n_kv_heads
    return [list(range(j * g, (j + 1) * g)) for j in range(n_kv_heads)]


def check_divisor(n_heads: int, n_kv_heads) -> int:
    """n_kv_heads, checked to divide n_heads (the one check, :class:`mqa_edu.heads.HeadConfig`'s)."""
    return HeadConfig(n_heads, n_heads, n_kv_heads, 1).n_kv_heads


def check_groups(groups, n_heads: int, n_kv_heads: int) -> list[list[int]]:
    """Groups must partition the query heads 0..n_heads-1 into n_kv_heads groups of group_size each."""
    check_divisor(n_heads, n_kv_heads)
    g = n_heads // n_kv_heads
    try:
        groups = [[int(h) for h in grp] for grp in groups]
    except TypeError:
        raise TypeError(f"groups must be a list of n_kv_heads={n_kv_heads} lists of head indices") from None
    if len(groups) != n_kv_heads or any(len(grp) != g for grp in groups):
        raise ValueError(f"groups must be n_kv_heads={n_kv_heads} groups of group_size={g} heads each, got sizes "
                         f"{[len(grp) for grp in groups]}")
    if sorted(h for grp in groups for h in grp) != list(range(n_heads)):
        raise ValueError(f"groups must use every head 0..{n_heads - 1} exactly once, got {groups}")
    return groups


def _source_is_mha(model: Transformer, what: str):
    if model.cfg.n_kv_heads != model.cfg.n_heads:
        raise ValueError(f"{what} needs a multi-head model (n_kv_heads == n_heads={model.cfg.n_heads}), got "
                         f"n_kv_heads={model.cfg.n_kv_heads}; expand it first with repeat_kv_heads()")


def _copy(model: Transformer, **changes) -> Transformer:
    from dataclasses import replace

    dtype = model.embed_tokens.weight.dtype
    new = Transformer(replace(model.cfg, **changes), device=model.device, dtype=dtype)
    return new.train(model.training)


@torch.no_grad()
def permute_heads(model: Transformer, perms) -> Transformer:
    """A copy of an MHA model whose heads are reordered in each layer: new head i is old head perm[i]. Each head
    keeps its own Q, K, V and its slice of the output projection, so the model computes the same function
    (the output projection only adds the same terms in another order)."""
    _source_is_mha(model, "permute_heads")
    c = model.cfg
    if len(perms) != c.n_layers:
        raise ValueError(f"perms must hold one permutation per layer (n_layers={c.n_layers}), got {len(perms)}")
    new = _copy(model)
    new.load_state_dict(model.state_dict())
    for layer, perm in zip(new.layers, perms):
        perm = check_groups([perm], c.n_heads, 1)[0]
        rows = torch.tensor(perm, device=model.device)[:, None] * c.head_dim + torch.arange(c.head_dim,
                                                                                              device=model.device)
        rows = rows.flatten()
        a = layer.self_attn
        for lin in (a.q_proj, a.k_proj, a.v_proj):
            lin.weight.copy_(lin.weight[rows])
            if lin.bias is not None:
                lin.bias.copy_(lin.bias[rows])
        a.o_proj.weight.copy_(a.o_proj.weight[:, rows])
    return new


def inverse_permutation(perm) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[int(p)] = i
    return inv


@torch.no_grad()
def repeat_kv_heads(model: Transformer) -> Transformer:
    """A GQA/MQA model written as the MHA model that computes exactly the same thing: each KV head copied for every
    query head of its group (what repeat_interleave does at run time, done once to the weights)."""
    c = model.cfg
    new = _copy(model, n_kv_heads=c.n_heads)
    state = model.state_dict()
    for key in list(state):
        if key.endswith(KV_PARAMS):
            w = state[key].reshape(c.n_kv_heads, c.head_dim, *state[key].shape[1:])
            state[key] = w.repeat_interleave(c.n_heads // c.n_kv_heads, dim=0).reshape(c.n_heads * c.head_dim,
                                                                                        *state[key].shape[1:])
    new.load_state_dict(state)
    return new


@torch.no_grad()
def to_grouped(model: Transformer, n_kv_heads: int, pooling: str = "mean", groups=None, seed: int = 0) -> Transformer:
    """Convert a trained MHA model into one with ``n_kv_heads`` K/V heads.

    pooling: "mean" averages the K and V projections of the heads in each group (Ainslie et al. 2023); "first" keeps
    the first head of each group; "random" starts the K/V projections afresh (the model's own init, from ``seed``).
    groups: one grouping for every layer, or a list of groupings (one per layer); each is n_kv_heads lists of
    query heads. Default: contiguous groups. A non-contiguous grouping first permutes the heads (an exact
    re-ordering, :func:`permute_heads`) so that each group is contiguous, then pools.
    Query and output projections are kept as they are.
    """
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {list(POOLING)}, got {pooling!r}")
    _source_is_mha(model, "to_grouped")
    c = model.cfg
    n_kv_heads = check_divisor(c.n_heads, n_kv_heads)
    if groups is None:
        groups = contiguous_groups(c.n_heads, n_kv_heads)
    per_layer = groups if groups and isinstance(groups[0][0], (list, tuple)) else [groups] * c.n_layers
    if len(per_layer) != c.n_layers:
        raise ValueError(f"groups must be one grouping, or one per layer (n_layers={c.n_layers}), got {len(per_layer)}")
    per_layer = [check_groups(gr, c.n_heads, n_kv_heads) for gr in per_layer]
    orders = [[h for grp in gr for h in grp] for gr in per_layer]
    if any(order != list(range(c.n_heads)) for order in orders):  # contiguous groups need no re-ordering (no copy)
        model = permute_heads(model, orders)
    new = _copy(model, n_kv_heads=n_kv_heads)
    state = model.state_dict()
    fresh = None
    if pooling == "random":
        with torch.random.fork_rng(devices=[]):  # a fresh init from ``seed`` without moving the caller's RNG
            torch.manual_seed(seed)
            fresh = _copy(model, n_kv_heads=n_kv_heads).state_dict()
    for key in list(state):
        if key.endswith(KV_PARAMS):
            state[key] = fresh[key] if fresh is not None else _pool_heads(state[key], n_kv_heads, c.head_dim, pooling)
    new.load_state_dict(state)
    return new




def _pool_heads(w, n_kv_heads: int, head_dim: int, pooling: str = "mean"):
    """K or V projection rows (heads * head_dim, ...) -> (n_kv_heads * head_dim, ...): each group of group_size
    consecutive heads becomes one K/V head, its mean ("mean") or its first head ("first"). The one pooling formula of
    the course."""
    grouped = w.reshape(n_kv_heads, -1, head_dim, *w.shape[1:])  # (n_kv_heads, group_size, head_dim, ...)
    pooled = grouped.mean(1) if pooling == "mean" else grouped[:, 0]
    return pooled.reshape(n_kv_heads * head_dim, *w.shape[1:])


def n_groupings(n_heads: int, n_kv_heads: int) -> int:
    """How many ways there are to split n_heads heads into n_kv_heads unordered groups of equal size."""
    g = n_heads // n_kv_heads
    return math.factorial(n_heads) // (math.factorial(g) ** n_kv_heads * math.factorial(n_kv_heads))


def equal_groupings(n_heads: int, n_kv_heads: int) -> list:
    """Every way to split heads 0 .. n_heads - 1 into n_kv_heads groups of equal size, each once (groups sorted, and
    ordered by their first head): 35 ways to halve 8 heads, 105 ways to pair them."""
    size = n_heads // n_kv_heads

    def split(items):
        if not items:
            yield ()
            return
        first, rest = items[0], items[1:]
        for partners in itertools.combinations(rest, size - 1):
            left = tuple(i for i in rest if i not in partners)
            for others in split(left):
                yield ((first, *partners), *others)

    return list(split(tuple(range(n_heads))))


EXHAUSTIVE_LIMIT = 10_000  # groupings: up to this many, similarity_groups tries every one


class Grouping(list):
    """A list of groups of heads that also says how it was found (``method``: "exhaustive" or "greedy+swaps")."""

    def __init__(self, groups, method: str):
        super().__init__(groups)
        self.method = method


def similarity_groups(similarity, n_kv_heads: int) -> Grouping:
    """Equal-size groups of heads that are alike: n_kv_heads groups of group_size heads maximising the summed
    within-group ``similarity`` (n_heads, n_heads; larger = more alike, e.g. CKA of the heads' keys).

    Where there are at most EXHAUSTIVE_LIMIT ways to group the heads (35 or 105 for 8 heads, 280 for 9 in 3 groups),
    every one is tried, and the result is the optimum (``.method == "exhaustive"``). Beyond that (16 heads in 4
    groups: 2,627,625 ways), greedy seeding (the most similar unassigned pair starts a group, which grows by the head
    closest to it on average), then single swaps between groups while any swap raises the total: fast, not always
    optimal (``.method == "greedy+swaps"``). The result is sorted, so the same similarity always gives the same groups.
    """
    s = torch.as_tensor(similarity, dtype=torch.float64)
    if s.dim() != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be a square (n_heads, n_heads) matrix, got {tuple(s.shape)}")
    n = s.shape[0]
    check_divisor(n, n_kv_heads)
    g = n // n_kv_heads
    s = 0.5 * (s + s.T)
    if n_groupings(n, n_kv_heads) <= EXHAUSTIVE_LIMIT:
        pairs = s.triu(1)  # each pair once

        def total(groups):
            return sum(float(pairs[list(grp)][:, list(grp)].sum()) for grp in groups)

        best = max(equal_groupings(n, n_kv_heads), key=lambda groups: (round(total(groups), 12), [-h for grp in groups
                                                                                                   for h in grp]))
        return Grouping(sorted(sorted(grp) for grp in best), "exhaustive")
    free, groups = set(range(n)), []
    for _ in range(n_kv_heads):
        if g == 1:
            grp = [min(free)]
        else:
            i, j = max(((a, b) for a in free for b in free if a < b), key=lambda ab: (s[ab].item(), -ab[0], -ab[1]))
            grp = [i, j]
            while len(grp) < g:
                grp.append(max(sorted(free - set(grp)), key=lambda h: s[h, grp].mean().item()))
        groups.append(grp)
        free -= set(grp)

    def score(grp):
        return sum(s[a, b].item() for a in grp for b in grp if a < b)

    improved = True
    while improved:
        improved = False
        for x in range(len(groups)):
            for y in range(x + 1, len(groups)):
                for a in list(groups[x]):
                    for b in list(groups[y]):
                        new_x = [h for h in groups[x] if h != a] + [b]
                        new_y = [h for h in groups[y] if h != b] + [a]
                        if score(new_x) + score(new_y) > score(groups[x]) + score(groups[y]) + 1e-12:
                            groups[x], groups[y], improved = new_x, new_y, True
                            break
                    if improved:
                        break
                if improved:
                    break
            if improved:
                break
    return Grouping(sorted(sorted(grp) for grp in groups), "greedy+swaps")


class pooled_kv_layers:
    """Context manager: inside it, the chosen layers of ``model`` behave as if their K/V heads had been mean-pooled
    into ``n_kv_heads`` (Ainslie et al.'s conversion), while the model keeps its shape: each of the layer's K/V heads
    is replaced by the mean of its group, and heads that are equal within a group compute exactly what one shared
    head would. This lets a search pool one layer at a time without copying the model (notebook 10). On exit the
    original weights come back bit for bit.
    """

    def __init__(self, model: Transformer, layers, n_kv_heads: int = 1):
        c = model.cfg
        self.model, self.layers = model, sorted(set(int(i) for i in layers))
        bad = [i for i in self.layers if not 0 <= i < c.n_layers]
        if bad:
            raise ValueError(f"layers must be in 0..{c.n_layers - 1} (n_layers={c.n_layers}), got {bad}")
        if not isinstance(n_kv_heads, int) or isinstance(n_kv_heads, bool) or n_kv_heads not in divisors(c.n_kv_heads):
            raise ValueError(f"n_kv_heads must divide the model's n_kv_heads={c.n_kv_heads}; allowed: "
                             f"{divisors(c.n_kv_heads)}, got {n_kv_heads!r}")
        self.n_kv_heads, self.saved = n_kv_heads, {}

    @torch.no_grad()
    def __enter__(self):
        c = self.model.cfg
        g = c.n_kv_heads // self.n_kv_heads
        for i in self.layers:
            attn = self.model.layers[i].self_attn
            for lin in (attn.k_proj, attn.v_proj):
                self.saved[(i, id(lin))] = (lin, lin.weight.detach().clone())
                pooled = _pool_heads(lin.weight, self.n_kv_heads, c.head_dim)  # what to_grouped would keep...
                shared = pooled.view(self.n_kv_heads, c.head_dim, -1).repeat_interleave(g, dim=0)
                lin.weight.copy_(shared.reshape(lin.weight.shape))  # ...given back to every head of its group
        return self.model

    @torch.no_grad()
    def __exit__(self, *exc):
        for lin, w in self.saved.values():
            lin.weight.copy_(w)
        self.saved = {}
