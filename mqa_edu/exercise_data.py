"""Data the graded exercises work on, built the same way in the student's notebook and in the grader.

Exercise 2 (head redundancy) looks inside the shipped 8-head text model (mqa_edu/results/text_mha_seed0, trained by
``python -m mqa_edu.studies tradeoff``) on four fixed 128-byte windows of *Persuasion*, a novel it never trained
on. Everything is recomputed in float64 from the checkpoint, so the student's kernel and the grader's process get the
same numbers.
"""
from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

STARTS = (1000, 5000, 9000, 13000)  # byte offsets into persuasion.txt
LENGTH = 128  # the model's max_seq_len
CHECKPOINT = "text_mha_seed0.safetensors"
# the shipped results (studies.results.RESULTS_DIR: taught code does not import the studies)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@lru_cache(maxsize=1)
def shipped_model():
    """The shipped model, loaded once per process and shared: callers copy it (``permute_heads``) before changing it."""
    import torch

    from .train import load_checkpoint

    return load_checkpoint(RESULTS_DIR / CHECKPOINT, dtype=torch.float64)[0]


def tokens():
    """(4, 128) byte ids: the four windows of Persuasion."""
    import torch

    from .data import encode, load_novel

    ids = encode(load_novel("persuasion"))
    return torch.stack([ids[s:s + LENGTH] for s in STARTS])


@lru_cache(maxsize=4)
def eval_batches(n: int = 4, seed: int = 0):
    """Fixed (inputs, targets) batches of Persuasion (n x 8 windows of 128 bytes) for scoring a converted model."""
    import torch

    from .data import austen_splits, text_batch

    val = austen_splits().val
    g = torch.Generator().manual_seed(seed)
    return tuple(text_batch(val, 8, LENGTH, g) for _ in range(n))  # cached: read the novels once per process


@lru_cache(maxsize=1)
def head_maps() -> dict:
    """Per layer and head, as NumPy float64 arrays (the 4 windows stacked: 4 x 128 = 512 query rows):

    - "log_weights" (n_layers, n_heads, 512, 128): log of each head's attention weights, -inf where a weight is 0;
      softmax over the visible keys gives the weights back (log weights are scores up to a per-row constant);
    - "mask" (512, 128): True where a query may see a key (causal, within its own window);
    - "keys", "values", "outputs" (n_layers, n_heads, 512, head_dim): rotated keys, values, each head's output;
    - "importance" (n_layers, n_heads): the rise in loss (nats) when the head is ablated, on :func:`eval_batches`.
    """
    import numpy as np
    import torch

    from .head_probes import ablation_importance, head_internals

    model = shipped_model()
    with torch.no_grad():
        inside = head_internals(model, tokens())

    def per_head(x):  # (batch, heads, t, d) -> (heads, batch * t, d)
        return x.permute(1, 0, 2, 3).reshape(x.shape[1], -1, x.shape[-1]).numpy()

    causal = np.tril(np.ones((LENGTH, LENGTH), dtype=bool))
    mask = np.tile(causal, (len(STARTS), 1))
    with np.errstate(divide="ignore"):
        log_w = np.stack([np.log(np.where(mask, per_head(layer["weights"]), 1.0)) for layer in inside])
    log_w[:, :, ~mask] = 0.0  # masked entries: any value (the mask says to ignore them)
    maps = {"log_weights": log_w, "mask": mask,
            "keys": np.stack([per_head(layer["keys"]) for layer in inside]),
            "values": np.stack([per_head(layer["values"]) for layer in inside]),
            "outputs": np.stack([per_head(layer["outputs"]) for layer in inside]),
            "importance": ablation_importance(model, eval_batches()).double().numpy()}
    for v in maps.values():
        v.setflags(write=False)  # shared by every caller: nobody may change them
    return maps


@cache
def converted_loss(groups: tuple, layer: int = 0) -> float:
    """Validation loss (nats, on :func:`eval_batches`) of the shipped model after converting ``layer`` to GQA with
    these K/V groups (each group's keys and values mean-pooled), the other layers as they are. ``groups``: a tuple of
    tuples of head indices; the order within and between groups does not matter. Exercise 2's Q5 is scored with it,
    and its check cell tells the student their own loss."""
    import torch

    from .convert import permute_heads, pooled_kv_layers
    from .train import loss_on

    model = shipped_model()
    groups = tuple(sorted(tuple(sorted(int(h) for h in g)) for g in groups))
    order = [h for g in groups for h in g]
    perms = [list(range(model.cfg.n_heads)) for _ in range(model.cfg.n_layers)]
    perms[layer] = order
    model = permute_heads(model, perms)  # exact: the same function with the heads re-ordered
    with torch.no_grad(), pooled_kv_layers(model, [layer], n_kv_heads=len(groups)):
        return sum(loss_on(model, x, y).item() for x, y in eval_batches()) / len(eval_batches())
