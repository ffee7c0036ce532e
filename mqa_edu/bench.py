"""Timing helpers shared by notebooks 04, 05 and 07 and by benchmarks/ (never by tests: speed is measured, not
asserted).

On a GPU the timer uses CUDA events (the launch returns before the work is done); on a CPU, perf_counter. When a
notebook's GPU branch is simulated on a CPU (MQA_EDU_SIMULATE_GPU=1), the event path runs with a CPU stand-in for the
events, so CI executes it. Every timer reports the MINIMUM of ``repeats`` runs after ``warmup`` runs, in
milliseconds: noise (other processes, frequency changes) only ever adds time, so the minimum is the most repeatable
estimate of what the work itself costs.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .device import simulating_gpu, synchronize
from .heads import HeadConfig, forward_flops, kv_cache_elements


class _CpuEvent:
    """The part of torch.cuda.Event the timer uses, on the CPU clock: lets the GPU timing path run without a GPU."""

    def __init__(self, enable_timing: bool = True):
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end: _CpuEvent) -> float:
        return (end.t - self.t) * 1e3


def _event_class(device):
    if device.type == "cuda":
        return torch.cuda.Event
    return _CpuEvent if simulating_gpu() else None


def time_ms(fn, device="cpu", repeats: int = 10, warmup: int = 2) -> float:
    """Minimum wall time of ``fn()`` in milliseconds on ``device``."""
    device = torch.device(device)
    event = _event_class(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        if event is not None:
            start, end = event(enable_timing=True), event(enable_timing=True)
            start.record()
            fn()
            end.record()
            synchronize(device)
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            samples.append((time.perf_counter() - t0) * 1e3)
    return min(samples)


def last_level_cache_bytes() -> int | None:
    """Size of this CPU's largest cache (Linux sysfs), or None where it cannot be read. A working set smaller than
    this can be served from the cache, and then "bandwidth" exceeds what main memory delivers."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


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
    return kv_cache_elements(n_kv_heads, head_dim, tokens=kv_len, batch=batch) * dtype.itemsize


def measure_matmul_gflops(device="cpu", n: int | None = None, dtype=torch.float32, repeats: int = 5) -> float:
    """Achievable arithmetic throughput in GFLOP/s in ``dtype``: time an n x n matmul (2 n^3 FLOPs). Measure it in
    the dtype you will compare against: fp16 tensor cores are many times faster than fp32."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = time_ms(lambda: a @ b, device, repeats=repeats, warmup=2)
    return 2 * n**3 / (ms * 1e-3) / 1e9


def decode_attention_intensity(group_size: int, bytes_per_element: float) -> float:
    """FLOPs per byte of K/V read by one decode step of attention: the score and value FLOPs of
    :func:`mqa_edu.heads.forward_flops` over the bytes of :func:`mqa_edu.heads.kv_cache_elements`. Context length,
    head_dim and batch cancel out, so one token, one dimension and one KV head stand for all: 2 x group_size /
    bytes_per_element."""
    cfg = HeadConfig(d_model=group_size, n_heads=group_size, n_kv_heads=1, head_dim=1)
    flops = forward_flops(cfg, seq_len=1, kv_len=1)["attention"]
    return flops / (kv_cache_elements(cfg.n_kv_heads, cfg.head_dim) * bytes_per_element)
