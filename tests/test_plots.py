"""The shape diagrams are drawn from the course's own definitions: the links of the sharing diagrams are
heads.head_mapping, and the cache diagram's slots and positions are what the model's KVCache does."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mqa_edu import plots  # noqa: E402
from mqa_edu.heads import head_mapping  # noqa: E402


@pytest.mark.parametrize("n_heads, kv_options", [(8, (8, 2, 1)), (9, (9, 3, 1)), (12, (4,))])
def test_sharing_diagram_links_each_query_head_to_its_kv_head(n_heads, kv_options):
    fig = plots.sharing_diagram(n_heads, kv_options)
    for ax, n_kv in zip(fig.axes, kv_options):
        links = sorted(line.get_gid() for line in ax.lines if (line.get_gid() or "").startswith("link"))
        assert links == sorted(f"link {h}->{kv}" for h, kv in enumerate(head_mapping(n_heads, n_kv)))
        assert f"2 x {n_kv} x 128" in " ".join(t.get_text() for t in ax.texts)
    plt.close(fig)


def test_cache_slots_match_the_model_cache():
    from mqa_edu.generate import left_pad
    from mqa_edu.kv_cache import KVCache
    from mqa_edu.model import ModelConfig, Transformer
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=4, n_kv_heads=2, vocab_size=20, max_seq_len=16)
    model = Transformer(cfg)
    tok, am = left_pad([[5, 6, 7, 8, 9], [3, 4], [1, 2, 3]])
    cache = KVCache.for_model(cfg, batch=3, max_len=12)
    with torch.no_grad():
        model(tok, am, cache=cache)
        for _ in range(2):  # two decode steps, as generate takes them
            model(torch.ones(3, 1, dtype=torch.long), torch.ones(3, 1, dtype=torch.long), cache=cache)
    states, positions = plots.cache_slots(am, 12, decoded=2)
    assert states.shape == (3, 12)
    assert (states[:, :5] == np.where(am.numpy() == 1, 2, 1)).all() and (states[:, 5:7] == 3).all()
    assert (states[:, 7:] == 0).all()
    # the next token's rotary position in the drawing is the one the cache will give it
    assert [int(positions[r, 6]) + 1 for r in range(3)] == cache.next_pos.tolist()
    fig = plots.cache_slots_diagram(am, 12, decoded=2)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="max_len"):
        plots.cache_slots(am, 6, decoded=2)


def test_split_merge_and_grouped_diagrams_draw_every_element():
    fig = plots.split_merge_diagram(seq=3, n_heads=2, head_dim=3)
    assert len(fig.axes[0].patches) == 3 * 3 * 6  # the same 18 numbers in each of the three layouts
    plt.close(fig)
    fig = plots.grouped_vs_repeat_diagram(8, 2)
    left, right = fig.axes
    copies = [t for t in left.texts if t.get_text().startswith("copy of")]
    assert [t.get_text() for t in copies] == [f"copy of {kv}" for kv in head_mapping(8, 2)]
    assert sum(t.get_text().startswith("kv") for t in right.texts) == 2
    plt.close(fig)
