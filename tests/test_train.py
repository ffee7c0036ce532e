"""Training: a few steps lower the loss; checkpoints round-trip as safetensors and refuse another configuration."""
import pytest
import torch

from mqa_edu.data import VOCAB_SIZE, RecallTask, austen_splits, text_batch
from mqa_edu.model import ModelConfig, Transformer
from mqa_edu.train import TrainConfig, learning_rate, load_checkpoint, read_checkpoint_config, save_checkpoint, train
from tests.helpers import raises_naming


def tiny(n_kv_heads=2, vocab=VOCAB_SIZE, **kw):
    torch.manual_seed(0)
    return Transformer(ModelConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=vocab,
                                   max_seq_len=64, **kw))


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_a_few_steps_lower_the_loss(n_kv_heads):
    s = austen_splits(max_bytes=100_000)
    model = tiny(n_kv_heads)
    rec = train(model, TrainConfig(steps=30, batch=8, eval_every=15, eval_batches=2, warmup=5),
                lambda g: text_batch(s.train, 8, 32, g), lambda g: text_batch(s.val, 8, 32, g), progress=False)
    assert rec["train_loss"][-1] < rec["train_loss"][0] - 1.0
    assert rec["val"][-1]["loss"] < rec["val"][0]["loss"] or rec["val"][-1]["loss"] < 4.0
    assert rec["environment"]["torch"] == torch.__version__ and rec["config"]["seed"] == 0


def test_training_is_reproducible_from_its_seed():
    task = RecallTask(n_pairs=4, n_queries=2, n_keys=16, n_values=16)
    runs = []
    for _ in range(2):
        model = tiny(vocab=task.vocab_size)
        rec = train(model, TrainConfig(steps=5, batch=4, eval_every=5, eval_batches=1, warmup=1),
                    lambda g: task.batch(4, g), lambda g: task.batch(4, g), progress=False)
        runs.append(rec["train_loss"])
    assert runs[0] == runs[1]


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] >= 1e-4 - 1e-12
    with raises_naming(ValueError, "lr must be > 0"):
        TrainConfig(lr=0)


@pytest.mark.parametrize("tied", [False, True])
def test_checkpoint_round_trip(tmp_path, tied):
    model = tiny(tie_embeddings=tied)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, {"steps": 3})
    loaded, record = load_checkpoint(path, expect=model.cfg)
    assert record == {"steps": 3}
    tokens = torch.randint(0, VOCAB_SIZE, (2, 9))
    torch.testing.assert_close(loaded(tokens), model.eval()(tokens), atol=0, rtol=0)
    half = tmp_path / "h.safetensors"
    save_checkpoint(half, model, dtype=torch.float16)
    assert half.stat().st_size < path.stat().st_size * 0.6
    assert read_checkpoint_config(half)[0] == model.cfg


def test_checkpoint_of_another_config_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny())
    other = tiny(vocab=100).cfg
    with raises_naming(ValueError, "another model configuration", "vocab_size=256 (expected 100)"):
        load_checkpoint(path, expect=other)
    with raises_naming(ValueError, "n_kv_heads=2 (expected 1)"):
        load_checkpoint(path, expect=tiny(n_kv_heads=1).cfg)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with raises_naming(ValueError, "not an mqa_edu checkpoint"):
        load_checkpoint(path)


def test_a_step_of_your_own_trains_exactly_as_the_package_step():
    """train(step_fn=...) runs a learner's step (notebook 09) in the study's loop; the package's own step passed in
    that way gives the same record as the default."""
    from mqa_edu.train import train_step
    ids = torch.arange(400) % 23
    records = []
    for step_fn in (None, lambda m, o, x, y, clip: train_step(m, o, x, y, clip)):
        torch.manual_seed(0)
        model = Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, vocab_size=23, max_seq_len=16))
        make = lambda g: text_batch(ids, 4, 8, g)  # noqa: E731
        rec = train(model, TrainConfig(steps=6, warmup=2, eval_every=3, eval_batches=1), make, make,
                    progress=False, step_fn=step_fn)
        records.append((rec["train_loss"], rec["val"]))
    assert records[0] == records[1] and len(records[0][0]) == 6
