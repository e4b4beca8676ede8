"""Calibration benchmarks: fixed workloads that measure the machine, so the gate can normalise
every other benchmark of the same run (torch: conv/matmul at 2 threads; python: the interpreter)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

THREADS = 2


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def test_calibration_torch(benchmark):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 28, 28, generator=g)
    w = torch.randn(64, 64, 3, 3, generator=g) * 0.05
    wd = torch.randn(64, 1, 7, 7, generator=g) * 0.05
    a, b = torch.randn(256, 384, generator=g), torch.randn(384, 256, generator=g)

    def work():
        y = F.conv2d(x, w, padding=1)
        y = F.conv2d(y, wd, padding=3, groups=64)
        y = F.relu(y * 0.5 + x)
        return y.sum() + (a @ b).sum()

    with torch.inference_mode():
        benchmark.pedantic(work, rounds=15, warmup_rounds=3)


def _interpreter_work() -> int:
    d: dict[int, int] = {}
    total = 0
    for i in range(20_000):
        d[i & 255] = d.get(i & 255, 0) + i
        total += len(str(i))
    return total + sum(d.values())


def test_calibration_python(benchmark):
    benchmark.extra_info["calibration"] = "python"
    benchmark.pedantic(_interpreter_work, rounds=20, warmup_rounds=2)
