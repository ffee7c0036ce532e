"""The training data: the shipped novels, byte tokens, whole-novel validation, seeded batches, the recall task."""
import pytest
import torch

from mqa_edu.data import IGNORE, NOVELS, TEXT_DIR, RecallTask, austen_splits, decode, encode, load_novel, text_batch
from tests.helpers import raises_naming


def test_the_novels_ship_with_their_provenance():
    assert (TEXT_DIR / "PROVENANCE.md").is_file()
    for n in NOVELS:
        text = load_novel(n)
        assert len(text) > 400_000 and "Austen" in text[:200]


def test_bytes_round_trip():
    text = "Miss Bennet's \u00e9clat \u2014 “quoted”"
    ids = encode(text)
    assert ids.dtype == torch.long and int(ids.max()) < 256 and decode(ids) == text


def test_validation_holds_out_whole_novels():
    s = austen_splits(val_novels=("persuasion",))
    assert "persuasion" not in s.train_novels and s.val_novels == ("persuasion",)
    val_text = decode(s.val[:2000])
    sample = val_text[1000:1100]
    assert sample not in decode(s.train)  # a passage of the held-out novel is nowhere in the training text
    with raises_naming(ValueError, "val_novels is empty"):
        austen_splits(val_novels=())
    with raises_naming(ValueError, "both splits"):
        austen_splits(val_novels=("emma",), train_novels=("emma",))
    with raises_naming(ValueError, "novels must be from"):
        austen_splits(val_novels=("ulysses",))


def test_batches_are_reproducible_and_shifted():
    s = austen_splits(max_bytes=50_000)
    a = text_batch(s.train, 4, 32, torch.Generator().manual_seed(7))
    b = text_batch(s.train, 4, 32, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    x, y = a
    assert x.shape == y.shape == (4, 32) and torch.equal(x[:, 1:], y[:, :-1])
    with raises_naming(ValueError, "too few for seq_len=100"):
        text_batch(torch.arange(50), 2, 100, torch.Generator())


def test_recall_task_is_deterministic_and_answerable():
    task = RecallTask(n_pairs=6, n_queries=3, n_keys=20, n_values=10)
    a = task.batch(5, torch.Generator().manual_seed(3))
    b = task.batch(5, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    x, y = a
    assert x.shape == y.shape == (5, task.seq_len) and int(x.max()) < task.vocab_size
    for row in range(5):  # every scored target is the value the same key had among the pairs
        pairs = {int(x[row, 2 * i]): int(x[row, 2 * i + 1]) for i in range(task.n_pairs)}
        scored = (y[row] != IGNORE).nonzero().flatten().tolist()
        assert len(scored) == task.n_queries
        for pos in scored:
            assert pairs[int(x[row, pos])] == int(y[row, pos])


def test_recall_with_one_token_per_pair():
    task = RecallTask(n_pairs=6, n_queries=4, n_keys=20, n_values=10, pair_tokens=True)
    x, y = task.batch(5, torch.Generator().manual_seed(4))
    assert torch.equal(x, task.batch(5, torch.Generator().manual_seed(4))[0])
    assert x.shape == y.shape == (5, 10) == (5, task.seq_len) and task.vocab_size == 20 * 10 + 20 + 10
    assert int(x.max()) < 20 * 10 + 20 and int(y.max()) < task.vocab_size
    for row in range(5):
        pairs = {int(t) // 10: int(t) % 10 for t in x[row, :6]}
        assert len(pairs) == 6  # keys are distinct
        assert (y[row, :6] == IGNORE).all()
        for pos in range(6, 10):
            key, answer = int(x[row, pos]) - 200, int(y[row, pos]) - 220
            assert pairs[key] == answer


@pytest.mark.parametrize("kwargs, words", [({"n_pairs": 30, "n_keys": 20}, ["n_pairs=30", "n_keys=20"]),
                                           ({"n_queries": 9, "n_pairs": 4}, ["n_queries", "n_pairs=4"]),
                                           ({"n_keys": 0}, ["n_keys"])])
def test_recall_task_bad_input(kwargs, words):
    with raises_naming(ValueError, *words):
        RecallTask(**kwargs)
    with raises_naming(TypeError, "pair_tokens must be True or False"):
        RecallTask(pair_tokens=1)
