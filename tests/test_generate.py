"""Generation (generate.py): left padding, batched == alone, sampling, stop tokens, low-precision caches, and the
GPU path (fused SDPA layout, devices) run on a CPU."""
import pytest
import torch

from mqa_edu.generate import generate, left_pad, sample_next
from tests.helpers import PROMPTS, RATIOS, make_model, raises_naming


def test_left_pad():
    tokens, mask = left_pad([[1, 2, 3], [4]], pad_id=9)
    assert tokens.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert mask.tolist() == [[True, True, True], [False, False, True]]
    assert left_pad([5, 6])[0].tolist() == [[5, 6]]  # one prompt as a flat list




@pytest.mark.parametrize("n_heads, n_kv_heads", RATIOS)
def test_batched_rows_equal_alone(n_heads, n_kv_heads):
    model = make_model(n_heads, n_kv_heads, seed=n_kv_heads)
    batched = generate(model, PROMPTS, 12)
    alone = [generate(model, [p], 12)[0] for p in PROMPTS]
    assert batched == alone
    assert generate(model, PROMPTS, 12, use_cache=False) == alone  # and the cache changes nothing
    assert generate(model, PROMPTS, 12, prefill_chunk=2) == alone


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
    with raises_naming(exc, *words):
        generate(model, prompts, **kwargs)




@pytest.mark.parametrize("n_heads, n_kv_heads", [(8, 4), (9, 3), (8, 1)])
def test_generation_under_fused_sdpa_layout(n_heads, n_kv_heads, cuda_like_sdpa):
    """The GPU failure of notebook 05 and generate(): with SDPA returning the fused kernels' layout, generation at
    GQA ratios still runs and still gives each row what it gives alone."""
    model = make_model(n_heads, n_kv_heads, dtype=torch.float32, seed=n_kv_heads)
    batched = generate(model, PROMPTS, 6, prefill_chunk=3)
    assert batched == [generate(model, [p], 6)[0] for p in PROMPTS]


@pytest.mark.parametrize("cache_dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn], ids=str)
def test_generate_with_a_narrower_cache(cache_dtype):
    """generate(cache_dtype=torch.float16) used to raise "q, k, v must share one dtype" for any dtype but the
    model's."""
    model = make_model(8, 2, dtype=torch.float32)
    out = generate(model, PROMPTS, 5, cache_dtype=cache_dtype)
    assert [len(o) for o in out] == [5] * len(PROMPTS)
    if cache_dtype != torch.float8_e4m3fn:  # 16-bit K/V: greedy tokens of this small model do not change
        assert out == generate(model, PROMPTS, 5)


def test_generate_fp16_model():
    """fp16 weights (the GPU branch's dtype) run on the CPU too."""
    model = make_model(8, 2, dtype=torch.float16)
    assert [len(o) for o in generate(model, PROMPTS, 4)] == [4] * len(PROMPTS)
