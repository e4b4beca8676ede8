"""Unit benchmarks (pytest-benchmark) run on 2 intra-op threads; the main test run executes each once
(``--benchmark-disable``); ``python -m pytest tests/benchmarks --benchmark-enable`` times them. The
regression gate is the A/B comparison of ``gate.py``, not these."""
from __future__ import annotations

import pytest
import torch

THREADS = 2


@pytest.fixture(autouse=True)
def _benchmark_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
