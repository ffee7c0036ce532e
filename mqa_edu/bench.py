"""Timing helpers shared by notebooks 04 and 07 and by benchmarks/ (never by tests: speed is measured, not asserted).

On a GPU the timer uses CUDA events (the launch returns before the work is done); on a CPU, perf_counter.
Every timer reports the median of ``repeats`` runs after ``warmup`` runs, in milliseconds.
"""
from __future__ import annotations

import statistics
import time

import torch

from .device import synchronize


def time_ms(fn, device="cpu", repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds on ``device``."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def measure_bandwidth_gbs(device="cpu", n_bytes: int | None = None, repeats: int = 10) -> float:
    """Achievable memory bandwidth in GB/s (1e9 bytes/s): time a large tensor copy, which reads n and writes n bytes.

    The buffer (default 256 MiB on a CPU, 1 GiB on a GPU) is far larger than any cache, so this is DRAM/HBM speed.
    """
    device = torch.device(device)
    if n_bytes is None:
        n_bytes = 2**30 if device.type == "cuda" else 2**28
    src = torch.ones(n_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeats=repeats, warmup=2)
    return 2 * n_bytes / (ms * 1e-3) / 1e9


def kv_bytes(batch: int, n_kv_heads: int, kv_len: int, head_dim: int, dtype=torch.float32) -> int:
    """Bytes of K and V that one decode step of one layer must read."""
    return 2 * batch * n_kv_heads * kv_len * head_dim * torch.tensor([], dtype=dtype).element_size()


def measure_matmul_gflops(device="cpu", n: int | None = None, dtype=torch.float32, repeats: int = 5) -> float:
    """Achievable arithmetic throughput in GFLOP/s: time an n x n matmul (2 n^3 FLOPs)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = time_ms(lambda: a @ b, device, repeats=repeats, warmup=2)
    return 2 * n**3 / (ms * 1e-3) / 1e9


def decode_attention_intensity(group_size: int, bytes_per_element: float) -> float:
    """FLOPs per byte of K/V read by one decode step of attention: (2+2) x n_heads x T x hd FLOPs over
    2 x n_kv_heads x T x hd x bytes, i.e. 2 x group_size / bytes_per_element."""
    return 2 * group_size / bytes_per_element
