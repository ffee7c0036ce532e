"""Small ipywidgets for the notebooks. Importing this needs ipywidgets; the numerical core never does."""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .heads import divisors


def query_stepper(weights, tokens):
    """Step through query positions: bar chart of how much each key gets from the chosen query."""
    weights = np.asarray(weights)

    def show(query):
        fig, ax = plt.subplots(figsize=(6, 2.4))
        ax.bar(range(len(tokens)), weights[query], color=["C0" if j <= query else "0.8" for j in range(len(tokens))])
        ax.set_xticks(range(len(tokens)), tokens)
        ax.set_ylim(0, 1)
        ax.set_ylabel("attention weight")
        ax.set_title(f"query {query} ({tokens[query]!r}) reads these keys; weights sum to {weights[query].sum():.3f}")
        plt.show()

    return W.interactive(show, query=W.IntSlider(value=len(tokens) - 1, min=0, max=len(tokens) - 1,
                                                 description="query"))


def head_grouping_explorer(n_heads: int = 8):
    """Pick n_heads and n_kv_heads (only divisors are offered) and see who shares which KV head."""
    heads = W.Dropdown(options=[1, 2, 4, 6, 8, 9, 12, 16, 32], value=n_heads, description="n_heads")
    kv = W.Dropdown(options=divisors(n_heads), value=max(1, n_heads // 4), description="n_kv_heads")
    wrong = W.Checkbox(value=False, description="use Tensor.repeat order (bug)")

    def sync(change):
        kv.options = divisors(change["new"])
        kv.value = kv.options[len(kv.options) // 2]

    heads.observe(sync, names="value")

    def show(n_heads, n_kv_heads, wrong_tile_order):
        if n_heads % n_kv_heads:  # transient state while the options update
            return
        plots.head_grouping(n_heads, n_kv_heads, wrong_tile_order=wrong_tile_order)
        plt.show()

    return W.interactive(show, n_heads=heads, n_kv_heads=kv, wrong_tile_order=wrong)
