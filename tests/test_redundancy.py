"""Head-redundancy measures on inputs with known answers, against SciPy (JS) and a kernel-form CKA."""
import math

import numpy as np
import pytest
import torch

from mqa_edu.numpy_attention import causal_mask, softmax
from mqa_edu.redundancy import js_divergence, linear_cka, map_cosine, pairwise
from tests.helpers import raises_naming

scipy_distance = pytest.importorskip("scipy.spatial.distance")


def random_maps(n_maps=3, t=7, seed=0, causal=True):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_maps, t, t)) * 2
    if causal:
        scores = np.where(causal_mask(t), scores, -np.inf)
    return torch.tensor(softmax(scores))


def test_js_matches_scipy_row_by_row_with_masked_keys():
    a, b = random_maps(2, 9, seed=1)  # causal: most rows have exact zeros (0 * log 0)
    ours = js_divergence(a, b)
    theirs = np.mean([scipy_distance.jensenshannon(a[i].numpy(), b[i].numpy()) ** 2 for i in range(9)])
    assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-12)


def test_js_known_answers():
    a, b = random_maps(2, 6, seed=2)
    assert js_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(a, b) == pytest.approx(js_divergence(b, a), rel=1e-12)  # symmetric
    one_hot = torch.eye(4)
    assert js_divergence(one_hot, one_hot.roll(1, dims=1)) == pytest.approx(math.log(2))  # the bound, reached
    for seed in range(5):
        x, y = random_maps(2, 8, seed=seed, causal=False)
        assert 0 <= js_divergence(x, y) <= math.log(2)


def test_js_leaves_out_padded_rows():
    a, b = random_maps(2, 5, seed=3)
    a[0], b[0] = 0, 0  # a padded query: its row is all zeros
    mask = torch.tensor([False, True, True, True, True])
    assert js_divergence(a, b, mask) == pytest.approx(js_divergence(a[1:], b[1:]))
    with raises_naming(ValueError, "distribution", "row_mask"):
        js_divergence(a, b)  # the zero row is not a distribution
    with raises_naming(ValueError, "masks every row"):
        js_divergence(a, b, torch.zeros(5, dtype=torch.bool))
    with raises_naming(ValueError, "same shape"):
        js_divergence(a, b[:3])


def test_normalising_before_masking_is_caught():
    """A learner bug: softmax over all keys, then zero the future: rows no longer sum to 1."""
    rng = np.random.default_rng(4)
    wrong = torch.tensor(softmax(rng.normal(size=(6, 6))) * causal_mask(6))
    with raises_naming(ValueError, "normalise after masking"):
        js_divergence(wrong, random_maps(1, 6)[0])


def test_map_cosine():
    a, b = random_maps(2, 6, seed=5)
    assert map_cosine(a, a) == pytest.approx(1.0)
    assert 0 < map_cosine(a, b) < 1


def kernel_cka(x, y):
    """CKA in its HSIC form (Gram matrices, centring matrix): another derivation to compare with."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_known_answers_and_invariances():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 8))
    y = rng.normal(size=(50, 5))
    assert linear_cka(torch.tensor(x), torch.tensor(y)) == pytest.approx(kernel_cka(x, y), rel=1e-9)
    assert linear_cka(torch.tensor(x), torch.tensor(x)) == pytest.approx(1.0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))  # a rotation, a scale and a shift change nothing
    assert linear_cka(torch.tensor(x), torch.tensor(3.0 * x @ q + 1.5)) == pytest.approx(1.0)
    assert linear_cka(torch.tensor(x), torch.tensor(y)) < 0.4
    with raises_naming(ValueError, "same n >= 2"):
        linear_cka(torch.tensor(x), torch.tensor(y[:10]))
    with raises_naming(ValueError, "constant"):
        linear_cka(torch.tensor(x), torch.ones(50, 3))


def test_pairwise_matrix_of_heads():
    maps = random_maps(4, 6, seed=7)
    d = pairwise(maps, js_divergence)
    assert d.shape == (4, 4) and torch.allclose(d, d.T) and torch.all(d.diagonal().abs() < 1e-12)


# --- inside a model: attention maps, per-head tensors, importance -------------------------------------------------
from mqa_edu.model import ModelConfig, Transformer  # noqa: E402
from mqa_edu.redundancy import ablation_importance, head_gates, head_internals, head_similarity, michel_importance  # noqa: E402


def small_model(n_kv_heads, seed=0):
    torch.manual_seed(seed)
    return Transformer(ModelConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=50,
                                   max_seq_len=16)).eval()


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_attention_maps_match_transformers(n_kv_heads):
    from mqa_edu.convert import to_hf_llama

    model = small_model(n_kv_heads)
    tokens = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(3))
    inside = head_internals(model, tokens)
    hf = to_hf_llama(model)
    hf.set_attn_implementation("eager")  # the implementation that can return its weights
    with torch.no_grad():
        theirs = hf(tokens, output_attentions=True).attentions
    for ours, ref in zip(inside, theirs):
        torch.testing.assert_close(ours["weights"].float(), ref, atol=1e-5, rtol=1e-4)
        assert ours["keys"].shape == (2, n_kv_heads, 9, 8) and ours["outputs"].shape == (2, 4, 9, 8)


def test_per_head_outputs_rebuild_the_attention_output():
    model = small_model(2)
    tokens = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(4))
    got = {}
    hook = model.layers[1].self_attn.register_forward_hook(lambda m, a, out: got.setdefault("y", out))
    model(tokens)
    hook.remove()
    out = head_internals(model, tokens)[1]["outputs"]
    rebuilt = model.layers[1].self_attn.merge(out.float())
    torch.testing.assert_close(rebuilt, got["y"], atol=1e-5, rtol=1e-4)


def test_head_similarity_of_a_model_with_shared_kv_heads():
    model = small_model(1)
    inside = head_internals(model, torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(5)))
    js = head_similarity(inside, "weights", "js")
    assert js.shape == (2, 4, 4) and torch.all(js.diagonal(dim1=1, dim2=2) == 0) and (js <= math.log(2)).all()
    cka = head_similarity(inside, "keys", "cka")
    assert cka.shape == (2, 1, 1) and torch.allclose(cka, torch.ones_like(cka))
    with raises_naming(ValueError, "measure for 'keys' must be one of", "cka"):
        head_similarity(inside, "keys", "js")
    with raises_naming(ValueError, "what must be one of"):
        head_similarity(inside, "queries")


def test_gates_ablate_exactly_one_head():
    model = small_model(2)
    tokens = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        base = model(tokens)
        with head_gates(model):
            assert torch.equal(model(tokens), base)
        gates = torch.ones(2, 4)
        gates[1, 2] = 0
        with head_gates(model, gates):
            gated = model(tokens)
        model.layers[1].self_attn.o_proj.weight[:, 16:24] = 0  # head 2's slice of the output projection
        torch.testing.assert_close(gated, model(tokens))
    assert torch.equal(small_model(2)(tokens), base)  # hooks gone after the block
    with raises_naming(ValueError, "gates must have shape (n_layers, n_heads) = (2, 4)"):
        head_gates(model, torch.ones(4, 2))


def test_importance_scores():
    model = small_model(4)
    g = torch.Generator().manual_seed(7)
    batches = [(torch.randint(0, 50, (1, 9), generator=g), torch.randint(0, 50, (1, 9), generator=g))]
    abl = ablation_importance(model, batches)
    assert abl.shape == (2, 4) and abl.abs().sum() > 0
    raw = michel_importance(model, batches, normalize=False)
    # |dL/dgate| by central finite differences, one head
    def loss_at(v):  # in float64 throughout (loss_on itself works in float32)
        gates = torch.ones(2, 4, dtype=torch.float64)
        gates[0, 1] = v
        x, y = batches[0]
        with torch.no_grad(), head_gates(model.double(), gates):
            return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    fd = abs(loss_at(1 + 1e-3) - loss_at(1 - 1e-3)) / 2e-3  # RMSNorm works in float32: not too small a step
    model.float()
    assert raw[0, 1].item() == pytest.approx(fd, rel=2e-2)
    assert raw.min() < raw.max() / 10  # heads really differ: the check is not against a constant
    # per sequence: two copies of one sequence score as that sequence; |.| is taken per sequence, not per batch
    x, y = batches[0]
    two = michel_importance(model, [(torch.cat([x, x]), torch.cat([y, y]))], normalize=False)
    torch.testing.assert_close(two, raw)
    norm = michel_importance(model, batches)
    assert torch.allclose(norm.norm(dim=1), torch.ones(2, dtype=torch.float64))
    with raises_naming(ValueError, "batches is empty"):
        michel_importance(model, [])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_js_divergence_accepts_half_precision_maps(dtype):
    """Maps from an fp16 model or autocast: their rows sum to 1 only up to the dtype's rounding (about 3e-4 in fp16,
    2.5e-3 in bf16). They are cast to float64 and checked with a tolerance set by their dtype."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 64, 64, generator=g, dtype=torch.float64)
    mask = torch.tril(torch.ones(64, 64, dtype=torch.bool))
    p64 = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    q64 = torch.softmax((scores + 0.3 * torch.randn(2, 64, 64, generator=g, dtype=torch.float64))
                        .masked_fill(~mask, float("-inf")), -1)
    p, q = p64.to(dtype), q64.to(dtype)
    off = (p.double().sum(-1) - 1).abs().max().item()
    assert off > 1e-4  # the old fixed tolerance refused these maps
    exact = js_divergence(p64, q64)
    assert js_divergence(p, q) == pytest.approx(exact, abs=20 * torch.finfo(dtype).eps)
    with pytest.raises(ValueError, match="must be a distribution"):  # a map that is no distribution is still refused
        js_divergence(p * 1.1, q)
