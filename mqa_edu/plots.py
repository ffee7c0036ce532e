"""Matplotlib figures used by the notebooks. Sits on top of the numerical core; the core never imports it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .heads import HeadConfig


def attention_map(weights, labels=None, ax=None, title=None):
    """Heat map of one (n_queries, n_keys) weight matrix: rows are queries, columns the keys they read."""
    weights = np.asarray(weights)
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    ax.imshow(weights, cmap="Blues", vmin=0, vmax=1)
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    return ax


def attention_maps(weights, labels=None, titles=None, ncols=4, size=2.6):
    """Several maps side by side, e.g. one per head: weights (n_maps, n_queries, n_keys)."""
    weights = np.asarray(weights)
    n = len(weights)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        attention_map(weights[i], labels if i % ncols == 0 else None, ax,
                      titles[i] if titles else f"head {i}")
        if i % ncols:
            ax.set_yticks([])
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def head_grouping(n_heads: int, n_kv_heads: int, ax=None, wrong_tile_order: bool = False):
    """Draw query heads (top row) joined to the KV head each reads (bottom row).

    ``wrong_tile_order=True`` draws the pairing that ``Tensor.repeat`` would produce, to show the bug.
    """
    cfg = HeadConfig(n_heads, n_heads, n_kv_heads, head_dim=1)
    ax = ax or plt.subplots(figsize=(max(6, n_heads * 0.45), 2.4))[1]
    colors = plt.cm.tab10(np.arange(n_kv_heads) % 10)
    kv_x = (np.arange(n_kv_heads) + 0.5) * n_heads / n_kv_heads - 0.5
    for h in range(n_heads):
        kv = h % n_kv_heads if wrong_tile_order else cfg.kv_head_of(h)
        ax.plot([h, kv_x[kv]], [1, 0], color=colors[kv], lw=1.5, alpha=0.7)
        ax.scatter([h], [1], s=120, color=colors[kv], zorder=3)
    ax.scatter(kv_x, np.zeros(n_kv_heads), s=260, marker="s", color=colors, zorder=3)
    ax.set_yticks([0, 1], ["KV heads", "query heads"])
    ax.set_xticks([])
    ax.set_ylim(-0.4, 1.4)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    order = "Tensor.repeat (WRONG)" if wrong_tile_order else "h // group_size"
    ax.set_title(f"{cfg.kind}: n_heads={n_heads}, n_kv_heads={n_kv_heads}, group_size={cfg.group_size}  [{order}]")
    return ax
