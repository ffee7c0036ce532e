"""One decode step of attention: every implementation in mqa_edu.attention.DECODE_KERNELS side by side (the course's
grouped view, SDPA(enable_gqa=True), repeat_interleave + SDPA, expand + reshape + SDPA, and on a GPU notebook 12's
Triton kernel), each with the K/V bytes it must read over its time (GB/s) against the measured copy bandwidth.

    python benchmarks/attention_bench.py            # batch 8, 32 heads, 4096 cached tokens, head_dim 128
    python benchmarks/attention_bench.py --quick    # a small shape, seconds

Prints a table and, last, one JSON line. Ratios are what to compare (same run, same machine); absolute times vary.
"""
from __future__ import annotations

import argparse
import json

import torch

from mqa_edu.attention import DECODE_KERNELS, TRITON_KERNEL
from mqa_edu.bench import kv_bytes, measure_bandwidth_gbs, time_ms
from mqa_edu.device import pick_device

COURSE = "grouped view (course)"
SHORT = {"repeat_interleave": "repeat", "expand+reshape": "expand", "sdpa enable_gqa": "sdpa_gqa", COURSE: "course",
         TRITON_KERNEL: "triton"}  # notebook 12's kernel: in DECODE_KERNELS when Triton compiles (a GPU)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n-heads", type=int, default=32)
    ap.add_argument("--kv-heads", default="32,8,1", help="comma-separated n_kv_heads values")
    ap.add_argument("--kv-len", type=int, default=4096)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="batch 2, 1024 cached tokens, 3 repeats")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch, a.kv_len, a.repeats = 2, 1024, 3
    dev, dtype = pick_device(a.device), getattr(torch, a.dtype)
    torch.manual_seed(0)
    bw = measure_bandwidth_gbs(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"copy bandwidth {bw:.1f} GB/s")
    print(f"decode step: batch {a.batch}, n_heads {a.n_heads}, {a.kv_len} cached tokens, head_dim {a.head_dim}, "
          f"{a.dtype}, minimum of {a.repeats} runs")
    names = list(DECODE_KERNELS)
    head = (f"{'n_kv_heads':>10} {'K/V MB':>8} " + " ".join(f"{SHORT[n] + ' ms':>11}" for n in names)
            + f" {'course GB/s':>12} {'% of bw':>8} " + " ".join(f"{SHORT[n] + '/course':>16}" for n in names
                                                                  if n != COURSE))
    print(head)
    print("-" * len(head))
    rows = []
    for n_kv in (int(s) for s in a.kv_heads.split(",")):
        q = torch.randn(a.batch, a.n_heads, 1, a.head_dim, device=dev, dtype=dtype)
        k = torch.randn(a.batch, n_kv, a.kv_len, a.head_dim, device=dev, dtype=dtype)
        v = torch.randn_like(k)
        ref = DECODE_KERNELS["sdpa enable_gqa"](q, k, v).float()
        for name, f in DECODE_KERNELS.items():  # the same answer first
            torch.testing.assert_close(f(q, k, v).float(), ref, atol=1e-2, rtol=1e-2, msg=name)
        t = {name: time_ms(lambda f=f: f(q, k, v), dev, a.repeats) for name, f in DECODE_KERNELS.items()}
        nbytes = kv_bytes(a.batch, n_kv, a.kv_len, a.head_dim, dtype)
        gbs = nbytes / (t[COURSE] * 1e-3) / 1e9
        row = {"n_kv_heads": n_kv, "kv_bytes": nbytes, "ms": {n: round(ms, 3) for n, ms in t.items()},
               "course_gbs": round(gbs, 2), "fraction_of_bandwidth": round(gbs / bw, 3),
               "over_course": {n: round(ms / t[COURSE], 2) for n, ms in t.items() if n != COURSE},
               "gbs": {n: round(nbytes / (ms * 1e-3) / 1e9, 2) for n, ms in t.items()}}
        rows.append(row)
        print(f"{n_kv:>10} {nbytes / 1e6:>8.1f} " + " ".join(f"{t[n]:>11.2f}" for n in names)
              + f" {gbs:>12.1f} {100 * gbs / bw:>7.0f}% "
              + " ".join(f"{row['over_course'][n]:>15.2f}x" for n in names if n != COURSE))
    print("GB/s of each (the K/V bytes a decode step must read, over its time; copy bandwidth "
          f"{bw:.1f} GB/s): " + "; ".join(f"n_kv_heads={r['n_kv_heads']}: " + ", ".join(
              f"{SHORT[n]} {g:.1f}" for n, g in r["gbs"].items()) for r in rows))
    if TRITON_KERNEL not in DECODE_KERNELS:
        print("(notebook 12's Triton kernel is timed only where it compiles, on a GPU)")
    print(json.dumps({"benchmark": "attention_decode_step", "device": str(dev), "dtype": a.dtype, "batch": a.batch,
                      "n_heads": a.n_heads, "kv_len": a.kv_len, "head_dim": a.head_dim,
                      "bandwidth_gbs": round(bw, 2), "rows": rows}))


if __name__ == "__main__":
    main()
