"""Calibration benchmarks: fixed workloads that measure the machine, so the gate can normalise
every other benchmark of the same run (torch: conv/matmul at 2 threads; python: the interpreter)."""
from __future__ import annotations

import torch


def _stage_net() -> torch.nn.Sequential:
    """A fixed conv stage shaped like a lightweight-net block stack (pointwise, depthwise 7x7, ReLU)."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(4):
        layers += [torch.nn.Conv2d(64, 128, 1), torch.nn.ReLU(), torch.nn.Conv2d(128, 128, 7, padding=3, groups=128),
                   torch.nn.Conv2d(128, 64, 1)]
    return torch.nn.Sequential(*layers).eval()


def test_calibration_torch(benchmark):
    net = _stage_net()
    x = torch.randn(2, 64, 28, 28)
    with torch.inference_mode():
        benchmark.pedantic(net, (x,), rounds=15, warmup_rounds=3)


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
