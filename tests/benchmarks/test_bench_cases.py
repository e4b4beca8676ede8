"""pytest-benchmark of every case the regression gate times (``suites/gate/cases.py``), each in the
group of its non-gated variants (``test_bench_lsnet.py``, ``test_bench_train.py``)."""
from __future__ import annotations

import pytest

from suites.gate.cases import CASES


@pytest.mark.parametrize("case", CASES)
def test_gate_case(timed, case):
    assert timed(CASES[case]) is not None
