import pytest

from mqa_edu.sizing import (GB, GiB, PUBLISHED_FP16_BYTES_PER_TOKEN, REAL_MODELS, ModelSpec, bytes_per_token,
                            concurrency_gain, format_bytes, from_hf_config, kv_cache_bytes, max_batch, max_context)


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
    assert max_context(mistral, 1, 80 * GB) == -1
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
