"""MHA -> GQA/MQA conversion (notebook 09): pooling, permutations and groupings, checked on models whose answer is
known by construction."""
import pytest
import torch

from mqa_edu.convert import (
    contiguous_groups,
    inverse_permutation,
    permute_heads,
    repeat_kv_heads,
    similarity_groups,
    to_grouped,
)
from mqa_edu.model import ModelConfig, Transformer
from tests.helpers import raises_naming

TOKENS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))


def model(n_heads=8, n_kv_heads=None, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=kw.pop("head_dim", 4),
                      vocab_size=64, max_seq_len=32, **kw)
    return Transformer(cfg, dtype=torch.float64).eval()


@pytest.mark.parametrize("n_heads,n_kv_heads", [(8, 8), (8, 4), (8, 2), (8, 1), (9, 3), (6, 1)])
def test_mean_pooling_heads_equal_within_groups_gives_the_same_logits(n_heads, n_kv_heads):
    gqa = model(n_heads, n_kv_heads)
    mha = repeat_kv_heads(gqa)  # every head of a group now has the same K/V weights
    assert mha.cfg.n_kv_heads == n_heads
    torch.testing.assert_close(mha(TOKENS), gqa(TOKENS), rtol=0, atol=1e-12)
    back = to_grouped(mha, n_kv_heads, "mean")
    assert back.cfg.n_kv_heads == n_kv_heads
    torch.testing.assert_close(back(TOKENS), gqa(TOKENS), rtol=0, atol=1e-12)
    first = to_grouped(mha, n_kv_heads, "first")
    torch.testing.assert_close(first(TOKENS), gqa(TOKENS), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_conversion_to_n_heads_is_the_identity(pooling):
    mha = model()
    same = to_grouped(mha, 8, pooling)
    for (n, a), (_, b) in zip(mha.state_dict().items(), same.state_dict().items()):
        assert torch.equal(a, b), n
    assert torch.equal(same(TOKENS), mha(TOKENS))


def test_pooling_really_changes_a_model_whose_heads_differ():
    mha = model()
    mean, first, rand = (to_grouped(mha, 2, p) for p in ("mean", "first", "random"))
    for m in (mean, first, rand):
        assert not torch.allclose(m(TOKENS), mha(TOKENS), atol=1e-6)
    k = mha.layers[0].self_attn.k_proj.weight.reshape(2, 4, 4, 32)  # (kv, group, head_dim, d_model)
    torch.testing.assert_close(mean.layers[0].self_attn.k_proj.weight, k.mean(1).reshape(8, 32))
    torch.testing.assert_close(first.layers[0].self_attn.k_proj.weight, k[:, 0].reshape(8, 32))
    assert torch.equal(mean.layers[1].self_attn.q_proj.weight, mha.layers[1].self_attn.q_proj.weight)
    assert torch.equal(to_grouped(mha, 2, "random", seed=3).layers[0].self_attn.k_proj.weight,
                       to_grouped(mha, 2, "random", seed=3).layers[0].self_attn.k_proj.weight)


def test_permuting_heads_keeps_the_model_and_its_inverse_restores_the_weights():
    mha = model()
    g = torch.Generator().manual_seed(1)
    perms = [torch.randperm(8, generator=g).tolist() for _ in range(2)]
    permuted = permute_heads(mha, perms)
    assert not torch.equal(permuted.layers[0].self_attn.q_proj.weight, mha.layers[0].self_attn.q_proj.weight)
    torch.testing.assert_close(permuted(TOKENS), mha(TOKENS), rtol=0, atol=1e-12)  # only the sum order changes
    back = permute_heads(permuted, [inverse_permutation(p) for p in perms])
    for (n, a), (_, b) in zip(mha.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), n
    assert torch.equal(back(TOKENS), mha(TOKENS))


def test_a_grouping_is_a_permutation_then_contiguous_pooling():
    mha = model()
    groups = [[0, 5], [1, 2], [3, 7], [4, 6]]
    direct = to_grouped(mha, 4, "mean", groups)
    by_hand = to_grouped(permute_heads(mha, [[0, 5, 1, 2, 3, 7, 4, 6]] * 2), 4, "mean")
    torch.testing.assert_close(direct(TOKENS), by_hand(TOKENS), rtol=0, atol=0)
    # the query heads of a group really share the pooled K/V: heads 0 and 5 equal within their group
    gqa = model(8, 4, seed=5)
    mha2 = permute_heads(repeat_kv_heads(gqa), [[0, 2, 4, 6, 1, 3, 5, 7]] * 2)  # group j now at heads {j, j+4}...
    regrouped = to_grouped(mha2, 4, "mean", [[0, 4], [1, 5], [2, 6], [3, 7]])
    torch.testing.assert_close(regrouped(TOKENS), gqa(TOKENS), rtol=0, atol=1e-12)


def test_similarity_groups_find_planted_groups():
    planted = [[0, 3, 5, 6], [1, 2, 4, 7]]
    sim = torch.full((8, 8), 0.1)
    for grp in planted:
        for a in grp:
            for b in grp:
                sim[a, b] = 0.9
    assert similarity_groups(sim, 2) == planted
    assert similarity_groups(sim, 8) == [[h] for h in range(8)]
    assert similarity_groups(sim, 1) == [list(range(8))]
    assert contiguous_groups(8, 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_bad_groups_and_counts_are_named():
    mha = model()
    with raises_naming(ValueError, "n_kv_heads must divide n_heads=8", "[1, 2, 4, 8]"):
        to_grouped(mha, 3)
    with raises_naming(ValueError, "pooling must be one of", "'mean'"):
        to_grouped(mha, 2, "median")
    with raises_naming(ValueError, "every head 0..7 exactly once"):
        to_grouped(mha, 2, "mean", [[0, 1, 2, 3], [3, 4, 5, 6]])
    with raises_naming(ValueError, "group_size=4"):
        to_grouped(mha, 2, "mean", [[0, 1, 2], [3, 4, 5, 6, 7]])
    with raises_naming(ValueError, "needs a multi-head model", "repeat_kv_heads"):
        to_grouped(model(8, 2), 1)
    with raises_naming(ValueError, "n_kv_heads must divide n_heads=8"):
        similarity_groups(torch.eye(8), 5)


def test_pooling_layers_in_place_equals_the_converted_model_and_restores_exactly():
    from mqa_edu.convert import pooled_kv_layers

    gqa = model(8, 4, seed=2)
    before = {k: v.clone() for k, v in gqa.state_dict().items()}
    with pooled_kv_layers(gqa, range(2), n_kv_heads=1):
        pooled = gqa(TOKENS)
    mqa = to_grouped(repeat_kv_heads(gqa), 1, "mean")  # the real conversion, with one K/V head
    torch.testing.assert_close(pooled, mqa(TOKENS), rtol=0, atol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in gqa.state_dict().items())
    with pooled_kv_layers(gqa, [1], n_kv_heads=2):  # one layer only: layer 0 untouched
        assert torch.equal(gqa.layers[0].self_attn.k_proj.weight, before["layers.0.self_attn.k_proj.weight"])
        assert not torch.equal(gqa.layers[1].self_attn.k_proj.weight, before["layers.1.self_attn.k_proj.weight"])
    with raises_naming(ValueError, "layers must be in 0..1"):
        pooled_kv_layers(gqa, [2])
    with raises_naming(ValueError, "n_kv_heads must divide the model's n_kv_heads=4", "[1, 2, 4]"):
        pooled_kv_layers(gqa, [0], n_kv_heads=3)


def test_similarity_groups_are_exact_where_every_grouping_can_be_tried():
    """8 heads: 35 ways to halve them, 105 to pair them. similarity_groups tries every one and returns the optimum
    (the greedy seeding with swaps it used before was suboptimal on some random matrices); beyond 10,000 groupings
    it says it is greedy."""
    from mqa_edu.convert import equal_groupings, n_groupings
    assert (n_groupings(8, 2), n_groupings(8, 4), n_groupings(9, 3), n_groupings(16, 4)) == (35, 105, 280, 2627625)
    assert len(set(equal_groupings(8, 4))) == 105 and len(equal_groupings(9, 3)) == 280
    g = torch.Generator().manual_seed(3)

    def total(s, groups):
        return sum(s[a, b].item() for grp in groups for a in grp for b in grp if a < b)

    for _ in range(40):
        s = torch.rand(8, 8, generator=g, dtype=torch.float64)
        s = 0.5 * (s + s.T)
        for kv in (2, 4):
            found = similarity_groups(s, kv)
            assert found.method == "exhaustive"
            assert total(s, found) == pytest.approx(max(total(s, c) for c in equal_groupings(8, kv)))
    big = similarity_groups(torch.rand(16, 16, generator=g), 4)
    assert big.method == "greedy+swaps" and sorted(h for grp in big for h in grp) == list(range(16))
