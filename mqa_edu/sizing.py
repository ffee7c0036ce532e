"""How big is the KV cache? (notebook 06). Pure Python: no torch needed.

    bytes = 2 (K and V) x n_layers x n_kv_heads x head_dim x tokens x batch x bytes_per_element

where tokens is the context length, capped by the sliding window if the model has one. MHA has n_kv_heads = n_heads,
MQA n_kv_heads = 1; the saving of GQA/MQA over MHA is exactly n_heads / n_kv_heads.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral, Real

from .heads import HeadConfig, check_int

BYTES_PER_ELEMENT = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2,
                     "fp8": 1, "int8": 1, "int4": 0.5}
GB, GiB = 10**9, 2**30


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
    """What cache sizing needs to know about a model, with where the numbers come from."""

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

    def __post_init__(self):
        HeadConfig(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim)  # validates
        check_int("n_layers", self.n_layers)

    @property
    def kind(self) -> str:
        return HeadConfig(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim).kind

    def with_kv_heads(self, n_kv_heads: int) -> "ModelSpec":
        """The same model with another number of KV heads (e.g. its MHA or MQA variant)."""
        return replace(self, name=f"{self.name} (n_kv_heads={n_kv_heads})", n_kv_heads=n_kv_heads)


def kv_cache_bytes(spec: ModelSpec, seq_len: int, batch: int = 1, dtype="fp16") -> int:
    """Bytes of the whole KV cache for ``batch`` sequences of ``seq_len`` tokens."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    seq_len = check_int("seq_len", seq_len, minimum=0)
    batch = check_int("batch", batch, minimum=0)
    tokens = min(seq_len, spec.sliding_window) if spec.sliding_window else seq_len
    per_token = 2 * spec.n_layers * spec.n_kv_heads * spec.head_dim * element_bytes(dtype)
    return int(per_token * tokens * batch)


def bytes_per_token(spec: ModelSpec, dtype="fp16") -> int:
    """KV-cache bytes one token adds (before any sliding window)."""
    return int(2 * spec.n_layers * spec.n_kv_heads * spec.head_dim * element_bytes(dtype))


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


def max_context(spec: ModelSpec, batch: int, budget_bytes: float, dtype="fp16", weights: float = 0) -> int:
    """Longest context for ``batch`` sequences within the budget (unbounded windows only grow to the window)."""
    batch = check_int("batch", batch)
    free = budget_bytes - weights
    if free <= 0:
        return 0
    tokens = int(free // (bytes_per_token(spec, dtype) * batch))
    if spec.sliding_window and tokens >= spec.sliding_window:
        return -1  # any context fits: the window caps the cache (-1 = unbounded)
    return tokens


def concurrency_gain(spec: ModelSpec, seq_len: int, budget_bytes: float, dtype="fp16", weights: float = 0) -> dict:
    """How many sequences fit with the model's own n_kv_heads vs its MHA variant, at the same budget."""
    mha = spec.with_kv_heads(spec.n_heads)
    ours, theirs = max_batch(spec, seq_len, budget_bytes, dtype, weights), max_batch(mha, seq_len, budget_bytes,
                                                                                       dtype, weights)
    return {"sequences": ours, "sequences_mha": theirs, "extra": ours - theirs,
            "ratio": ours / theirs if theirs else float("inf"), "cache_ratio": spec.n_heads / spec.n_kv_heads}


def from_hf_config(config: dict, name: str = "model") -> ModelSpec:
    """A ModelSpec from a Hugging Face config.json dict, handling the traps real tools fell into:

    - ``num_key_value_heads`` missing means MHA (n_kv_heads = n_heads);
    - Falcon: ``multi_query: true`` means ONE KV head, whatever ``num_kv_heads`` defaults to;
    - ``head_dim`` given explicitly (Gemma, Qwen3) wins over hidden_size / num_attention_heads.
    """
    get = lambda *keys, default=None: next((config[k] for k in keys if config.get(k) is not None), default)  # noqa
    n_layers = get("num_hidden_layers", "n_layer", "num_layers")
    d_model = get("hidden_size", "n_embd", "d_model")
    n_heads = get("num_attention_heads", "n_head", "num_heads")
    if None in (n_layers, d_model, n_heads):
        raise ValueError("config needs num_hidden_layers, hidden_size and num_attention_heads (or their GPT-2 names)")
    if config.get("multi_query") and not config.get("new_decoder_architecture"):
        n_kv = 1
    else:
        n_kv = get("num_key_value_heads", "num_kv_heads", "n_head_kv", default=n_heads)
    head_dim = get("head_dim", default=d_model // n_heads)
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    return ModelSpec(name, n_layers, d_model, n_heads, n_kv, head_dim, sliding_window=window,
                     source="Hugging Face config.json")


REAL_MODELS = {s.name: s for s in [
    ModelSpec("GPT-2 small", 12, 768, 12, 12, 64, source="Radford et al. 2019; HF config gpt2"),
    ModelSpec("OPT-13B", 40, 5120, 40, 40, 128, source="Zhang et al. 2022; vLLM paper (Kwon et al. 2023) §2.3: "
              "819,200 B/token in fp16"),
    ModelSpec("Llama-2-7B", 32, 4096, 32, 32, 128, n_params=6.74e9,
              source="Touvron et al. 2023 (Llama 2); parameter count from the Hugging Face model card"),
    ModelSpec("Llama-2-70B", 80, 8192, 64, 8, 128, source="Touvron et al. 2023 (Llama 2)"),
    ModelSpec("Llama-3-8B", 32, 4096, 32, 8, 128, n_params=8.03e9, source="Meta Llama 3 model card / config (8.03B parameters)"),
    ModelSpec("Llama-3-70B", 80, 8192, 64, 8, 128, source="Meta Llama 3 model card / config"),
    ModelSpec("Mistral-7B (v0.1)", 32, 4096, 32, 8, 128, sliding_window=4096, n_params=7.24e9,
              source="Jiang et al. 2023 (Mistral 7B), Table 1; 7.24B parameters per the model card", note="sliding window 4096 caps the cache"),
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
]}

# bytes per token in fp16 as published in ../shared/reference/mqa_facts.md (the tests recompute every one)
PUBLISHED_FP16_BYTES_PER_TOKEN = {
    "GPT-2 small": 36_864, "OPT-13B": 819_200, "Llama-2-7B": 524_288, "Llama-2-70B": 327_680,
    "Llama-3-8B": 131_072, "Llama-3-70B": 327_680, "Mistral-7B (v0.1)": 131_072, "Qwen2.5-7B": 57_344,
    "Falcon-7B": 8_192, "StarCoder (15.5B)": 20_480, "Gemma-2B": 18_432, "PaLM-540B": 120_832,
    "SmolLM2-135M": 23_040,
}
