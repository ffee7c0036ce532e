"""Training speed: the course's model vs Hugging Face's LlamaForCausalLM with the same configuration, the same
weights and the same batch, for MHA, GQA and MQA. One training step = forward, cross-entropy, backward, AdamW step.

    python benchmarks/train_bench.py          # the study's text model (notebooks 08-09), batch 16 x 128 bytes
    python benchmarks/train_bench.py --quick  # fewer repeats, under a minute

The two contenders alternate within one run and the fastest step of each counts (less noise from a shared machine).
Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from mqa_edu.bench import time_ms
from mqa_edu.convert import to_hf_llama
from mqa_edu.device import pick_device
from mqa_edu.model import ModelConfig, Transformer


def step_fn(model, logits_of, x, y):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = F.cross_entropy(logits_of(x).flatten(0, 1).float(), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-heads", type=int, default=8)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per contender; the best counts")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.rounds = 4, 2
    dev = pick_device(a.device)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}; model: {a.n_layers} layers, "
          f"d_model {a.d_model}, {a.n_heads} heads, vocab {a.vocab}; batch {a.batch} x {a.seq} tokens, float32")
    print(f"{'n_kv_heads':>10} {'course tok/s':>13} {'HF Llama tok/s':>15} {'course/HF':>10} {'same logits':>12}")
    rows = []
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g).to(dev)
    x, y = x[:, :-1], x[:, 1:]
    for kv in sorted({a.n_heads, max(1, a.n_heads // 4), 1}, reverse=True):
        torch.manual_seed(0)
        cfg = ModelConfig(n_layers=a.n_layers, d_model=a.d_model, n_heads=a.n_heads, n_kv_heads=kv,
                          vocab_size=a.vocab, max_seq_len=a.seq)
        course = Transformer(cfg).to(dev).train()
        hf = to_hf_llama(course).to(dev).train()  # the same weights
        with torch.no_grad():
            same = torch.allclose(course(x), hf(x).logits, atol=1e-4, rtol=1e-4)
        steps = {"course": step_fn(course, course, x, y), "hf": step_fn(hf, lambda t: hf(t).logits, x, y)}
        best = {k: float("inf") for k in steps}
        for _ in range(a.rounds):
            for k, fn in steps.items():
                best[k] = min(best[k], time_ms(fn, dev, repeats=a.repeats, warmup=1))
        tok = {k: a.batch * a.seq / (ms / 1e3) for k, ms in best.items()}
        ratio = tok["course"] / tok["hf"]
        rows.append({"n_kv_heads": kv, "course_tokens_per_s": round(tok["course"]), "hf_tokens_per_s": round(tok["hf"]),
                     "course_ms": round(best["course"], 2), "hf_ms": round(best["hf"], 2), "ratio": round(ratio, 3),
                     "same_logits": bool(same)})
        print(f"{kv:>10} {tok['course']:>13,.0f} {tok['hf']:>15,.0f} {ratio:>9.2f}x {str(same):>12}")
    print(json.dumps({"benchmark": "train", "device": str(dev), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "batch": a.batch, "seq": a.seq, "d_model": a.d_model,
                      "n_heads": a.n_heads, "n_layers": a.n_layers, "vocab": a.vocab, "rows": rows,
                      "min_ratio": min(r["ratio"] for r in rows)}))


if __name__ == "__main__":
    main()
