"""The course's Llama-style model against Hugging Face LlamaForCausalLM with the same weights."""
import pytest
import torch

from mqa_edu.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")
from mqa_edu.convert import from_hf_llama, to_hf_llama  # noqa: E402
from tests.helpers import raises_naming  # noqa: E402


def tiny(n_kv_heads, n_heads=8, **kw):
    base = dict(n_layers=2, d_model=64, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=16, vocab_size=101,
                max_seq_len=64, rope_theta=500.0, norm_eps=1e-6)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("n_heads, n_kv_heads", [(8, 8), (8, 4), (8, 2), (8, 1), (9, 3), (6, 3)])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)], ids=["fp64", "fp32"])
def test_logits_equal_hf_llama(n_heads, n_kv_heads, dtype, tol):
    torch.manual_seed(n_heads * 10 + n_kv_heads)
    # HF's LlamaConfig insists on hidden_size % num_attention_heads == 0 even with an explicit head_dim
    cfg = tiny(n_kv_heads, n_heads, d_model=8 * n_heads, head_dim=16 if n_heads == 8 else 8)
    model = Transformer(cfg, dtype=dtype).eval()
    hf = to_hf_llama(model)
    tokens = torch.randint(0, cfg.vocab_size, (3, 17))
    am = torch.ones(3, 17, dtype=torch.long)
    am[1, :6] = 0  # left padding
    pos = (am.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(tokens, am)
        ref = hf(input_ids=tokens, attention_mask=am, position_ids=pos).logits
    real = am.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=tol, rtol=tol)


def test_round_trip_from_hf_and_explicit_head_dim():
    torch.manual_seed(0)
    cfg = tiny(2, head_dim=24, tie_embeddings=True)  # 8 x 24 != 64: explicit head_dim
    hf = to_hf_llama(Transformer(cfg, dtype=torch.float64))
    back = from_hf_llama(hf)
    assert back.cfg.head_dim == 24 and back.cfg.n_kv_heads == 2 and back.cfg.tie_embeddings
    tokens = torch.randint(0, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(back(tokens), hf(input_ids=tokens).logits, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(n_heads=8, n_kv_heads=3), ValueError, ["n_kv_heads", "[1, 2, 4, 8]"]),
    (dict(d_model=60, n_heads=8, head_dim=None), ValueError, ["d_model=60"]),
    (dict(head_dim=7), ValueError, ["head_dim must be even"]),
    (dict(n_layers=0), ValueError, ["n_layers"]),
    (dict(vocab_size=1.5), TypeError, ["vocab_size"]),
])
def test_bad_config(kwargs, exc, words):
    base = dict(n_layers=1, d_model=64, n_heads=8, n_kv_heads=2, head_dim=8, vocab_size=11)
    base.update(kwargs)
    with raises_naming(exc, *words):
        ModelConfig(**base)


@pytest.mark.parametrize("tokens, exc, words", [
    (torch.tensor([[1, 2, 200]]), ValueError, ["vocab_size=101"]),
    (torch.tensor([1, 2, 3]), ValueError, ["(batch, seq)"]),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, ["seq >= 1"]),
    (torch.ones(1, 3), TypeError, ["integer"]),
    (torch.ones(1, 65, dtype=torch.long), ValueError, ["max_seq_len=64"]),
])
def test_bad_tokens(tokens, exc, words):
    model = Transformer(tiny(2))
    with raises_naming(exc, *words):
        model(tokens)
