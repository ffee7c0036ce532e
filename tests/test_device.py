"""Device selection and the simulated GPU branch: what lets CI execute code written for CUDA."""
import pytest
import torch

from mqa_edu import bench
from mqa_edu.device import SIMULATE_ENV, by_device, gpu_branch, pick_device, simulating_gpu
from tests.helpers import raises_naming


def test_pick_device_order_and_override(monkeypatch):
    monkeypatch.setenv("MQA_EDU_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    monkeypatch.setenv("MQA_EDU_DEVICE", "tpu")
    with raises_naming(ValueError, "MQA_EDU_DEVICE", "cuda"):
        pick_device()
    with raises_naming(ValueError, "prefer", "mps"):
        pick_device("gpu")


def test_gpu_branch_is_off_on_a_cpu_unless_simulated(monkeypatch):
    monkeypatch.delenv(SIMULATE_ENV, raising=False)
    assert not gpu_branch("cpu")
    assert by_device("cpu", cpu=1, gpu=2, simulated=3) == 1
    monkeypatch.setenv(SIMULATE_ENV, "1")
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        torch.nn.functional.scaled_dot_product_attention)  # undone after the test
    assert simulating_gpu() and gpu_branch("cpu")
    assert by_device("cpu", cpu=1, gpu=2, simulated=3) == 3
    q = torch.randn(1, 4, 3, 8)
    assert not torch.nn.functional.scaled_dot_product_attention(q, q, q).is_contiguous()  # the fused layout
    monkeypatch.setenv(SIMULATE_ENV, "yes")
    with raises_naming(ValueError, SIMULATE_ENV, "'1'"):
        simulating_gpu()


def test_timer_takes_the_event_path_when_simulating(monkeypatch):
    """time_ms's CUDA-event branch runs on the CPU stand-in, so CI executes it."""
    monkeypatch.setenv(SIMULATE_ENV, "1")
    recorded = []
    original = bench._CpuEvent.record
    monkeypatch.setattr(bench._CpuEvent, "record", lambda self: (recorded.append(self), original(self))[1])
    ms = bench.time_ms(lambda: sum(range(1000)), "cpu", repeats=3, warmup=1)
    assert ms >= 0 and len(recorded) == 6
    monkeypatch.delenv(SIMULATE_ENV)
    recorded.clear()
    bench.time_ms(lambda: None, "cpu", repeats=2, warmup=0)
    assert recorded == []


def test_timer_reports_the_minimum(monkeypatch):
    times = iter([0.0, 0.005, 1.0, 1.001, 2.0, 2.003])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(times))
    assert bench.time_ms(lambda: None, "cpu", repeats=3, warmup=0) == pytest.approx(1.0)


def test_decode_intensity_comes_from_the_flop_and_byte_formulas():
    assert bench.decode_attention_intensity(8, 2) == 8
    assert bench.decode_attention_intensity(71, 2) == 71
    assert bench.decode_attention_intensity(1, 4) == 0.5
