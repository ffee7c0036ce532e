"""Beyond MQA (notebook 11): MLA and CLA in the course's model. Cached equals uncached, the absorbed MLA step equals
the naive one to float64 rounding, the cache allocates exactly what the one sizing formula says, MLA agrees with
Hugging Face transformers' DeepSeek-V3 attention (nobody here wrote it), and DeepSeek-V2's published 576 numbers per
token and layer come out of the formula."""
import pytest
import torch

from mqa_edu.generate import generate
from mqa_edu.heads import kv_cache_elements
from mqa_edu.kv_cache import KVCache
from mqa_edu.latent import LatentAttention
from mqa_edu.model import ModelConfig, Transformer
from mqa_edu.rotary import Rotary
from mqa_edu.sizing import LATENT_MODELS, ModelSpec, bytes_per_token, kv_cache_bytes

BASE = dict(n_layers=2, d_model=32, n_heads=4, vocab_size=50, max_seq_len=32)
DESIGNS = {  # every design of notebook 11, with odd layer counts for CLA
    "MHA": {}, "MQA": dict(n_kv_heads=1), "GQA-2": dict(n_kv_heads=2),
    "MHA+CLA2": dict(kv_share=2), "MQA+CLA2": dict(n_kv_heads=1, kv_share=2),
    "GQA-2+CLA2, 3 layers": dict(n_kv_heads=2, kv_share=2, n_layers=3),
    "MHA+CLA3, 5 layers": dict(kv_share=3, n_layers=5),
    "MLA-8": dict(kv_lora_rank=8, rope_dim=4), "MLA-8 (9 heads)": dict(kv_lora_rank=8, rope_dim=2, n_heads=9,
                                                                       d_model=36),
}


def model_for(design, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**BASE, **DESIGNS[design]})
    return cfg, Transformer(cfg).to(dtype).eval()


@pytest.mark.parametrize("design, absorbed", [(d, False) for d in DESIGNS] + [(d, True) for d in DESIGNS
                                                                               if "MLA" in d])
def test_cached_equals_uncached(design, absorbed):
    cfg, model = model_for(design)
    for layer in model.layers:
        if isinstance(layer.self_attn, LatentAttention):
            layer.self_attn.absorbed = absorbed
    ids = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache.for_model(cfg, 2, 16, dtype=torch.float64)
        steps = [model(ids[:, :5], cache=cache)] + [model(ids[:, t:t + 1], cache=cache) for t in range(5, 11)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("design", DESIGNS)
def test_a_padded_batch_generates_what_each_row_generates_alone(design):
    cfg, model = model_for(design, dtype=torch.float32)
    prompts = [[5, 6, 7, 8, 9], [3, 4], [1, 2, 3]]
    batched = generate(model, prompts, 6)
    assert batched == [generate(model, [p], 6)[0] for p in prompts]


def test_the_absorbed_step_equals_the_naive_one_in_float64():
    torch.manual_seed(0)
    for heads, hd, rank, rope in ((4, 8, 12, 4), (9, 4, 6, 2), (1, 16, 32, 8)):
        attn = LatentAttention(heads * hd, heads, hd, rank, rope).double()
        x = torch.randn(2, 7, heads * hd, dtype=torch.float64)
        cos_sin = Rotary(rope, 16)(torch.arange(7)[None].expand(2, 7), torch.float64)
        naive = attn(x, rope=cos_sin)
        attn.absorbed = True
        torch.testing.assert_close(attn(x, rope=cos_sin), naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("design", DESIGNS)
def test_cache_bytes_equal_the_formula_and_the_buffers(design):
    cfg, _ = model_for(design)
    spec = ModelSpec(design, cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                     kv_lora_rank=cfg.kv_lora_rank, rope_dim=cfg.rope_dim, kv_share=cfg.kv_share)
    for batch, max_len in ((1, 8), (3, 20)):
        cache = KVCache.for_model(cfg, batch, max_len, dtype=torch.float16)
        assert cache.nbytes == kv_cache_bytes(spec, max_len, batch, "fp16"), design
        assert len(cache.layers) == cfg.n_kv_layers == len(spec.cache_layers)


def test_cla_layers_that_share_have_no_kv_projections():
    cfg, model = model_for("GQA-2+CLA2, 3 layers")
    has_kv = [hasattr(layer.self_attn, "k_proj") for layer in model.layers]
    assert has_kv == [True, False, True] and cfg.n_kv_layers == 2
    plain = Transformer(ModelConfig(**{**BASE, "n_kv_heads": 2, "n_layers": 3}))
    kv_params = 2 * cfg.d_model * cfg.n_kv_heads * cfg.head_dim
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in model.parameters()) == kv_params


def test_deepseek_v2_caches_576_numbers_per_token_and_layer():
    for name in ("DeepSeek-V2", "DeepSeek-V3"):
        spec = LATENT_MODELS[name]
        assert kv_cache_elements(spec.n_kv_heads, spec.head_dim, latent=spec.latent) == 576
        assert bytes_per_token(spec, "bf16") == 2 * 576 * spec.n_layers
    v2 = LATENT_MODELS["DeepSeek-V2"]
    assert 576 / (2 * v2.head_dim) == 2.25  # the paper: "equal to GQA with only 2.25 groups"
    assert bytes_per_token(v2, "bf16") == 69_120  # 60 layers x 576 x 2 bytes


def test_the_sizing_formula_covers_windows_and_cla_on_an_odd_number_of_layers():
    spec = ModelSpec("toy", 5, 64, 4, 2, 16, kv_share=2, sliding_window=8,
                     layer_types=("sliding_attention", "full_attention") * 2 + ("sliding_attention",))
    assert spec.cache_layers == (0, 2, 4)  # 5 layers in CLA2 cache 3, not 2
    assert kv_cache_bytes(spec, 100, 1, "fp16") == 3 * 2 * 2 * 16 * 8 * 2  # all three caching layers slide


@pytest.mark.parametrize("kwargs, message", [
    (dict(kv_share=3, n_layers=2), "kv_share must be between 1 and n_layers=2"),
    (dict(kv_share=0), "kv_share"),
    (dict(kv_lora_rank=8), "needs rope_dim"),
    (dict(kv_lora_rank=8, rope_dim=3), "rope_dim must be even"),
    (dict(kv_lora_rank=8, rope_dim=4, n_kv_heads=2), "leave n_kv_heads None"),
    (dict(kv_lora_rank=8, rope_dim=4, kv_share=2), "not built here"),
    (dict(rope_dim=4), "set kv_lora_rank too"),
])
def test_bad_configurations_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**BASE, **kwargs})


def test_a_cache_for_another_design_is_refused():
    cfg, model = model_for("MLA-8")
    other, _ = model_for("MHA+CLA2")
    with pytest.raises(ValueError, match="another model configuration"):
        model(torch.ones(1, 2, dtype=torch.long), cache=KVCache.for_model(other, 1, 8, dtype=torch.float64))


def test_mla_matches_transformers_deepseek_v3():
    """The course's MLA model, its weights copied into transformers' DeepseekV3ForCausalLM (no query low-rank, dense
    MLPs, the halves rotary layout), gives the same logits."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=2, d_model=64, n_heads=4, head_dim=16, kv_lora_rank=24, rope_dim=8, vocab_size=97,
                      max_seq_len=64, d_ff=96, norm_eps=1e-6)
    model = Transformer(cfg).eval()
    hf_cfg = transformers.DeepseekV3Config(
        vocab_size=97, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1, n_routed_experts=4, num_experts_per_tok=2,
        first_k_dense_replace=2, kv_lora_rank=24, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=16,
        v_head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=64, rope_interleave=False,
        tie_word_embeddings=False, attention_bias=False, rope_theta=cfg.rope_theta)
    hf = transformers.DeepseekV3ForCausalLM(hf_cfg).eval()
    state = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight,
             "lm_head.weight": model.lm_head.weight}
    for i, layer in enumerate(model.layers):
        a, pre = layer.self_attn, f"model.layers.{i}."
        h, hd, r = cfg.n_heads, cfg.head_dim, cfg.kv_lora_rank
        kv_b = torch.cat([a.k_up.weight.view(h, hd, r), a.v_up.weight.view(h, hd, r)], dim=1).reshape(2 * h * hd, r)
        state.update({
            pre + "input_layernorm.weight": layer.input_layernorm.weight,
            pre + "post_attention_layernorm.weight": layer.post_attention_layernorm.weight,
            pre + "self_attn.q_proj.weight": a.q_proj.weight, pre + "self_attn.o_proj.weight": a.o_proj.weight,
            pre + "self_attn.kv_a_proj_with_mqa.weight": torch.cat([a.kv_down.weight, a.k_rope_proj.weight]),
            pre + "self_attn.kv_a_layernorm.weight": a.kv_norm.weight, pre + "self_attn.kv_b_proj.weight": kv_b,
            **{pre + f"mlp.{n}.weight": getattr(layer.mlp, n).weight for n in ("gate_proj", "up_proj", "down_proj")}})
    missing, unexpected = hf.load_state_dict({k: v.detach() for k, v in state.items()}, strict=False)
    assert not unexpected and not [k for k in missing if "rotary" not in k], (missing, unexpected)
    ids = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_an_fp8_latent_cache_saturates_like_the_kv_cache():
    """The latent cache stores narrower dtypes the way the K/V cache does: large values clamp to fp8's range."""
    from mqa_edu.kv_cache import LatentLayerCache
    fp8 = getattr(torch, "float8_e4m3fn", None)
    if fp8 is None:
        pytest.skip("this torch has no float8_e4m3fn")
    cache = LatentLayerCache(1, 4, 2, 3, dtype=fp8)
    c, k_rope = cache.update(0, torch.full((1, 1, 4), 1e6), torch.full((1, 1, 2), -1e6))
    assert torch.isfinite(c).all() and c.max() == torch.finfo(fp8).max and k_rope.min() == -torch.finfo(fp8).max
