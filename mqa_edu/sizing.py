"""How big is the KV cache? (notebook 06). Pure Python: no torch needed.

    bytes = 2 (K and V) x n_kv_heads x head_dim x bytes_per_element x  sum over layers of (tokens that layer keeps)
            x batch

A layer with global attention keeps every token of the context; a sliding-window layer keeps at most its window.
Many models mix the two (Gemma-2 alternates them, Gemma-3 has five local layers per global one), so windows are per
layer (``ModelSpec.layer_types``, the names Hugging Face configs use). The element count itself is
:func:`mqa_edu.heads.kv_cache_elements`, the course's one definition. MHA has n_kv_heads = n_heads, MQA n_kv_heads = 1;
the saving of GQA/MQA over MHA is exactly n_heads / n_kv_heads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real

from .heads import HeadConfig, check_int, kv_cache_elements

BYTES_PER_ELEMENT = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2,
                     "fp8": 1, "int8": 1, "int4": 0.5}
GB, GiB = 10**9, 2**30
FULL, SLIDING = "full_attention", "sliding_attention"  # Hugging Face's names in config.json "layer_types"


def element_bytes(dtype) -> float:
    """Bytes per number for a dtype name ("fp16", "bf16", "fp32", "fp8", "int8", "int4") or a positive number."""
    if isinstance(dtype, str):
        if dtype.lower() not in BYTES_PER_ELEMENT:
            raise ValueError(f"dtype must be one of {sorted(set(BYTES_PER_ELEMENT))} or bytes per element, "
                             f"got {dtype!r}")
        return BYTES_PER_ELEMENT[dtype.lower()]
    if isinstance(dtype, bool) or not isinstance(dtype, Real) or dtype <= 0:
        raise TypeError(f"dtype must be a name like 'fp16' or a positive number of bytes, got {dtype!r}")
    return dtype


@dataclass(frozen=True)
class ModelSpec:
    """What cache sizing needs to know about a model, with where the numbers come from.

    ``sliding_window``: the window of the sliding-window layers (None: no layer has one). ``layer_types``: one entry
    per layer, "full_attention" or "sliding_attention"; None means every layer uses the window when there is one.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    sliding_window: int | None = None
    n_params: float | None = None
    source: str = ""
    note: str = ""
    layer_types: tuple | None = None
    kv_lora_rank: int | None = None  # MLA (notebook 11): the latent each token caches per layer...
    rope_dim: int | None = None  # ...plus one rotary key shared by the heads
    kv_share: int = 1  # CLA: layers per shared K/V (2 = CLA2); only every kv_share-th layer caches

    def __post_init__(self):
        HeadConfig(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim)  # validates
        check_int("n_layers", self.n_layers)
        check_int("kv_share", self.kv_share)
        if (self.kv_lora_rank is None) != (self.rope_dim is None):
            raise ValueError("an MLA spec needs both kv_lora_rank and rope_dim (or neither)")
        if self.kv_lora_rank is not None:
            check_int("kv_lora_rank", self.kv_lora_rank)
            check_int("rope_dim", self.rope_dim)
        if self.sliding_window is not None:
            check_int("sliding_window", self.sliding_window)
        if self.layer_types is not None:
            types = tuple(self.layer_types)
            object.__setattr__(self, "layer_types", types)
            if len(types) != self.n_layers or any(t not in (FULL, SLIDING) for t in types):
                raise ValueError(f"layer_types must list n_layers={self.n_layers} entries, each {FULL!r} or "
                                 f"{SLIDING!r}; got {len(types)} entries: {sorted(set(map(str, types)))}")
            if SLIDING in types and self.sliding_window is None:
                raise ValueError("layer_types has sliding_attention layers but sliding_window is None")

    @property
    def kind(self) -> str:
        base = "MLA" if self.kv_lora_rank else HeadConfig(self.d_model, self.n_heads, self.n_kv_heads,
                                                          self.head_dim).kind
        return base + (f"+CLA{self.kv_share}" if self.kv_share > 1 else "")

    @property
    def latent(self) -> int | None:
        """MLA's numbers per token and layer (kv_lora_rank + rope_dim), None for K/V heads."""
        return None if self.kv_lora_rank is None else self.kv_lora_rank + self.rope_dim

    @property
    def cache_layers(self) -> tuple:
        """The layers that compute and cache K/V: all of them, or with CLA the first of every kv_share (an odd count
        of layers rounds up: 5 layers in CLA2 cache 3)."""
        return tuple(range(0, self.n_layers, self.kv_share))

    @property
    def layer_windows(self) -> tuple:
        """Per layer, the most tokens it keeps: its window, or None for global attention."""
        if self.sliding_window is None:
            return (None,) * self.n_layers
        types = self.layer_types or (SLIDING,) * self.n_layers
        return tuple(self.sliding_window if t == SLIDING else None for t in types)

    def with_kv_heads(self, n_kv_heads: int) -> ModelSpec:
        """The same model with another number of KV heads (e.g. its MHA or MQA variant)."""
        return replace(self, name=f"{self.name} (n_kv_heads={n_kv_heads})", n_kv_heads=n_kv_heads)


def kv_cache_bytes(spec: ModelSpec, seq_len: int, batch: int = 1, dtype="fp16") -> int:
    """Bytes of the whole KV cache for ``batch`` sequences of ``seq_len`` tokens, each layer keeping at most its
    window."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    seq_len = check_int("seq_len", seq_len, minimum=0)
    batch = check_int("batch", batch, minimum=0)
    windows = spec.layer_windows
    tokens = sum(seq_len if windows[i] is None else min(seq_len, windows[i]) for i in spec.cache_layers)
    return int(kv_cache_elements(spec.n_kv_heads, spec.head_dim, tokens, batch, latent=spec.latent)
               * element_bytes(dtype))


def bytes_per_token(spec: ModelSpec, dtype="fp16") -> int:
    """KV-cache bytes one token adds while no window is full (every layer that caches)."""
    return int(kv_cache_elements(spec.n_kv_heads, spec.head_dim, n_layers=len(spec.cache_layers), latent=spec.latent)
               * element_bytes(dtype))


def format_bytes(n: float) -> str:
    """Both units, since tools disagree: '1.61 GB (1.50 GiB)' (GB = 1e9 bytes, GiB = 2**30 bytes)."""
    return f"{n / GB:,.2f} GB ({n / GiB:,.2f} GiB)"


def weights_bytes(spec: ModelSpec, dtype="fp16") -> int:
    if spec.n_params is None:
        raise ValueError(f"{spec.name} has no n_params; pass the weights' bytes yourself")
    return int(spec.n_params * element_bytes(dtype))


def max_batch(spec: ModelSpec, seq_len: int, budget_bytes: float, dtype="fp16", weights: float = 0) -> int:
    """Most sequences of ``seq_len`` tokens whose cache fits in ``budget_bytes`` after ``weights`` bytes."""
    per_seq = kv_cache_bytes(spec, seq_len, 1, dtype)
    free = budget_bytes - weights
    if free <= 0 or per_seq == 0:
        return 0
    return int(free // per_seq)


def max_context(spec: ModelSpec, batch: int, budget_bytes: float, dtype="fp16", weights: float = 0):
    """Longest context (tokens) for ``batch`` sequences whose cache fits in ``budget_bytes`` after ``weights``.

    Returns an int, or ``math.inf`` when the cache stops growing before the budget runs out (every layer has a
    sliding window and even full windows fit): then any context fits. 0 when nothing fits.
    """
    batch = check_int("batch", batch)
    free = budget_bytes - weights

    def fits(tokens):
        return kv_cache_bytes(spec, tokens, batch, dtype) <= free

    if not fits(1):
        return 0
    windows = spec.layer_windows
    if all(w is not None for w in windows) and fits(max(windows)):
        return math.inf
    lo, hi = 1, 2
    while fits(hi):  # the cache grows at least one layer's bytes per token, so this ends
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def concurrency_gain(spec: ModelSpec, seq_len: int, budget_bytes: float, dtype="fp16", weights: float = 0) -> dict:
    """How many sequences fit with the model's own n_kv_heads vs its MHA variant, at the same budget."""
    mha = spec.with_kv_heads(spec.n_heads)
    ours, theirs = max_batch(spec, seq_len, budget_bytes, dtype, weights), max_batch(mha, seq_len, budget_bytes,
                                                                                       dtype, weights)
    return {"sequences": ours, "sequences_mha": theirs, "extra": ours - theirs,
            "ratio": ours / theirs if theirs else float("inf"), "cache_ratio": spec.n_heads / spec.n_kv_heads}


# model_type values whose configs mean multi-query when "multi_query" is absent (the default of Hugging Face's
# FalconConfig and GPTBigCodeConfig is multi_query=True).
_MULTI_QUERY_BY_DEFAULT = ("falcon", "RefinedWebModel", "gpt_bigcode")


def from_hf_config(config: dict, name: str = "model") -> ModelSpec:
    """A ModelSpec from a Hugging Face config.json dict, in the dialects real models use to say MQA, GQA and windows:

    KV heads
    - ``num_key_value_heads`` (Llama, Mistral, Qwen, Gemma); missing means MHA (n_kv_heads = n_heads);
    - Falcon-7B: ``multi_query: true`` means ONE KV head, whatever ``num_kv_heads`` defaults to, and Falcon's and
      GPTBigCode's configs default to multi_query=True when the key is absent;
    - Falcon-40B/180B: ``new_decoder_architecture: true`` (or the original ``model_type: "RefinedWeb"``) ignores
      multi_query and reads ``num_kv_heads`` / ``n_head_kv``;
    - SantaCoder (GPT-2 with custom code): ``attention_head_type: "multiquery"``;
    - ``head_dim`` given explicitly (Gemma, Qwen3) wins over hidden_size / num_attention_heads.
    Windows
    - ``use_sliding_window: false`` (Qwen2) switches the window off whatever ``sliding_window`` says;
    - ``layer_types`` lists each layer's attention; otherwise ``sliding_window_pattern: N`` (Gemma-3) makes every
      N-th layer global; ``model_type: "gemma2"`` alternates (sliding first); Qwen2's ``max_window_layers`` keeps
      the first layers global; otherwise the window applies to every layer (Mistral v0.1).
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict (a parsed config.json), got {type(config).__name__}")
    get = lambda *keys, default=None: next((config[k] for k in keys if config.get(k) is not None), default)  # noqa
    model_type = config.get("model_type", "")
    n_layers = get("num_hidden_layers", "n_layer", "num_layers")
    d_model = get("hidden_size", "n_embd", "d_model")
    n_heads = get("num_attention_heads", "n_head", "num_heads")
    if None in (n_layers, d_model, n_heads):
        raise ValueError("config needs num_hidden_layers, hidden_size and num_attention_heads (or their GPT-2 names "
                         "n_layer, n_embd, n_head)")
    if config.get("new_decoder_architecture", model_type == "RefinedWeb"):
        n_kv = get("num_kv_heads", "n_head_kv", "num_key_value_heads", default=n_heads)
    elif config.get("attention_head_type") == "multiquery" or \
            config.get("multi_query", model_type in _MULTI_QUERY_BY_DEFAULT):
        n_kv = 1
    else:
        n_kv = get("num_key_value_heads", "num_kv_heads", "n_head_kv", default=n_heads)
    head_dim = get("head_dim", default=d_model // n_heads)

    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    layer_types = None
    if window is not None:
        if config.get("layer_types"):
            layer_types = tuple(config["layer_types"])
        elif config.get("sliding_window_pattern"):
            every = config["sliding_window_pattern"]
            layer_types = tuple(FULL if (i + 1) % every == 0 else SLIDING for i in range(n_layers))
        elif model_type == "gemma2":
            layer_types = tuple(SLIDING if i % 2 == 0 else FULL for i in range(n_layers))
        elif config.get("max_window_layers") is not None:
            layer_types = tuple(SLIDING if i >= config["max_window_layers"] else FULL for i in range(n_layers))
    if config.get("kv_lora_rank"):  # MLA (DeepSeek-V2/V3): a latent and one rotary key per token and layer
        return ModelSpec(name, n_layers, d_model, n_heads, n_heads, config.get("v_head_dim", head_dim),
                         kv_lora_rank=config["kv_lora_rank"], rope_dim=config["qk_rope_head_dim"],
                         source="Hugging Face config.json")
    return ModelSpec(name, n_layers, d_model, n_heads, n_kv, head_dim, sliding_window=window,
                     layer_types=layer_types, source="Hugging Face config.json")


REAL_MODELS = {s.name: s for s in [
    ModelSpec("GPT-2 small", 12, 768, 12, 12, 64, source="Radford et al. 2019; HF config gpt2"),
    ModelSpec("OPT-13B", 40, 5120, 40, 40, 128, source="Zhang et al. 2022; vLLM paper (Kwon et al. 2023) §2.3: "
              "819,200 B/token in fp16"),
    ModelSpec("Llama-2-7B", 32, 4096, 32, 32, 128, n_params=6.74e9,
              source="Touvron et al. 2023 (Llama 2); parameter count from the Hugging Face model card"),
    ModelSpec("Llama-2-70B", 80, 8192, 64, 8, 128, source="Touvron et al. 2023 (Llama 2)"),
    ModelSpec("Llama-3-8B", 32, 4096, 32, 8, 128, n_params=8.03e9,
              source="Meta Llama 3 model card / config (8.03B parameters)"),
    ModelSpec("Llama-3-70B", 80, 8192, 64, 8, 128, source="Meta Llama 3 model card / config"),
    ModelSpec("Mistral-7B (v0.1)", 32, 4096, 32, 8, 128, sliding_window=4096, n_params=7.24e9,
              source="Jiang et al. 2023 (Mistral 7B), Table 1; 7.24B parameters per the model card",
              note="sliding window 4096 caps the cache"),
    ModelSpec("Qwen2.5-7B", 28, 3584, 28, 4, 128, source="Qwen2.5 technical report / config"),
    ModelSpec("Falcon-7B", 32, 4544, 71, 1, 64, source="tiiuae/falcon-7b config (multi_query=true)",
              note="config leaves num_kv_heads unset (defaults to 71) but the model runs multi-query: 1 KV head"),
    ModelSpec("StarCoder (15.5B)", 40, 6144, 48, 1, 128, source="Li et al. 2023 (StarCoder), MQA"),
    ModelSpec("Gemma-2B", 18, 2048, 8, 1, 256, source="Gemma Team 2024, Table 1",
              note="head_dim 256 is set explicitly"),
    ModelSpec("Gemma-7B", 28, 3072, 16, 16, 256, source="Gemma Team 2024, Table 1",
              note="16 x 256 = 4096 != d_model 3072: head_dim is explicit"),
    ModelSpec("PaLM-540B", 118, 18432, 48, 1, 256, source="Chowdhery et al. 2022 (PaLM), Table 1"),
    ModelSpec("SmolLM2-135M", 30, 576, 9, 3, 64, n_params=134.5e6, source="HuggingFaceTB/SmolLM2-135M config"),
    ModelSpec("Gemma-2-9B", 42, 3584, 16, 8, 256, sliding_window=4096,
              layer_types=tuple(SLIDING if i % 2 == 0 else FULL for i in range(42)),
              source="Gemma Team 2024 (Gemma 2), Table 1; google/gemma-2-9b config.json",
              note="local (4096-token window) and global layers alternate: half the layers keep the whole context"),
    ModelSpec("Gemma-3-4B", 34, 2560, 8, 4, 256, sliding_window=1024,
              layer_types=tuple(FULL if (i + 1) % 6 == 0 else SLIDING for i in range(34)),
              source="Gemma Team 2025 (Gemma 3 report: 5 local layers per global one, 1024-token window); "
                     "google/gemma-3-4b config.json (sliding_window_pattern 6)",
              note="only every sixth layer (5 of 34) keeps the whole context"),
]}

# Beyond MQA (notebook 11): designs that cache less than one K/V head per layer. Not in REAL_MODELS, whose rows are
# K/V-head models that notebook 06's table and calculator vary. No public configuration of a CLA model was found
# (Brandon et al. 2024 describe their 1B and 3B models in the paper only), so CLA has no row here.
LATENT_MODELS = {s.name: s for s in [
    ModelSpec("DeepSeek-V2", 60, 5120, 128, 128, 128, kv_lora_rank=512, rope_dim=64, n_params=236e9,
              source="DeepSeek-AI 2024 (arXiv 2405.04434), section 2.1; deepseek-ai/DeepSeek-V2 config.json "
                     "(kv_lora_rank 512, qk_rope_head_dim 64, qk_nope_head_dim 128, v_head_dim 128)",
              note="MLA: 512 + 64 = 576 numbers per token and layer; the paper: the cache of GQA with 2.25 groups"),
    ModelSpec("DeepSeek-V3", 61, 7168, 128, 128, 128, kv_lora_rank=512, rope_dim=64, n_params=671e9,
              source="DeepSeek-AI 2024 (arXiv 2412.19437); deepseek-ai/DeepSeek-V3 config.json (the same MLA "
                     "dimensions as V2)",
              note="MLA, 61 layers"),
]}

# bytes per token in fp16 as published in ../shared/reference/mqa_facts.md (the tests recompute every one). Falcon-7B's
# is exercise 1's graded answer: its published figure is checked by the private tests (tests/test_exercises.py).
PUBLISHED_FP16_BYTES_PER_TOKEN = {
    "GPT-2 small": 36_864, "OPT-13B": 819_200, "Llama-2-7B": 524_288, "Llama-2-70B": 327_680,
    "Llama-3-8B": 131_072, "Llama-3-70B": 327_680, "Mistral-7B (v0.1)": 131_072, "Qwen2.5-7B": 57_344,
    "StarCoder (15.5B)": 20_480, "Gemma-2B": 18_432, "PaLM-540B": 120_832,
    "SmolLM2-135M": 23_040,
}
