import math

import pytest

from mqa_edu.sizing import (
    GB,
    PUBLISHED_FP16_BYTES_PER_TOKEN,
    REAL_MODELS,
    GiB,
    ModelSpec,
    bytes_per_token,
    concurrency_gain,
    format_bytes,
    from_hf_config,
    kv_cache_bytes,
    max_batch,
    max_context,
)


@pytest.mark.parametrize("name", sorted(PUBLISHED_FP16_BYTES_PER_TOKEN))
def test_reproduces_every_published_figure(name):
    assert bytes_per_token(REAL_MODELS[name], "fp16") == PUBLISHED_FP16_BYTES_PER_TOKEN[name]


def test_opt13b_vllm_check_value():
    opt = REAL_MODELS["OPT-13B"]
    assert bytes_per_token(opt) == 819_200
    assert kv_cache_bytes(opt, 2048) == 819_200 * 2048  # "1.6 GB for 2048 tokens"
    assert format_bytes(kv_cache_bytes(opt, 2048)).startswith("1.68 GB (1.56 GiB)")


def test_falcon_trap_from_config():
    cfg = {"hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": True, "new_decoder_architecture": False}
    spec = from_hf_config(cfg, "falcon")
    assert spec.n_kv_heads == 1 and bytes_per_token(spec) == 8_192
    assert from_hf_config({"hidden_size": 3072, "num_attention_heads": 16, "num_hidden_layers": 28,
                           "head_dim": 256, "num_key_value_heads": 16}).head_dim == 256  # Gemma-7B
    assert from_hf_config({"hidden_size": 768, "n_head": 12, "n_layer": 12}).n_kv_heads == 12  # no kv key: MHA
    with pytest.raises(ValueError, match="num_hidden_layers"):
        from_hf_config({"hidden_size": 10})


def test_units_sliding_window_and_dtypes():
    llama = REAL_MODELS["Llama-2-7B"]
    assert kv_cache_bytes(llama, 4096, 1, "fp16") == 2 * GiB  # 524,288 B x 4096 = exactly 2 GiB
    assert kv_cache_bytes(llama, 4096, 1, "fp32") == 2 * kv_cache_bytes(llama, 4096, 1, "bf16")
    mistral = REAL_MODELS["Mistral-7B (v0.1)"]
    assert kv_cache_bytes(mistral, 32768) == kv_cache_bytes(mistral, 4096)
    assert max_context(mistral, 1, 80 * GB) == math.inf  # every layer windowed: any context fits, no sentinel
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_bytes(llama, 10, 1, "fp12")
    with pytest.raises(TypeError, match="spec"):
        kv_cache_bytes({"n_layers": 1}, 10)


def test_budget_helpers():
    llama3 = REAL_MODELS["Llama-3-8B"]
    budget, weights = 80 * GB, 16 * GB
    b = max_batch(llama3, 8192, budget, weights=weights)
    assert kv_cache_bytes(llama3, 8192, b) <= budget - weights < kv_cache_bytes(llama3, 8192, b + 1)
    gain = concurrency_gain(llama3, 8192, budget, weights=weights)
    assert gain["cache_ratio"] == 4 and gain["sequences_mha"] == max_batch(llama3.with_kv_heads(32), 8192, budget,
                                                                            weights=weights)
    assert gain["extra"] == gain["sequences"] - gain["sequences_mha"] > 0
    assert max_batch(llama3, 8192, weights, weights=weights) == 0


def test_bad_spec():
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelSpec("x", 2, 64, 8, 3, 8)


# ------------------------------------------------------------------ per-layer attention patterns
def test_gemma2_alternating_window_counts_the_global_layers():
    gemma2 = REAL_MODELS["Gemma-2-9B"]
    per_layer_token = 2 * 8 * 256 * 2  # K and V, 8 KV heads of 256, fp16
    # 21 global layers keep all 8192 tokens, 21 local layers keep their 4096-token window
    assert kv_cache_bytes(gemma2, 8192) == per_layer_token * (21 * 8192 + 21 * 4096)
    window_everywhere = ModelSpec("window on every layer", 42, 3584, 16, 8, 256, sliding_window=4096)
    assert kv_cache_bytes(window_everywhere, 8192) / kv_cache_bytes(gemma2, 8192) == pytest.approx(2 / 3)
    assert kv_cache_bytes(gemma2, 4096) == kv_cache_bytes(window_everywhere, 4096)  # no window is full yet


def test_max_context_with_global_layers_is_finite_and_exact():
    gemma2 = REAL_MODELS["Gemma-2-9B"]
    n = max_context(gemma2, 1, 80 * GB)
    assert isinstance(n, int) and 450_000 < n < 470_000  # about 460k tokens, not "unbounded"
    assert kv_cache_bytes(gemma2, n) <= 80 * GB < kv_cache_bytes(gemma2, n + 1)
    llama3 = REAL_MODELS["Llama-3-8B"]
    n = max_context(llama3, 4, 80 * GB, weights=16 * GB)
    assert kv_cache_bytes(llama3, n, 4) <= 64 * GB < kv_cache_bytes(llama3, n + 1, 4)
    assert max_context(llama3, 1, 10, weights=20) == 0
    tiny_budget = kv_cache_bytes(REAL_MODELS["Mistral-7B (v0.1)"], 100)
    assert max_context(REAL_MODELS["Mistral-7B (v0.1)"], 1, tiny_budget) == 100  # window not reached: finite


def test_gemma3_five_local_layers_per_global_one():
    gemma3 = REAL_MODELS["Gemma-3-4B"]
    assert gemma3.layer_windows.count(None) == 5  # layers 5, 11, 17, 23, 29 of 34 are global
    assert [i for i, w in enumerate(gemma3.layer_windows) if w is None] == [5, 11, 17, 23, 29]


def test_layer_types_are_validated():
    with pytest.raises(ValueError, match="layer_types must list n_layers=2"):
        ModelSpec("x", 2, 64, 8, 8, 8, sliding_window=16, layer_types=("full_attention",))
    with pytest.raises(ValueError, match="'sliding_attention'"):
        ModelSpec("x", 2, 64, 8, 8, 8, sliding_window=16, layer_types=("full_attention", "chunked_attention"))
    with pytest.raises(ValueError, match="sliding_window is None"):
        ModelSpec("x", 2, 64, 8, 8, 8, layer_types=("full_attention", "sliding_attention"))


# ------------------------------------------------------------------ config dialects, as the real config.json files
# Each dict keeps the fields of the model's published config.json that sizing reads (plus model_type).
SANTACODER = {  # bigcode/santacoder config.json (GPT-2 with custom multi-query code)
    "model_type": "gpt2", "attention_head_type": "multiquery", "n_embd": 2048, "n_head": 16, "n_layer": 24,
    "n_positions": 2048}
STARCODER = {  # bigcode/starcoder config.json (GPTBigCode)
    "model_type": "gpt_bigcode", "multi_query": True, "n_embd": 6144, "n_head": 48, "n_layer": 40,
    "n_positions": 8192}
FALCON_7B = {  # tiiuae/falcon-7b config.json (Hugging Face format)
    "model_type": "falcon", "hidden_size": 4544, "num_attention_heads": 71, "num_hidden_layers": 32,
    "multi_query": True, "new_decoder_architecture": False, "num_kv_heads": None}
FALCON_7B_RW = {  # tiiuae/falcon-7b config.json before the Hugging Face port (remote code "RefinedWebModel")
    "model_type": "RefinedWebModel", "hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": True}
FALCON_40B = {  # tiiuae/falcon-40b config.json: the new decoder architecture, 8 KV heads (GQA)
    "model_type": "falcon", "hidden_size": 8192, "num_attention_heads": 128, "num_hidden_layers": 60,
    "num_kv_heads": 8, "new_decoder_architecture": True, "multi_query": True}
FALCON_40B_RW = {  # tiiuae/falcon-40b config.json before the port (remote code "RefinedWeb")
    "model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60}
QWEN25_7B = {  # Qwen/Qwen2.5-7B config.json: a window is declared but switched off
    "model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
    "num_hidden_layers": 28, "sliding_window": 131072, "use_sliding_window": False, "max_window_layers": 28}
GEMMA2_9B = {  # google/gemma-2-9b config.json: no layer list, the alternation is the architecture's
    "model_type": "gemma2", "hidden_size": 3584, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 256, "num_hidden_layers": 42, "sliding_window": 4096}
GEMMA3_4B = {  # google/gemma-3-4b (text) config.json: every 6th layer global
    "model_type": "gemma3_text", "hidden_size": 2560, "num_attention_heads": 8, "num_key_value_heads": 4,
    "head_dim": 256, "num_hidden_layers": 34, "sliding_window": 1024, "sliding_window_pattern": 6}
MISTRAL_7B_V01 = {  # mistralai/Mistral-7B-v0.1 config.json: the window on every layer
    "model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_hidden_layers": 32, "sliding_window": 4096}
GEMMA_7B = {  # google/gemma-7b config.json: head_dim set explicitly, 16 x 256 != 3072
    "model_type": "gemma", "hidden_size": 3072, "num_attention_heads": 16, "num_key_value_heads": 16,
    "head_dim": 256, "num_hidden_layers": 28}


@pytest.mark.parametrize("config, n_kv_heads, head_dim, fp16_bytes_per_token", [
    (SANTACODER, 1, 128, 2 * 24 * 1 * 128 * 2),
    (STARCODER, 1, 128, 20_480),  # the published figure for StarCoder
    (FALCON_7B, 1, 64, 8_192),
    (FALCON_7B_RW, 1, 64, 8_192),
    (FALCON_40B, 8, 64, 2 * 60 * 8 * 64 * 2),
    (FALCON_40B_RW, 8, 64, 2 * 60 * 8 * 64 * 2),
    (QWEN25_7B, 4, 128, 57_344),
    (GEMMA_7B, 16, 256, 2 * 28 * 16 * 256 * 2),
], ids=["santacoder", "starcoder", "falcon-7b", "falcon-7b-rw", "falcon-40b", "falcon-40b-rw", "qwen2.5-7b",
        "gemma-7b"])
def test_config_dialects_declare_kv_heads(config, n_kv_heads, head_dim, fp16_bytes_per_token):
    spec = from_hf_config(config)
    assert (spec.n_kv_heads, spec.head_dim) == (n_kv_heads, head_dim)
    assert bytes_per_token(spec) == fp16_bytes_per_token


def test_falcon_and_gptbigcode_default_to_multi_query():
    # Hugging Face's FalconConfig and GPTBigCodeConfig default multi_query to True: absent means one KV head
    assert from_hf_config({k: v for k, v in STARCODER.items() if k != "multi_query"}).n_kv_heads == 1
    assert from_hf_config({**STARCODER, "multi_query": False}).n_kv_heads == 48
    assert from_hf_config({**SANTACODER, "attention_head_type": "multihead"}).n_kv_heads == 16


def test_config_dialects_declare_windows():
    assert from_hf_config(QWEN25_7B).sliding_window is None  # use_sliding_window: false wins
    assert from_hf_config({**QWEN25_7B, "use_sliding_window": True, "sliding_window": 4096,
                           "max_window_layers": 20}).layer_windows == (None,) * 20 + (4096,) * 8
    gemma2 = from_hf_config(GEMMA2_9B)
    assert gemma2.layer_windows == REAL_MODELS["Gemma-2-9B"].layer_windows
    assert kv_cache_bytes(gemma2, 8192) == kv_cache_bytes(REAL_MODELS["Gemma-2-9B"], 8192)
    assert from_hf_config(GEMMA3_4B).layer_windows == REAL_MODELS["Gemma-3-4B"].layer_windows
    listed = from_hf_config({**GEMMA3_4B, "sliding_window_pattern": None,
                             "layer_types": ["sliding_attention", "full_attention"] * 17})
    assert listed.layer_windows[:2] == (1024, None)
    assert from_hf_config(MISTRAL_7B_V01).layer_windows == (4096,) * 32
    with pytest.raises(TypeError, match="config must be a dict"):
        from_hf_config("config.json")
