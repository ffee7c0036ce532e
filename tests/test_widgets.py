"""The widgets show their whole labels, and the query stepper shows where the masked future keys are."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

widgets = pytest.importorskip("mqa_edu.widgets")


def labelled(w):
    """Every control of an interactive widget that has a description."""
    return [c for c in w.children if getattr(c, "description", "")]


@pytest.mark.parametrize("make", [lambda: widgets.query_stepper(np.eye(4), list("abcd")),
                                  widgets.head_grouping_explorer, widgets.kv_cache_calculator],
                         ids=["query_stepper", "head_grouping_explorer", "kv_cache_calculator"])
def test_labels_are_not_cut_off(make):
    plt.close("all")
    controls = labelled(make())
    assert controls
    for c in controls:  # the default width cuts "temperature" to "temperat..."
        assert c.style.description_width == "initial", c.description


def test_start_here_slider_has_room_for_its_label():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "00_start_here.ipynb").read_text()
    assert "description_width" in text and 'description=\\"temperature\\"' in text


def test_query_stepper_shades_the_future_keys():
    """The masked keys have zero weight, so bars alone show nothing there: the stepper shades them."""
    weights = np.tril(np.ones((5, 5))) / np.arange(1, 6)[:, None]
    w = widgets.query_stepper(weights, list("abcde"))
    plt.close("all")
    w.children[0].value = 1  # query 1: keys 2, 3 and 4 are its future
    ax = plt.gcf().axes[0]
    spans = [(p.get_x(), p.get_width()) for p in ax.patches if p.get_width() > 1]  # the bars are 0.8 wide
    assert spans == [(1.5, 3.0)]
    assert "future" in ax.get_legend().get_texts()[0].get_text()
