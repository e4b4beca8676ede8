"""Unit benchmarks (pytest-benchmark) run on 2 intra-op threads; the main test run executes each once
(``--benchmark-disable``); ``python -m pytest tests/benchmarks --benchmark-enable`` times them. Every
benchmark of a model or op is a case of ``suites/gate/cases.py``: the gate's ``CASES``
(``test_bench_cases.py``) or a variant built by the same builders, in the group of its builder and
arguments but the backend. The regression gate is the A/B comparison of ``python -m suites.gate``, not these."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from suites.gate.cases import Case, group

THREADS = 2


@pytest.fixture(autouse=True)
def _benchmark_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def timed(benchmark) -> Callable[..., object]:
    """``timed(case, rounds=None)``: build ``case`` and time it in its group; ``rounds`` fixes the rounds
    (one warm-up round) of a slow one. Returns what one call returns."""
    def run(case: Case, rounds: int | None = None) -> object:
        benchmark.group = group(case)
        fn = case()
        if rounds is None:
            return benchmark(fn)
        return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
    return run
