"""Cached == uncached for every head ratio; the cache holds exactly n_kv_heads; generation with padding."""
import pytest
import torch

from mqa_edu.generate import generate, left_pad, sample_next
from mqa_edu.kv_cache import KVCache
from mqa_edu.model import ModelConfig, Transformer
from mqa_edu.sizing import ModelSpec, kv_cache_bytes

RATIOS = [(8, 8), (8, 4), (8, 2), (8, 1), (9, 3), (9, 1)]


def make_model(n_heads, n_kv_heads, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    d_model = 8 * n_heads
    cfg = ModelConfig(n_layers=2, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=8,
                      vocab_size=53, max_seq_len=48)
    return Transformer(cfg, dtype=dtype).eval()


@pytest.mark.parametrize("n_heads, n_kv_heads", RATIOS)
@pytest.mark.parametrize("chunks", [[10, 1, 1, 1, 1], [4, 4, 4, 3], [1] * 15], ids=["prefill+decode", "chunked",
                                                                                    "token-by-token"])
@pytest.mark.parametrize("growing", [False, True], ids=["static", "concat"])
def test_cached_equals_uncached(n_heads, n_kv_heads, chunks, growing):
    model = make_model(n_heads, n_kv_heads)
    tokens = torch.randint(0, 53, (3, sum(chunks)))
    am = torch.ones_like(tokens, dtype=torch.bool)
    am[0, :4] = False  # left padding in row 0
    with torch.no_grad():
        full = model(tokens, am)
        cache = KVCache.for_model(model.cfg, 3, max_len=sum(chunks), dtype=torch.float64, growing=growing)
        parts, s = [], 0
        for c in chunks:
            parts.append(model(tokens[:, s:s + c], am[:, s:s + c], cache=cache))
            s += c
    torch.testing.assert_close(torch.cat(parts, 1)[am], full[am], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("n_heads, n_kv_heads", RATIOS)
def test_cache_holds_only_kv_heads(n_heads, n_kv_heads):
    model = make_model(n_heads, n_kv_heads, dtype=torch.float32)
    cache = KVCache.for_model(model.cfg, batch=3, max_len=40)
    assert cache.layers[0].k.shape == (3, n_kv_heads, 40, 8)
    spec = ModelSpec("m", 2, model.cfg.d_model, n_heads, n_kv_heads, 8)
    assert cache.nbytes == kv_cache_bytes(spec, 40, batch=3, dtype="fp32")
    assert cache.nbytes == kv_cache_bytes(spec, 40, 3, "fp16") * 2


def test_overflow_and_reset():
    model = make_model(8, 2)
    cache = KVCache.for_model(model.cfg, 1, max_len=6, dtype=torch.float64)
    model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_len=6"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)
    assert cache.length == 5  # the failed call wrote nothing
    cache.reset()
    assert cache.length == 0 and int(cache.next_pos[0]) == 0
    model(torch.zeros(1, 6, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_seq_len=48"):
        KVCache.for_model(model.cfg, 1, max_len=49)


def test_cache_mismatch_errors():
    model = make_model(8, 2)
    with pytest.raises(ValueError, match="another model configuration"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=KVCache(2, 1, 8, 10, 8))  # 8 KV heads, model has 2
    with pytest.raises(ValueError, match="batch=2"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=KVCache.for_model(model.cfg, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4))


PROMPTS = [[5, 9, 2, 7, 1, 3, 3], [4], [8, 8, 1], [11, 2, 9, 9, 9]]


@pytest.mark.parametrize("n_heads, n_kv_heads", RATIOS)
def test_batched_rows_equal_alone(n_heads, n_kv_heads):
    model = make_model(n_heads, n_kv_heads, seed=n_kv_heads)
    batched = generate(model, PROMPTS, 12)
    alone = [generate(model, [p], 12)[0] for p in PROMPTS]
    assert batched == alone
    assert generate(model, PROMPTS, 12, use_cache=False) == alone  # and the cache changes nothing
    assert generate(model, PROMPTS, 12, prefill_chunk=2) == alone


def test_extra_left_padding_changes_nothing():
    model = make_model(8, 2)
    tokens, am = left_pad(PROMPTS)
    extra = torch.cat([torch.zeros(4, 5, dtype=torch.long), tokens], 1)
    extra_am = torch.cat([torch.zeros(4, 5, dtype=torch.bool), am], 1)
    with torch.no_grad():
        a = model(tokens, am)[:, -1]
        b = model(extra, extra_am)[:, -1]
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_planted_off_by_one_position_is_caught(monkeypatch):
    """If the decode position were the cache length AFTER the write (a classic bug), cached != uncached."""
    from mqa_edu import kv_cache
    model = make_model(8, 2)
    tokens = torch.randint(0, 53, (1, 9))
    with torch.no_grad():
        full = model(tokens)
    original = kv_cache.KVCache.reserve

    def off_by_one(self, attention_mask):
        start, positions, key_mask = original(self, attention_mask)
        return start, positions + (1 if start > 0 else 0), key_mask

    monkeypatch.setattr(kv_cache.KVCache, "reserve", off_by_one)
    cache = KVCache.for_model(model.cfg, 1, dtype=torch.float64)
    with torch.no_grad():
        parts = [model(tokens[:, :5], cache=cache)] + [model(tokens[:, i:i + 1], cache=cache) for i in range(5, 9)]
    assert not torch.allclose(torch.cat(parts, 1), full, atol=1e-6)


def test_sampling_is_seeded_and_stops():
    model = make_model(8, 1)
    a = generate(model, PROMPTS, 10, temperature=1.0, top_k=5, seed=3)
    assert a == generate(model, PROMPTS, 10, temperature=1.0, top_k=5, seed=3)
    greedy = generate(model, [PROMPTS[0]], 10)[0]
    stop = greedy[3]
    cut = generate(model, [PROMPTS[0]], 10, stop_tokens=[stop])[0]
    assert cut == greedy[: greedy.index(stop) + 1]
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0]])
    for s in range(20):  # top-k=2 never picks outside the two best
        assert sample_next(logits, 1.0, 2, torch.Generator().manual_seed(s)).item() in (1, 3)


@pytest.mark.parametrize("prompts, kwargs, exc, words", [
    ([[1, 2], []], {}, ValueError, ["prompts[1] is empty"]),
    ([], {}, ValueError, ["non-empty"]),
    ([[1, 2.5]], {}, TypeError, ["prompts[0]"]),
    ([list(range(40))], {"max_new_tokens": 10}, ValueError, ["max_seq_len=48"]),
    ([[1]], {"max_new_tokens": -1}, ValueError, ["max_new_tokens"]),
    ([[1]], {"max_new_tokens": 2, "temperature": -1.0}, ValueError, ["temperature"]),
    ([[1]], {"max_new_tokens": 2, "temperature": 1.0, "top_k": 0}, ValueError, ["top_k"]),
])
def test_generate_bad_input(prompts, kwargs, exc, words):
    model = make_model(8, 2)
    kwargs.setdefault("max_new_tokens", 3)
    with pytest.raises(exc) as err:
        generate(model, prompts, **kwargs)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("growing", [False, True], ids=["static", "concat"])
def test_truncate_rolls_back_exactly(growing):
    model = make_model(8, 2)
    tokens, am = left_pad(PROMPTS)
    nxt = torch.randint(0, 53, (4, 3))
    with torch.no_grad():
        cache = KVCache.for_model(model.cfg, 4, max_len=16, dtype=torch.float64, growing=growing)
        model(tokens, am, cache=cache)
        first = model(nxt[:, :1], cache=cache)
        model(nxt[:, 1:], cache=cache)  # two more tokens, then roll them back
        cache.truncate(tokens.shape[1])
        again = model(nxt[:, :1], cache=cache)
    torch.testing.assert_close(again, first, atol=1e-12, rtol=0)
    assert cache.next_pos.tolist() == [len(p) + 1 for p in PROMPTS]
    with pytest.raises(ValueError, match="length must be <="):
        cache.truncate(99)
