"""Generation speed: the course's model + static cache vs Hugging Face LlamaForCausalLM (same config, random
weights, its own cache), for n_kv_heads in {n_heads, n_heads/4, 1}: eager fp32, the compiled static step
(generate(compile=True), notebook 12) in fp32 and with bf16 weights, and transformers in both dtypes; plus the decode
attention step's achieved memory bandwidth at a long context.

    python benchmarks/decode_bench.py          # 512-token prompts, 256 new tokens, batch 8 (a few minutes on 2 cores)
    python benchmarks/decode_bench.py --quick  # small, under a minute

Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from mqa_edu.attention import grouped_attention
from mqa_edu.bench import kv_bytes, measure_bandwidth_gbs, measure_matmul_gflops, time_ms
from mqa_edu.convert import to_hf_llama
from mqa_edu.device import pick_device, synchronize
from mqa_edu.generate import generate
from mqa_edu.model import ModelConfig, Transformer


def timed(fn, device):
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - t0, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--n-heads", type=int, default=16)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--attn-context", type=int, default=4096, help="cached tokens for the bandwidth measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs per contender; the best counts")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch, a.prompt, a.new, a.attn_context = 2, 64, 32, 1024
    dev = pick_device(a.device)
    from transformers import StaticCache  # noqa: F401  (fail early if transformers is missing)

    bw, peak = measure_bandwidth_gbs(dev), measure_matmul_gflops(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, copy bandwidth {bw:.1f} GB/s, "
          f"matmul {peak:.0f} GFLOP/s")
    print(f"model: {a.n_layers} layers, d_model {a.d_model}, {a.n_heads} heads, vocab {a.vocab}; batch {a.batch}, "
          f"{a.prompt}-token prompts, {a.new} new tokens, greedy, float32")
    head = (f"{'n_kv_heads':>10} {'course tok/s':>13} {'HF dynamic tok/s':>17} {'HF static tok/s':>16} "
            f"{'course/HF dyn':>14} {'course/HF static':>17} {'same tokens':>12} "
            f"{'attn GB/s @' + str(a.attn_context):>16} {'% of bw':>8} {'% of roofline':>14}")
    print(head)
    print("-" * len(head))
    rows = []
    for n_kv in (a.n_heads, a.n_heads // 4, 1):
        torch.manual_seed(0)
        cfg = ModelConfig(n_layers=a.n_layers, d_model=a.d_model, n_heads=a.n_heads, n_kv_heads=n_kv,
                          vocab_size=a.vocab, max_seq_len=max(a.prompt + a.new, a.attn_context) + 8)
        model = Transformer(cfg).to(dev).eval()
        hf = to_hf_llama(model).to(dev)
        prompts = torch.randint(0, a.vocab, (a.batch, a.prompt), device=dev)
        ours_fn = lambda: generate(model, prompts, a.new)  # noqa: E731
        gen_kw = dict(max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False, pad_token_id=0)
        am = torch.ones_like(prompts)

        def hf_fn(impl):
            with torch.no_grad():
                extra = {"cache_implementation": "static"} if impl == "static" else {}
                return hf.generate(input_ids=prompts, attention_mask=am, **gen_kw, **extra)[:, a.prompt:].tolist()

        model16, hf16 = copy.deepcopy(model).to(torch.bfloat16), copy.deepcopy(hf).to(torch.bfloat16)
        compiled_fn = lambda: generate(model, prompts, a.new, compile=True)  # noqa: E731
        compiled16_fn = lambda: generate(model16, prompts, a.new, compile=True)  # noqa: E731

        def hf16_fn():
            with torch.no_grad():
                return hf16.generate(input_ids=prompts, attention_mask=am, **gen_kw)[:, a.prompt:].tolist()

        generate(model, prompts[:, :8], 2), hf_fn("dynamic"), hf16_fn()  # warm up
        t0 = time.perf_counter()
        compiled_fn(), compiled16_fn()  # warm up: compiles the two static steps
        t_compile = time.perf_counter() - t0
        t_ours = t_dyn = t_sta = t_comp = t_comp16 = t_hf16 = float("inf")
        for _ in range(a.rounds):  # alternate the contenders so a noisy moment hurts each alike; keep the best
            t, toks_ours = timed(ours_fn, dev)
            t_ours = min(t_ours, t)
            t, toks_dyn = timed(lambda: hf_fn("dynamic"), dev)
            t_dyn = min(t_dyn, t)
            t, _ = timed(lambda: hf_fn("static"), dev)
            t_sta = min(t_sta, t)
            t, toks_comp = timed(compiled_fn, dev)
            t_comp = min(t_comp, t)
            t, _ = timed(compiled16_fn, dev)
            t_comp16 = min(t_comp16, t)
            t, _ = timed(hf16_fn, dev)
            t_hf16 = min(t_hf16, t)
        n_tokens = a.batch * a.new
        # bytes a decode step reads: every weight once, plus each row's cache at the mean context of the run; over
        # the whole call's time (prefill included), so the GB/s below are lower bounds on a decode step's
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        cache_bytes = kv_bytes(a.batch, n_kv, a.prompt + a.new // 2, cfg.head_dim) * a.n_layers
        step_gbs = lambda seconds, scale=1.0: (weight_bytes + cache_bytes) * scale * a.new / seconds / 1e9  # noqa: E731
        # decode attention at a long context: one layer's grouped attention over a full cache
        q = torch.randn(a.batch, a.n_heads, 1, cfg.head_dim, device=dev)
        k = torch.randn(a.batch, n_kv, a.attn_context, cfg.head_dim, device=dev)
        v = torch.randn_like(k)
        ms = time_ms(lambda: grouped_attention(q, k, v), dev, repeats=20)
        nbytes = kv_bytes(a.batch, n_kv, a.attn_context, cfg.head_dim)
        gbs = nbytes / (ms * 1e-3) / 1e9
        flops = 4 * a.batch * a.n_heads * a.attn_context * cfg.head_dim
        floor_ms = max(nbytes / (bw * 1e9), flops / (peak * 1e9)) * 1e3  # the roofline's limit for this step
        row = {"n_kv_heads": n_kv, "course_tok_s": round(n_tokens / t_ours, 1),
               "hf_dynamic_tok_s": round(n_tokens / t_dyn, 1), "hf_static_tok_s": round(n_tokens / t_sta, 1),
               "course_over_hf_dynamic": round(t_dyn / t_ours, 2), "course_over_hf_static": round(t_sta / t_ours, 2),
               "compiled_tok_s": round(n_tokens / t_comp, 1), "compiled_bf16_tok_s": round(n_tokens / t_comp16, 1),
               "hf_dynamic_bf16_tok_s": round(n_tokens / t_hf16, 1),
               "compiled_over_hf_dynamic": round(t_dyn / t_comp, 2),
               "compiled_bf16_over_hf_bf16": round(t_hf16 / t_comp16, 2), "compile_s": round(t_compile, 1),
               "compiled_same_tokens_as_eager": toks_comp == toks_ours,
               "step_gbs": {"eager": round(step_gbs(t_ours), 2), "compiled": round(step_gbs(t_comp), 2),
                            "compiled_bf16": round(step_gbs(t_comp16, 0.5), 2)},
               "same_tokens_as_hf": toks_ours == toks_dyn, "attn_ms": round(ms, 3), "attn_gbs": round(gbs, 2),
               "attn_fraction_of_bandwidth": round(gbs / bw, 3), "attn_fraction_of_roofline": round(floor_ms / ms, 3)}
        rows.append(row)
        print(f"{n_kv:>10} {row['course_tok_s']:>13.1f} {row['hf_dynamic_tok_s']:>17.1f} "
              f"{row['hf_static_tok_s']:>16.1f} {row['course_over_hf_dynamic']:>13.2f}x "
              f"{row['course_over_hf_static']:>16.2f}x {str(row['same_tokens_as_hf']):>12} {gbs:>16.1f} "
              f"{100 * gbs / bw:>7.0f}% {100 * floor_ms / ms:>13.0f}%")
    print("\nthe compiled static step (generate(compile=True), compiled once per model: "
          + ", ".join(f"{r['compile_s']} s" for r in rows) + ") and bf16 weights; GB/s: the bytes every decode "
          f"step reads (weights + cache) over the whole call's time, prefill included (a lower bound on a step's), "
          f"against the copy bandwidth {bw:.1f} GB/s")
    head2 = (f"{'n_kv_heads':>10} {'eager tok/s':>12} {'compiled':>9} {'HF dyn':>8} {'compiled/HF dyn':>16} "
             f"{'bf16 compiled':>14} {'HF bf16':>8} {'bf16/HF bf16':>13} {'same tokens':>12} "
             f"{'GB/s eager':>11} {'compiled':>9} {'bf16':>7}")
    print(head2)
    print("-" * len(head2))
    for r in rows:
        g = r["step_gbs"]
        print(f"{r['n_kv_heads']:>10} {r['course_tok_s']:>12.1f} {r['compiled_tok_s']:>9.1f} "
              f"{r['hf_dynamic_tok_s']:>8.1f} {r['compiled_over_hf_dynamic']:>15.2f}x "
              f"{r['compiled_bf16_tok_s']:>14.1f} "
              f"{r['hf_dynamic_bf16_tok_s']:>8.1f} {r['compiled_bf16_over_hf_bf16']:>12.2f}x "
              f"{str(r['compiled_same_tokens_as_eager']):>12} {g['eager']:>11.1f} {g['compiled']:>9.1f} "
              f"{g['compiled_bf16']:>7.1f}")
    print(json.dumps({"benchmark": "decode", "device": str(dev), "batch": a.batch, "prompt": a.prompt,
                      "new_tokens": a.new, "d_model": a.d_model, "n_heads": a.n_heads, "n_layers": a.n_layers,
                      "vocab": a.vocab, "bandwidth_gbs": round(bw, 2), "matmul_gflops": round(peak, 1),
                      "rows": rows}))


if __name__ == "__main__":
    main()
