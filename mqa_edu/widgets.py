"""Small ipywidgets for the notebooks. Importing this needs ipywidgets; the numerical core never does."""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .heads import divisors

# Room for the whole label: the default description width cuts labels such as "temperature" to "temperat...".
LABEL = {"style": {"description_width": "initial"}}


def query_stepper(weights, tokens):
    """Step through query positions: bar chart of how much each key gets from the chosen query."""
    weights = np.asarray(weights)

    def show(query):
        fig, ax = plt.subplots(figsize=(6, 2.4))
        if query + 1 < len(tokens):  # the future: masked, so its bars have zero height; shade where they would be
            ax.axvspan(query + 0.5, len(tokens) - 0.5, color="0.85", label="future keys (masked: weight 0)")
            ax.legend(loc="upper right", fontsize=8)
        ax.bar(range(len(tokens)), weights[query], color="C0")
        ax.set_xlim(-0.5, len(tokens) - 0.5)
        ax.set_xticks(range(len(tokens)), tokens)
        ax.set_ylim(0, 1)
        ax.set_ylabel("attention weight")
        ax.set_title(f"query {query} ({tokens[query]!r}) reads these keys; weights sum to {weights[query].sum():.3f}")
        plt.show()

    return W.interactive(show, query=W.IntSlider(value=len(tokens) - 1, min=0, max=len(tokens) - 1,
                                                 description="query", **LABEL))


def head_grouping_explorer(n_heads: int = 8):
    """Pick n_heads and n_kv_heads (only divisors are offered) and see who shares which KV head."""
    heads = W.Dropdown(options=[1, 2, 4, 6, 8, 9, 12, 16, 32], value=n_heads, description="n_heads", **LABEL)
    kv = W.Dropdown(options=divisors(n_heads), value=max(1, n_heads // 4), description="n_kv_heads", **LABEL)
    wrong = W.Checkbox(value=False, description="use Tensor.repeat order (bug)", indent=False, **LABEL)

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


def kv_cache_calculator():
    """Pick a real model, dtype, context, batch and n_kv_heads: the cache size, and memory vs context for MHA, the
    chosen n_kv_heads and MQA variants of that model."""
    from .sizing import REAL_MODELS, bytes_per_token, format_bytes, kv_cache_bytes

    model = W.Dropdown(options=list(REAL_MODELS), value="Llama-3-8B", description="model", **LABEL)
    dtype = W.Dropdown(options=["fp32", "bf16", "fp16", "fp8", "int4"], value="fp16", description="dtype", **LABEL)
    context = W.IntSlider(value=8192, min=512, max=131072, step=512, description="context", **LABEL)
    batch = W.IntSlider(value=8, min=1, max=128, description="batch", **LABEL)
    n_kv = W.Dropdown(options=divisors(REAL_MODELS["Llama-3-8B"].n_heads), value=8, description="n_kv_heads",
                      **LABEL)

    def sync(change):
        spec = REAL_MODELS[change["new"]]
        n_kv.options = divisors(spec.n_heads)
        n_kv.value = spec.n_kv_heads

    model.observe(sync, names="value")

    def show(name, dtype, context, batch, n_kv_heads):
        base = REAL_MODELS[name]
        if base.n_heads % n_kv_heads:
            return
        spec = base.with_kv_heads(n_kv_heads)
        total = kv_cache_bytes(spec, context, batch, dtype)
        print(f"{name} with n_kv_heads={n_kv_heads} ({spec.kind}), {dtype}: {bytes_per_token(spec, dtype):,} B per "
              f"token -> {format_bytes(total)} for {batch} x {context} tokens")
        if base.note:
            print("note:", base.note)
        ctx = np.linspace(512, max(context * 2, 4096), 200).astype(int)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for kv, style in ((base.n_heads, "--"), (n_kv_heads, "-"), (1, ":")):
            v = base.with_kv_heads(kv)
            ax.plot(ctx, [kv_cache_bytes(v, int(c), batch, dtype) / 1e9 for c in ctx], style,
                    label=f"{v.kind} (n_kv_heads={kv})")
        ax.axvline(context, color="0.6", lw=0.8)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel(f"KV cache, GB (batch {batch})")
        ax.legend()
        plt.show()

    return W.interactive(show, name=model, dtype=dtype, context=context, batch=batch, n_kv_heads=n_kv)
