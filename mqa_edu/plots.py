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


# ---------------------------------------------------------------------------------------------- shape diagrams
# Drawn from the course's own definitions (head_mapping, the cache's slot rule), so they cannot drift from the code.
def _box(ax, x, y, w, h, color, text="", fontsize=8, edge="white", text_color="black"):
    ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=color, edgecolor=edge, lw=1))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=text_color)


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_aspect("equal")


def sharing_diagram(n_heads: int = 8, kv_options=(8, 2, 1), head_dim: int = 128):
    """MHA, GQA and MQA side by side: which query heads read which K/V head (``heads.head_mapping``), and what the
    cache stores per token and layer (one K and one V vector of head_dim numbers per K/V head)."""
    from .heads import head_mapping

    fig, axes = plt.subplots(1, len(kv_options), figsize=(4.2 * len(kv_options), 2.6))
    for ax, n_kv in zip(np.atleast_1d(axes), kv_options):
        mapping = head_mapping(n_heads, n_kv)
        colors = plt.cm.tab10(np.arange(n_kv) % 10)
        kv_x = (np.arange(n_kv) + 0.5) * n_heads / n_kv - 0.5
        for h, kv in enumerate(mapping):
            ax.plot([h, kv_x[kv]], [2, 1], color=colors[kv], lw=1.4, alpha=0.8, gid=f"link {h}->{kv}")
            _box(ax, h - 0.35, 1.85, 0.7, 0.3, colors[kv], f"q{h}", 7)
        for kv in range(n_kv):
            _box(ax, kv_x[kv] - 0.4, 0.7, 0.8, 0.3, colors[kv], f"kv{kv}", 7)
        width = n_heads / (2 * n_kv)  # the cache row: K then V of every K/V head, drawn to scale across panels
        for kv in range(n_kv):
            _box(ax, kv * width - 0.5, -0.2, width, 0.3, colors[kv], "K" if width >= 0.45 else "", 7)
            _box(ax, (n_kv + kv) * width - 0.5, -0.2, width, 0.3, colors[kv], "V" if width >= 0.45 else "", 7,
                 edge="black")
        ax.text(n_heads / 2 - 0.5, -0.45, f"cache per token and layer: 2 x {n_kv} x {head_dim} = "
                f"{2 * n_kv * head_dim:,} numbers", ha="center", va="top", fontsize=8)
        kind = "MHA" if n_kv == n_heads else "MQA" if n_kv == 1 else f"GQA-{n_kv}"
        ax.set_title(f"{kind}: n_heads={n_heads}, n_kv_heads={n_kv}, group_size={n_heads // n_kv}", fontsize=9)
        ax.set_xlim(-0.8, n_heads - 0.2)
        ax.set_ylim(-0.9, 2.3)
        _bare(ax)
    fig.tight_layout()
    return fig


def split_merge_diagram(seq: int = 3, n_heads: int = 2, head_dim: int = 3):
    """Splitting heads, as shapes (one batch row): (seq, d_model) -> view (seq, n_heads, head_dim) -> transpose
    (n_heads, seq, head_dim); merging runs the same arrows backwards. Colours are heads, labels are tokens."""
    colors = plt.cm.Pastel1(np.arange(n_heads) % 9)
    d_model = n_heads * head_dim
    fig, ax = plt.subplots(figsize=(11, 3.2))
    # (seq, d_model): each row a token, its columns head 0's numbers, then head 1's, ...
    for t in range(seq):
        for j in range(d_model):
            _box(ax, j * 0.5, (seq - 1 - t) * 0.5, 0.5, 0.5, colors[j // head_dim], f"t{t}", 7, edge="grey")
    ax.text(d_model * 0.25, seq * 0.5 + 0.25, f"x: (seq={seq}, d_model={d_model})", ha="center", fontsize=9)
    x0 = d_model * 0.5 + 1.6
    # view: the same numbers in the same order, read as (seq, n_heads, head_dim)
    for t in range(seq):
        for h in range(n_heads):
            for d in range(head_dim):
                _box(ax, x0 + h * (head_dim * 0.5 + 0.2) + d * 0.5, (seq - 1 - t) * 0.5, 0.5, 0.5, colors[h],
                     f"t{t}", 7, edge="grey")
    ax.text(x0 + n_heads * (head_dim * 0.5 + 0.2) / 2, seq * 0.5 + 0.25,
            f"view: (seq, n_heads={n_heads}, head_dim={head_dim})", ha="center", fontsize=9)
    x1 = x0 + n_heads * (head_dim * 0.5 + 0.2) + 1.4
    # transpose: one (seq, head_dim) block per head
    for h in range(n_heads):
        for t in range(seq):
            for d in range(head_dim):
                _box(ax, x1 + h * (head_dim * 0.5 + 0.4) + d * 0.5, (seq - 1 - t) * 0.5, 0.5, 0.5, colors[h],
                     f"t{t}", 7, edge="grey")
        ax.text(x1 + h * (head_dim * 0.5 + 0.4) + head_dim * 0.25, -0.35, f"head {h}", ha="center", fontsize=8)
    ax.text(x1 + n_heads * (head_dim * 0.5 + 0.4) / 2, seq * 0.5 + 0.25, "transpose(1, 2): (n_heads, seq, head_dim)",
            ha="center", fontsize=9)
    for a, b, label in ((d_model * 0.5 + 0.2, x0 - 0.2, "view"), (x1 - 1.2, x1 - 0.2, "transpose")):
        ax.annotate("", xy=(b, seq * 0.25), xytext=(a, seq * 0.25), arrowprops=dict(arrowstyle="<->", lw=1.5))
        ax.text((a + b) / 2, seq * 0.25 - 0.45, label, ha="center", fontsize=8)
    ax.text(x1 - 0.7, -0.75, "merge: transpose(1, 2), then reshape (seq, d_model): the arrows backwards",
            ha="right", fontsize=8, style="italic")
    ax.set_xlim(-0.3, x1 + n_heads * (head_dim * 0.5 + 0.4) + 0.2)
    ax.set_ylim(-1.0, seq * 0.5 + 0.6)
    _bare(ax)
    fig.tight_layout()
    return fig


SLOT_STATES = ("empty", "padding", "prompt", "generated")


def cache_slots(attention_mask, max_len: int, decoded: int = 0):
    """What each slot of a static cache holds after a left-padded prefill and ``decoded`` decode steps, and the
    rotary position of the token in it (-1 where there is none). attention_mask: (batch, prompt width) of 0/1.
    Returns (states, positions), each (batch, max_len); states index SLOT_STATES."""
    am = np.asarray(attention_mask).astype(int)
    batch, width = am.shape
    if width + decoded > max_len:
        raise ValueError(f"max_len must hold the prompt width plus the decoded tokens ({width} + {decoded}), got "
                         f"{max_len}")
    states = np.zeros((batch, max_len), dtype=int)
    positions = np.full((batch, max_len), -1)
    states[:, :width] = np.where(am == 1, 2, 1)
    positions[:, :width] = np.where(am == 1, am.cumsum(1) - 1, -1)  # rotary positions count real tokens only
    states[:, width:width + decoded] = 3
    positions[:, width:width + decoded] = am.sum(1)[:, None] + np.arange(decoded)[None, :]
    return states, positions


def cache_slots_diagram(attention_mask, max_len: int, decoded: int = 3):
    """The static cache's slots during prefill and after ``decoded`` decode steps: padding (masked, never read),
    prompt, generated tokens and empty slots, with the rotary position written in each slot that holds a token."""
    colors = {0: "white", 1: "#d9d9d9", 2: "#9ecae1", 3: "#a1d99b"}
    batch, width = np.asarray(attention_mask).shape
    fig, axes = plt.subplots(1, 2, figsize=(max(8, max_len * 0.9), 0.55 * batch + 1.6))
    for ax, steps, title in ((axes[0], 0, "after prefill"), (axes[1], decoded, f"after {decoded} decode steps")):
        states, positions = cache_slots(attention_mask, max_len, steps)
        for r in range(batch):
            for s in range(max_len):
                label = "pad" if states[r, s] == 1 else str(positions[r, s]) if positions[r, s] >= 0 else ""
                _box(ax, s, batch - 1 - r, 1, 1, colors[states[r, s]], label, 8, edge="grey")
        nxt = width + steps
        ax.axvline(nxt, color="crimson", lw=2)
        ax.text(nxt, batch + 0.15, f"next write: slot {nxt}", color="crimson", fontsize=8, ha="center")
        ax.set_title(title, fontsize=9, pad=16)
        ax.set_xlim(0, max_len)
        ax.set_ylim(0, batch + 0.6)
        _bare(ax)
        ax.set_yticks(np.arange(batch) + 0.5, [f"row {r}" for r in reversed(range(batch))])
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=colors[i], edgecolor="grey") for i in range(4)]
    fig.legend(handles, ["empty", "padding (masked)", "prompt", "generated"], loc="lower center", ncol=4, fontsize=8)
    fig.text(0.5, 0.13, "numbers: each token's rotary position (counts real tokens only)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.18, 1, 1))
    return fig


def grouped_vs_repeat_diagram(n_heads: int = 8, n_kv_heads: int = 2):
    """What GQA reads from memory, two ways. repeat_kv writes group_size copies of every K/V head and reads all
    n_heads of them; the grouped view reshapes the queries to (n_kv_heads, group_size) and reads each K/V head once,
    for its whole group (``heads.head_mapping`` decides which)."""
    from .heads import head_mapping

    mapping, g = head_mapping(n_heads, n_kv_heads), n_heads // n_kv_heads
    colors = plt.cm.tab10(np.arange(n_kv_heads) % 10)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    ax = axes[0]
    for kv in range(n_kv_heads):
        _box(ax, kv * g + (g - 1) / 2 - 0.4, 2.2, 0.8, 0.4, colors[kv], f"kv{kv}", 7)
    for h, kv in enumerate(mapping):
        _box(ax, h - 0.4, 1.0, 0.8, 0.4, colors[kv], f"copy of {kv}", 6, edge="black")
        ax.annotate("", xy=(h, 1.4), xytext=(kv * g + (g - 1) / 2, 2.2), arrowprops=dict(arrowstyle="->", lw=0.8,
                                                                                       color="grey"))
        _box(ax, h - 0.4, 0.0, 0.8, 0.4, colors[kv], f"q{h}", 7)
        ax.plot([h, h], [0.4, 1.0], color=colors[kv], lw=1.2)
    ax.text(n_heads / 2 - 0.5, -0.45, f"K (and V) in memory: {n_kv_heads} heads stored, {n_heads} copies written and "
            f"read ({g}x the bytes)", ha="center", va="top", fontsize=8)
    ax.set_title(f"repeat_kv: (b, {n_kv_heads}, t, d) -> (b, {n_heads}, t, d)", fontsize=9)
    ax.set_xlim(-0.8, n_heads - 0.2)
    ax.set_ylim(-0.9, 2.8)
    _bare(ax)
    ax = axes[1]
    for kv in range(n_kv_heads):
        y = n_kv_heads - 1 - kv
        _box(ax, -1.6, y, 1.0, 0.6, colors[kv], f"kv{kv}", 7)
        for j in range(g):
            h = kv * g + j
            _box(ax, j * 0.9 + 0.4, y, 0.8, 0.6, colors[mapping[h]], f"q{h}", 7)
        ax.annotate("", xy=(0.35, y + 0.3), xytext=(-0.6, y + 0.3), arrowprops=dict(arrowstyle="->", lw=1.2))
    ax.text(0.4 + g * 0.45, n_kv_heads + 0.05, f"q viewed as (b, {n_kv_heads}, {g}, t, d)", ha="center", fontsize=8)
    ax.text(-1.1, n_kv_heads + 0.05, "K, V as stored", ha="center", fontsize=8)
    ax.text(0.4 + (g - 1.5) * 0.45, -0.45, f"each K/V head read once for its group of {g}: no copies",
            ha="center", va="top", fontsize=8)
    ax.set_title(f"grouped view: (b, {n_kv_heads}, 1, t, d) broadcast over the group", fontsize=9)
    ax.set_xlim(-1.9, g * 0.9 + 0.6)
    ax.set_ylim(-0.9, n_kv_heads + 0.5)
    _bare(ax)
    fig.tight_layout()
    return fig
