"""The compiled static-shape decode step (notebook 12): the same tokens as the eager loop for every head design, one
graph for many calls (a backend that counts what it is asked to compile), and inductor itself with no recompile after
warm-up (slow: inductor compiles C++)."""
import pytest
import torch

from mqa_edu.generate import STATIC_BUCKET, compile_options, compiled_step, generate
from mqa_edu.kv_cache import KVCache
from mqa_edu.model import ModelConfig, Transformer

DESIGNS = {"MHA": {}, "GQA-2": {"n_kv_heads": 2}, "MQA": {"n_kv_heads": 1}, "MQA+CLA2": {"n_kv_heads": 1,
           "kv_share": 2}, "MLA-16": {"kv_lora_rank": 16, "rope_dim": 8}}
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [3, 4], [12]]  # left-padded to 7


class Counting:
    """A torch.compile backend that runs the graph as it is and counts how many graphs it was given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def model(seed=0, n_heads=4, d_model=64, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=3, d_model=d_model, n_heads=n_heads, vocab_size=101, max_seq_len=600, **kw)
    return Transformer(cfg).eval()


@pytest.mark.parametrize("design", DESIGNS)
def test_compiled_tokens_equal_eager_and_one_graph_serves_every_call(design):
    m, backend = model(**DESIGNS[design]), Counting()
    eager = generate(m, PROMPTS, 15)
    assert generate(m, PROMPTS, 15, compile={"backend": backend}) == eager
    assert backend.graphs == 1
    # other prompts, another length and budget, a sampled run: the same batch and one bucket of slots, no new graph
    other = [[1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]]
    assert generate(m, other, 30, compile={"backend": backend}) == generate(m, other, 30)
    assert generate(m, PROMPTS, 10, temperature=0.8, seed=3, compile={"backend": backend}) == \
        generate(m, PROMPTS, 10, temperature=0.8, seed=3)
    assert backend.graphs == 1


def test_gqa_with_an_odd_ratio_and_the_step_logits():
    """9 query heads over 3 KV heads; the static step's logits equal the eager step's, slot by slot."""
    m = model(n_heads=9, d_model=72, n_kv_heads=3)
    prompts = [[5, 6, 7, 8], [9, 10]]
    assert generate(m, prompts, 12, compile={"backend": Counting()}) == generate(m, prompts, 12)
    from mqa_edu.generate import left_pad

    tokens, mask = left_pad(prompts)
    caches = [KVCache.for_model(m.cfg, 2, max_len=32) for _ in range(2)]
    with torch.no_grad():
        for c in caches:
            m(tokens, mask, cache=c, last_only=True)
        nxt = torch.tensor([[3], [4]])
        eager = m(nxt, torch.ones(2, 1, dtype=torch.bool), cache=caches[0], last_only=True)
        start, positions, _ = caches[1].reserve(torch.ones(2, 1, dtype=torch.bool))
        static = m.decode_step(nxt, positions, torch.tensor([start]), caches[1].key_mask, caches[1])
    torch.testing.assert_close(static, eager, atol=1e-5, rtol=1e-5)
    for a, b in zip(caches[0].layers, caches[1].layers):
        torch.testing.assert_close(a.k[:, :, :start + 1], b.k[:, :, :start + 1])


def test_the_bucket_sizes_the_cache_and_a_new_bucket_is_a_new_graph():
    m, backend = model(n_kv_heads=2), Counting()
    generate(m, PROMPTS, 5, compile={"backend": backend})
    assert backend.graphs == 1
    generate(m, PROMPTS, STATIC_BUCKET + 10, compile={"backend": backend})  # 7 + 266 slots: the next bucket
    assert backend.graphs == 2


def test_compile_options_and_bad_values():
    assert compile_options("cuda") == {"mode": "reduce-overhead"} and compile_options("cpu") == {}
    m = model()
    assert compiled_step(m) is compiled_step(m)  # built once per model and options
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="compile must be False, True or a dict"):
            generate(m, PROMPTS, 3, compile=bad)
    with pytest.raises(ValueError, match="static cache"):
        generate(m, PROMPTS, 3, compile=True, growing_cache=True)
    with pytest.raises(ValueError, match="static cache"):
        generate(m, PROMPTS, 3, compile=True, use_cache=False)


def test_a_failing_step_leaves_the_cache_as_it_was(monkeypatch):
    """generate books the step in the cache before the compiled call; if the call raises, the booking is undone."""
    import mqa_edu.generate as gen

    m, made = model(n_kv_heads=2), []
    real = gen.KVCache.for_model
    monkeypatch.setattr(gen.KVCache, "for_model", lambda *a, **k: made.append(real(*a, **k)) or made[-1])

    def broken(gm, example_inputs):
        def run(*args):
            raise RuntimeError("boom")
        return run

    with pytest.raises(RuntimeError, match="boom"):
        generate(m, PROMPTS, 4, compile={"backend": broken})
    cache = made[0]
    assert cache.length == 7 and cache.key_mask[:, 7:].sum() == 0 and cache.next_pos.tolist() == [7, 2, 1]


@pytest.mark.slow
def test_inductor_compiles_once_and_never_again():
    """The real compiler (inductor, C++ on a CPU): after the warm-up call, more calls compile nothing; tokens equal
    the eager loop's."""
    from torch._dynamo.utils import counters

    m = model(n_kv_heads=2)
    eager = generate(m, PROMPTS, 12)
    assert generate(m, PROMPTS, 12, compile=True) == eager  # warm-up: compiles the step
    before = dict(counters["stats"])
    assert generate(m, [[7, 8, 9], [1], [2, 3]], 20, compile=True) != []
    assert generate(m, PROMPTS, 12, compile=True) == eager
    assert dict(counters["stats"]).get("unique_graphs") == before.get("unique_graphs")


def test_bf16_weights_compile_to_the_same_tokens_and_stay_close_to_fp32():
    """Narrower weights (notebook 12): model.to(torch.bfloat16) stores weights and cache in bf16 (norms still
    compute in fp32); the logits stay within bf16's rounding of the fp32 model's. The static step's logits equal the
    eager step's to bf16 rounding, not bit for bit: it reduces over every slot of the cache (the empty ones masked),
    which rounds differently, so at a near-tie the two may pick different tokens."""
    m = model(n_kv_heads=2)
    x = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        ref = m(x)
        m16 = model(n_kv_heads=2).to(torch.bfloat16)
        got = m16(x)
    assert got.dtype == torch.bfloat16
    err = (got.float() - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.05, float(err)
    from mqa_edu.generate import left_pad

    tokens, mask = left_pad(PROMPTS)
    caches = [KVCache.for_model(m16.cfg, 3, max_len=40, dtype=torch.bfloat16) for _ in range(2)]
    with torch.no_grad():
        for c in caches:
            m16(tokens, mask, cache=c, last_only=True)
        nxt, one = torch.tensor([[3], [4], [5]]), torch.ones(3, 1, dtype=torch.bool)
        eager = m16(nxt, one, cache=caches[0], last_only=True).float()
        start, positions, _ = caches[1].reserve(one)
        static = m16.decode_step(nxt, positions, torch.tensor([start]), caches[1].key_mask, caches[1]).float()
    assert (static - eager).abs().max() <= 0.02 * eager.abs().max()
    assert len(generate(m16, PROMPTS, 10, compile={"backend": Counting()})[0]) == 10
