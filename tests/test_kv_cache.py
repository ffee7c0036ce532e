"""Cached == uncached for every head ratio; the cache holds exactly n_kv_heads; low-precision storage; a rejected
call leaves the cache untouched."""
import pytest
import torch

from mqa_edu.generate import left_pad
from mqa_edu.heads import kv_cache_elements
from mqa_edu.kv_cache import KVCache
from mqa_edu.sizing import ModelSpec, kv_cache_bytes
from tests.helpers import PROMPTS, RATIOS, make_model, raises_naming


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


# ---------------------------------------------------------------- a cache narrower than the model
@pytest.mark.parametrize("cache_dtype, tol", [(torch.float32, 1e-6), (torch.bfloat16, 5e-2), (torch.float16, 5e-3),
                                              (torch.float8_e4m3fn, 3e-1)], ids=str)
@pytest.mark.parametrize("growing", [False, True], ids=["static", "concat"])
def test_low_precision_cache_is_cast_on_write_and_read_back(cache_dtype, tol, growing):
    model = make_model(8, 2, dtype=torch.float32)
    tokens = torch.randint(0, 53, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache.for_model(model.cfg, 2, max_len=9, dtype=cache_dtype, growing=growing)
        parts = [model(tokens[:, :5], cache=cache)] + [model(tokens[:, i:i + 1], cache=cache) for i in range(5, 9)]
    cached = torch.cat(parts, 1)
    assert cached.dtype == torch.float32 and cache.layers[0].k.dtype == cache_dtype
    err = (cached - full).abs().max().item()
    assert err < tol, err
    if cache_dtype != torch.float32:
        assert err > 0  # the cache really is stored narrower
    assert cache.nbytes == kv_cache_elements(2, 8, tokens=9, batch=2, n_layers=2) * cache_dtype.itemsize


def test_cache_bytes_shrink_with_the_storage_dtype():
    cfg = make_model(8, 2).cfg
    sizes = {d: KVCache.for_model(cfg, 4, max_len=32, dtype=d).nbytes
             for d in (torch.float32, torch.float16, torch.float8_e4m3fn)}
    assert sizes[torch.float32] == 2 * sizes[torch.float16] == 4 * sizes[torch.float8_e4m3fn]


def test_fp8_saturates_instead_of_nan():
    from mqa_edu.kv_cache import LayerKVCache
    cache = LayerKVCache(1, 1, 4, 2, dtype=torch.float8_e4m3fn)
    k, _ = cache.update(0, torch.tensor([[[[1e4, -1e4]]]]), torch.zeros(1, 1, 1, 2))
    assert k.tolist() == [[[[448.0, -448.0]]]]


def test_cache_dtype_must_be_a_float_storage_type():
    with raises_naming(ValueError, "dtype must be one of", "torch.float16"):
        KVCache(1, 1, 1, 4, 8, dtype=torch.int8)


# ---------------------------------------------------------------- a rejected call leaves the cache untouched
def snapshot(cache):
    return (cache.length, cache.has_padding, cache.next_pos.clone(), cache.key_mask.clone(),
            [(lc.k.clone(), lc.v.clone()) for lc in cache.layers])


def assert_same(a, b):
    assert a[:2] == b[:2]
    for x, y in zip(a[2:4], b[2:4]):
        assert torch.equal(x, y)
    for (k1, v1), (k2, v2) in zip(a[4], b[4]):
        assert torch.equal(k1, k2) and torch.equal(v1, v2)


@pytest.mark.parametrize("call, exc, words", [
    (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), cache=c), ValueError, ["batch=2"]),
    (lambda m, c: m(torch.zeros(2, 5, dtype=torch.long), cache=c), ValueError, ["overflow", "max_len=8"]),
    (lambda m, c: m(torch.full((2, 1), 99), cache=c), ValueError, ["vocab_size=53"]),
    (lambda m, c: m(torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool), cache=c), ValueError,
     ["attention_mask"]),
    (lambda m, c: m(torch.zeros(2, 1, dtype=torch.long), torch.full((2, 1), 0.5), cache=c), TypeError,
     ["attention_mask"]),
    (lambda m, c: make_model(8, 4)(torch.zeros(2, 1, dtype=torch.long), cache=c), ValueError,
     ["another model configuration", "n_kv_heads=2"]),
], ids=["batch", "overflow", "token id", "mask shape", "mask dtype", "other model"])
def test_rejected_call_leaves_the_cache_untouched(call, exc, words):
    model = make_model(8, 2)
    cache = KVCache.for_model(model.cfg, 2, max_len=8, dtype=torch.float64)
    tokens, am = torch.randint(0, 53, (2, 4)), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        model(tokens, am, cache=cache)
        before = snapshot(cache)
        with raises_naming(exc, *words):
            call(model, cache)
    assert_same(snapshot(cache), before)


def test_failure_inside_the_forward_rolls_the_cache_back(monkeypatch):
    """Whatever fails after the slots were claimed (here: the third layer), the bookkeeping is restored, and the
    next call gives exactly what it would have given."""
    model = make_model(8, 2)
    cache = KVCache.for_model(model.cfg, 1, max_len=8, dtype=torch.float64)
    tokens = torch.randint(0, 53, (1, 6))
    with torch.no_grad():
        model(tokens[:, :4], cache=cache)
        expected = model(tokens[:, 4:5], cache=cache)
        cache.truncate(4)
        before = snapshot(cache)
        monkeypatch.setattr(model.layers[1].mlp, "forward", lambda x: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            model(tokens[:, 4:5], cache=cache)
        assert (cache.length, cache.next_pos.tolist()) == (before[0], before[2].tolist())
        monkeypatch.undo()
        torch.testing.assert_close(model(tokens[:, 4:5], cache=cache), expected, atol=0, rtol=0)


def test_cache_on_another_device_is_refused_before_anything_moves():
    model = make_model(8, 2)
    cache = KVCache.for_model(model.cfg, 1, max_len=8, dtype=torch.float64, device="meta")
    with raises_naming(ValueError, "cache is on meta", "device="):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)
    assert cache.length == 0


@pytest.mark.parametrize("n_heads, n_kv_heads", [(8, 8), (8, 2), (9, 3), (8, 1)])
def test_model_and_cache_create_no_tensor_off_their_device(n_heads, n_kv_heads):
    """A padded, cached prefill and a decode step with the default device switched to meta: any tensor the code
    creates without device= lands on meta, meets the model's CPU tensors and raises, as a CPU tensor would raise
    against CUDA ones on a GPU."""
    model = make_model(n_heads, n_kv_heads, dtype=torch.float32)
    cache = KVCache.for_model(model.cfg, 2, max_len=12, dtype=torch.bfloat16)
    tokens, am = torch.randint(0, 53, (2, 5)), torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        expected = torch.cat([model(tokens, am, cache=cache), model(tokens[:, :1], cache=cache)], 1)
        cache.reset()
        with torch.device("meta"):
            out = torch.cat([model(tokens, am, cache=cache), model(tokens[:, :1], cache=cache)], 1)
            uncached = model(tokens, am)
    assert out.device.type == "cpu" and uncached.device.type == "cpu"
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


@pytest.mark.parametrize("padded", [True, False])
def test_next_step_mask_is_the_mask_the_model_builds(monkeypatch, padded):
    """Notebook 05 draws model.next_step_mask: it must be exactly what the model uses at the next decode step,
    the new token's own slot included (the figure used to leave it out)."""
    from mqa_edu import model as model_module
    from mqa_edu.model import next_step_mask
    model = make_model(8, 2)
    tokens, am = left_pad(PROMPTS) if padded else (torch.randint(0, 53, (4, 6)), torch.ones(4, 6, dtype=torch.bool))
    cache = KVCache.for_model(model.cfg, 4, max_len=16, dtype=torch.float64)
    with torch.no_grad():
        model(tokens, am, cache=cache)
    drawn = next_step_mask(cache)
    assert cache.length == tokens.shape[1]  # drawing it moved nothing
    assert drawn[:, 0, 0, cache.length].all()  # the new token reads its own slot
    built = []
    real = model_module.make_mask
    monkeypatch.setattr(model_module, "make_mask", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    with torch.no_grad():
        model(torch.randint(0, 53, (4, 1)), cache=cache)
    if padded:
        assert len(built) == 1 and torch.equal(built[0], drawn)
    else:  # no padding: the model needs no mask at all, as every slot is visible
        assert built == [] and drawn.all()
