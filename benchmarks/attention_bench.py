"""One decode step of attention: the course's grouped view vs SDPA(enable_gqa=True) vs repeat_interleave + SDPA.

    python benchmarks/attention_bench.py            # the issue's shape: batch 8, 32 heads, 4096 cached, head_dim 128
    python benchmarks/attention_bench.py --quick    # a small shape, seconds

Prints a table and, last, one JSON line. Ratios are what to compare (same run, same machine); absolute times vary.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mqa_edu.attention import attention_repeat_interleave, attention_sdpa_gqa, grouped_attention  # noqa: E402
from mqa_edu.bench import kv_bytes, measure_bandwidth_gbs, time_ms  # noqa: E402
from mqa_edu.device import pick_device  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n-heads", type=int, default=32)
    ap.add_argument("--kv-heads", default="32,8,1", help="comma-separated n_kv_heads values")
    ap.add_argument("--kv-len", type=int, default=4096)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="batch 2, 1024 cached tokens, 3 repeats")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch, a.kv_len, a.repeats = 2, 1024, 3
    dev = pick_device(a.device)
    torch.manual_seed(0)
    bw = measure_bandwidth_gbs(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"copy bandwidth {bw:.1f} GB/s")
    print(f"decode step: batch {a.batch}, n_heads {a.n_heads}, {a.kv_len} cached tokens, head_dim {a.head_dim}, "
          f"float32, median of {a.repeats}")
    head = (f"{'n_kv_heads':>10} {'K/V MB':>8} {'course ms':>10} {'sdpa_gqa ms':>12} {'repeat ms':>10} "
            f"{'course GB/s':>12} {'% of bw':>8} {'gqa/course':>11} {'repeat/course':>14}")
    print(head)
    print("-" * len(head))
    rows = []
    for n_kv in (int(s) for s in a.kv_heads.split(",")):
        q = torch.randn(a.batch, a.n_heads, 1, a.head_dim, device=dev)
        k = torch.randn(a.batch, n_kv, a.kv_len, a.head_dim, device=dev)
        v = torch.randn_like(k)
        ref = attention_sdpa_gqa(q, k, v)
        torch.testing.assert_close(grouped_attention(q, k, v), ref, atol=1e-4, rtol=1e-4)  # same answer first
        t = {name: time_ms(lambda f=f: f(q, k, v), dev, a.repeats)
             for name, f in (("course", grouped_attention), ("sdpa_gqa", attention_sdpa_gqa),
                             ("repeat_interleave", attention_repeat_interleave))}
        nbytes = kv_bytes(a.batch, n_kv, a.kv_len, a.head_dim)
        gbs = nbytes / (t["course"] * 1e-3) / 1e9
        row = {"n_kv_heads": n_kv, "kv_bytes": nbytes, **{f"{k}_ms": round(val, 3) for k, val in t.items()},
               "course_gbs": round(gbs, 2), "fraction_of_bandwidth": round(gbs / bw, 3),
               "sdpa_gqa_over_course": round(t["sdpa_gqa"] / t["course"], 2),
               "repeat_over_course": round(t["repeat_interleave"] / t["course"], 2)}
        rows.append(row)
        print(f"{n_kv:>10} {nbytes / 1e6:>8.1f} {t['course']:>10.2f} {t['sdpa_gqa']:>12.2f} "
              f"{t['repeat_interleave']:>10.2f} {gbs:>12.1f} {100 * gbs / bw:>7.0f}% "
              f"{row['sdpa_gqa_over_course']:>10.2f}x {row['repeat_over_course']:>13.2f}x")
    print(json.dumps({"benchmark": "attention_decode_step", "device": str(dev), "batch": a.batch,
                      "n_heads": a.n_heads, "kv_len": a.kv_len, "head_dim": a.head_dim,
                      "bandwidth_gbs": round(bw, 2), "rows": rows}))


if __name__ == "__main__":
    main()
