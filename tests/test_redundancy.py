"""Head-redundancy measures on inputs with known answers, against SciPy (JS) and a kernel-form CKA."""
import math

import numpy as np
import pytest
import torch

from mqa_edu.numpy_attention import causal_mask, softmax
from mqa_edu.redundancy import js_divergence, linear_cka, map_cosine, pairwise
from tests.conftest import raises_naming

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
