import os

import pytest

# Keep the two CI cores for the test itself; torch's default already matches the core count, this just makes runs
# on big machines comparable.
os.environ.setdefault("MPLBACKEND", "Agg")


def head_ratios(n_heads):
    """Every valid n_kv_heads for n_heads: MHA, each divisor in between, MQA."""
    return [d for d in range(1, n_heads + 1) if n_heads % d == 0]


# (n_heads, n_kv_heads) pairs covering every divisor of several head counts, plus the odd real ones.
HEAD_PAIRS = [(h, kv) for h in (1, 4, 6, 8) for kv in head_ratios(h)] + [(9, 3), (9, 1), (9, 9), (71, 1)]


@pytest.fixture(params=HEAD_PAIRS, ids=lambda p: f"h{p[0]}kv{p[1]}")
def head_pair(request):
    return request.param
