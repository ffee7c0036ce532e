"""Pick where tensors live (cuda, then mps, then cpu) and make runs repeatable.

Imported lazily by the rest of the package so that `import mqa_edu` stays fast and never needs torch.
"""
from __future__ import annotations

import os
import platform
import random

import numpy as np

_ALLOWED = ("auto", "cuda", "mps", "cpu")
SIMULATE_ENV = "MQA_EDU_SIMULATE_GPU"  # "1": notebooks take their GPU branch on any device, at small sizes


def pick_device(prefer: str = "auto"):
    """Return a ``torch.device``: cuda if present, else Apple's mps, else cpu.

    ``prefer`` may force one of "cuda", "mps" or "cpu"; the environment variable ``MQA_EDU_DEVICE`` overrides "auto"
    (handy for a lecturer who wants the CPU numbers on a GPU laptop).
    """
    import torch

    if not isinstance(prefer, str) or prefer not in _ALLOWED:
        raise ValueError(f"prefer must be one of {_ALLOWED}, got {prefer!r}")
    if prefer == "auto":
        prefer = os.environ.get("MQA_EDU_DEVICE", "auto")
        if prefer not in _ALLOWED:
            raise ValueError(f"MQA_EDU_DEVICE must be one of {_ALLOWED}, got {prefer!r}")
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if prefer == "cuda" or (prefer == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but torch.cuda.is_available() is False on this machine")
        return torch.device("cuda")
    if prefer == "mps" or (prefer == "auto" and mps_ok):
        if not mps_ok:
            raise ValueError("prefer='mps' but torch.backends.mps.is_available() is False on this machine")
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (every device) with one number."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # NumPy-only notebooks still work
        return
    torch.manual_seed(seed)


def synchronize(device) -> None:
    """Wait for queued GPU work, so that a timer measures the work and not just its launch."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def describe_environment() -> dict:
    """Versions and hardware in one dict, for the start-here notebook and for bug reports."""
    info = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count()}
    try:
        import torch

        dev = pick_device()
        info.update(torch=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads())
        if dev.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        info.update(torch=None, device="cpu (torch not installed)")
    return info


# ---------------------------------------------------------------------------------------------------------------
# Running a notebook's GPU branch without a GPU. CI has no GPU, yet the code under `if on_gpu:` must run there: with
# MQA_EDU_SIMULATE_GPU=1 the notebooks take that branch on the CPU, at sizes small enough for CI, with what differs on
# a GPU reproduced here (the fused SDPA kernels' output layout, CUDA-event timers, fp16).
# ---------------------------------------------------------------------------------------------------------------

def simulating_gpu() -> bool:
    """True when MQA_EDU_SIMULATE_GPU=1 asks for the GPU branch on a machine that may have no GPU."""
    value = os.environ.get(SIMULATE_ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{SIMULATE_ENV} must be '0' or '1' (or unset), got {value!r}")
    return value == "1"


def gpu_branch(device) -> bool:
    """Whether a notebook should take its GPU branch (larger sizes, fp16, CUDA timers): on CUDA, or when simulating.

    When simulating on a CPU it also makes SDPA return its output in the fused CUDA kernels' layout, so that code
    which only works on contiguous outputs fails here as it would on a GPU.
    """
    import torch

    if torch.device(device).type == "cuda":
        return True
    if simulating_gpu():
        _install_fused_sdpa_layout()
        return True
    return False


def by_device(device, *, cpu, gpu, simulated):
    """Pick sizes: ``gpu`` on CUDA, ``simulated`` (small) when the GPU branch is simulated, ``cpu`` otherwise."""
    import torch

    if torch.device(device).type == "cuda":
        return gpu
    return simulated if gpu_branch(device) else cpu


def fused_sdpa_layout(out):
    """The same values laid out as CUDA's flash / memory-efficient SDPA kernels return them: memory ordered
    (batch, seq, heads, head_dim), seen as (batch, heads, seq, head_dim). Not contiguous: ``.view`` across the head
    and sequence axes fails on it, as it does on a GPU."""
    return out.transpose(1, 2).contiguous().transpose(1, 2) if out.dim() == 4 else out


def _install_fused_sdpa_layout():
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention
    if getattr(sdpa, "_mqa_edu_fused_layout", False):
        return

    def sdpa_with_fused_layout(*args, **kwargs):
        return fused_sdpa_layout(sdpa(*args, **kwargs))

    sdpa_with_fused_layout._mqa_edu_fused_layout = True
    F.scaled_dot_product_attention = sdpa_with_fused_layout
