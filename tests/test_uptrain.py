"""GQA -> MQA on a pretrained model (mqa_edu/uptrain.py, mqa_edu/studies/smollm2.py): the greedy layer search
re-measures every remaining layer
at each step and picks the cheapest, K/V-only uptraining changes the K/V projections and nothing else, the study
command routes its arguments, and the SmolLM2 results that ship with the package are complete and consistent."""
import math

import pytest
import torch

from mqa_edu import uptrain
from mqa_edu.convert import KV_PARAMS, pooled_kv_layers
from mqa_edu.data import text_batch
from mqa_edu.model import ModelConfig, Transformer
from mqa_edu.studies import __main__ as studies_cli
from mqa_edu.studies import smollm2
from tests.helpers import raises_naming


def small_gqa(seed=0, n_layers=4):
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(n_layers=n_layers, d_model=48, n_heads=6, n_kv_heads=3, vocab_size=64,
                                    max_seq_len=64)).eval()
    with torch.no_grad():  # K/V heads that differ a lot, so pooling them has a cost that differs per layer
        for i, layer in enumerate(model.layers):
            layer.self_attn.k_proj.weight.mul_(1 + 2 * i)
    return model


def ids(seed=1, batch=2, seq=24, vocab=64):
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def test_greedy_search_picks_the_cheapest_remaining_layer_at_every_step():
    model, x = small_gqa(), ids()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = uptrain.greedy_pooling(model, x, n_kv_heads=1)
    n = model.cfg.n_layers
    assert sorted(res["order"]) == list(range(n)) and len(res["loss"]) == n
    assert res["forward_passes"] == n + 1 + n * (n + 1) // 2 + n
    assert res["ranked_loss"][-1] == pytest.approx(res["loss"][-1], abs=1e-6)  # both end with every layer pooled
    assert res["loss"][0] <= res["ranked_loss"][0] + 1e-9  # greedy's first step is the cheapest layer alone
    for step, layer in enumerate(res["order"]):  # brute force: each step's choice is the best given the earlier ones
        chosen = res["order"][:step]
        options = {}
        for other in set(range(n)) - set(chosen):
            with pooled_kv_layers(model, chosen + [other], 1):
                options[other] = uptrain.mean_loss(model, x)
        assert layer == min(options, key=options.get)
        assert res["loss"][step] == pytest.approx(options[layer], abs=1e-6)
    with pooled_kv_layers(model, range(n), 1):  # the last step is every layer pooled: the full MQA conversion
        assert res["loss"][-1] == pytest.approx(uptrain.mean_loss(uptrain.to_mqa(model), x), abs=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is given back unchanged
    costs = uptrain.layer_costs(model, x)
    assert res["alone"] == pytest.approx(costs) and res["order"][0] == min(range(n), key=costs.__getitem__)


def test_greedy_search_can_be_limited_to_a_few_steps_and_candidates():
    model, x = small_gqa(n_layers=5), ids()
    res = uptrain.greedy_pooling(model, x, steps=2, candidates=2)
    assert len(res["order"]) == 2 and all(len(t) == 2 for t in res["tried"])
    ranked = sorted(range(5), key=res["alone"].__getitem__)
    assert set(map(int, res["tried"][0])) == set(ranked[:2])


def test_uptraining_changes_the_kv_projections_only_and_lowers_the_loss():
    model = uptrain.to_mqa(small_gqa(n_layers=2))
    assert model.cfg.n_kv_heads == 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text = torch.arange(64).repeat(40)  # a periodic sequence: learnable through attention
    rec = uptrain.uptrain_kv(model, text, text, steps=30, batch=4, seq_len=32, lr=1e-2, warmup=2, eval_every=10,
                             eval_batches=1, eval_seq_len=32)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(KV_PARAMS) for k in changed)
    assert rec["trainable"] == sum(v.numel() for k, v in before.items() if k.endswith(KV_PARAMS))
    assert [v["step"] for v in rec["val"]] == [0, 10, 20, 30]
    assert rec["val"][-1]["loss"] < rec["val"][0]["loss"]
    assert all(p.requires_grad for p in model.parameters())  # nothing stays frozen behind the caller's back


def test_to_mqa_computes_what_pooling_every_layer_computes():
    model, x = small_gqa(), ids()
    with pooled_kv_layers(model, range(model.cfg.n_layers), 1):
        expected = model(x)
    torch.testing.assert_close(uptrain.to_mqa(model)(x), expected, atol=1e-5, rtol=1e-5)


def test_perplexity_is_e_to_the_loss_and_uniform_guessing_scores_the_vocabulary():
    model, x = small_gqa(), ids()
    assert uptrain.perplexity(model, x) == pytest.approx(math.exp(uptrain.mean_loss(model, x)))
    with torch.no_grad():
        model.lm_head.weight.zero_()
    assert uptrain.perplexity(model, x) == pytest.approx(64, rel=1e-5)


def test_bad_input_is_named():
    model = small_gqa()
    with raises_naming(ValueError, "ids", "(batch, seq)"):
        uptrain.mean_loss(model, torch.tensor([1, 2, 3]))
    with raises_naming(ValueError, "seq_len", "too few"):
        text_batch(torch.arange(10), 2, 16, torch.Generator())  # the batches uptraining draws
    with raises_naming(ValueError, "size", "quick"):
        smollm2.smollm2_study("huge")
    with raises_naming(ValueError, "steps"):
        uptrain.greedy_pooling(model, ids(), steps=0)


def test_the_command_routes_its_arguments(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(studies_cli, "smollm2_study", lambda size, out, device, seed, **kw: seen.update(
        size=size, out=out, seed=seed))
    assert studies_cli.main(["smollm2", "--quick", "--out", str(tmp_path), "--seed", "3", "--device", "cpu"]) == 0
    assert seen == {"size": "quick", "out": str(tmp_path), "seed": 3}
    studies_cli.main(["smollm2", "--device", "cpu"])
    assert seen["size"] == "cpu" and seen["out"] == studies_cli.RESULTS_DIR


def test_load_study_refuses_other_files(tmp_path):
    with raises_naming(FileNotFoundError, "python -m mqa_edu.studies smollm2"):
        smollm2.load_study(tmp_path)
    (tmp_path / smollm2.RESULTS_FILE).write_text('{"format": "something else"}')
    with raises_naming(ValueError, "not a SmolLM2 study"):
        smollm2.load_study(tmp_path)


def test_shipped_smollm2_results_are_complete_and_consistent():
    res = smollm2.load_study()
    assert res["size"] == "cpu" and res["command"] == "python -m mqa_edu.studies smollm2"
    search, rec = res["search"], res["uptrain"]
    assert sorted(search["order"]) == list(range(30)) and len(search["alone"]) == 30
    for step, (layer, loss) in enumerate(zip(search["order"], search["loss"])):
        tried = {int(k): v for k, v in search["tried"][step].items()}
        assert len(tried) == 30 - step and min(tried, key=tried.get) == layer
        assert tried[layer] == pytest.approx(loss, abs=1e-5)  # stored to 5 decimals
    assert search["loss"][-1] == pytest.approx(res["loss"]["mqa_converted"]["search_text"], abs=1e-3)
    budget = res["budget"]
    assert rec["config"]["steps"] == budget["steps"] and rec["config"]["seed"] == res["seed"] == 0
    assert [v["step"] for v in rec["val"]][0] == 0 and rec["val"][-1]["step"] == budget["steps"]
    assert rec["wall_seconds"] > 0 and res["environment"]["torch"] and res["environment"]["threads"] >= 1
    loss = res["loss"]
    assert loss["shipped"]["search_text"] < loss["mqa_uptrained"]["search_text"] < loss["mqa_converted"]["search_text"]
    assert rec["val"][-1]["loss"] < rec["val"][0]["loss"] and res["texts"]["validation"] == "persuasion"
    assert "persuasion" not in res["texts"]["train"]
