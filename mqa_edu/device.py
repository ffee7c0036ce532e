"""Pick where tensors live (cuda, then mps, then cpu) and make runs repeatable.

Imported lazily by the rest of the package so that `import mqa_edu` stays fast and never needs torch.
"""
from __future__ import annotations

import os
import platform
import random

import numpy as np

_ALLOWED = ("auto", "cuda", "mps", "cpu")


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
