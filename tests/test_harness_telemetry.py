"""NVML telemetry without a GPU: energy integration, the sampling thread, absent pynvml."""
from __future__ import annotations

import sys
import time

import pytest

from suites.core import telemetry
from suites.core.timing import CpuTimer
from suites.core.measurement import Measurement
from suites.throughput import energy_fields


def test_integrate_constant_power():
    samples = [(t / 10, 100.0) for t in range(0, 21)]
    assert telemetry.integrate_energy(samples, 0.5, 1.5) == pytest.approx(100.0)


def test_integrate_ramp_and_clipping():
    samples = [(0.0, 0.0), (1.0, 100.0), (2.0, 100.0)]
    assert telemetry.integrate_energy(samples, 0.0, 2.0) == pytest.approx(50.0 + 100.0)
    assert telemetry.integrate_energy(samples, 0.5, 1.0) == pytest.approx((50 + 100) / 2 * 0.5)
    assert telemetry.integrate_energy(samples, 2.0, 3.0) == pytest.approx(100.0)  # held after the last sample
    assert telemetry.integrate_energy([], 0.0, 1.0) is None


def test_power_sampler_thread_with_injected_reader():
    with telemetry.PowerSampler(interval=0.005, read_power=lambda: 50.0) as s:
        t0 = time.perf_counter()
        time.sleep(0.1)
        t1 = time.perf_counter()
    assert len(s.samples) >= 5
    assert s.energy(t0, t1) == pytest.approx(50.0 * (t1 - t0), rel=1e-6)
    # 5 rounds of one 2-call sample of 10 ms per call, each 20 ms long, 4 images per call: windows of its own
    m = Measurement([[10.0]] * 5, starts=[t0 + 0.02 * i for i in range(5)], calls_per_sample=2)
    out = energy_fields(s, m, 4)
    assert out["energy_j_per_img"] == pytest.approx(50.0 * 0.1 / 40, rel=0.05)
    # interleaved: the rounds' windows are apart (other cells ran between them); only the windows count
    apart = Measurement([[10.0]] * 2, starts=[t0, t0 + 0.06], calls_per_sample=2)
    assert energy_fields(s, apart, 4)["extra"]["energy_j"] == pytest.approx(50.0 * 0.04, rel=0.05)


def test_without_pynvml_everything_degrades(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)          # import pynvml -> ImportError
    assert telemetry.gpu_info(0) == {}
    assert telemetry.driver_version() is None
    s = telemetry.PowerSampler(0)
    assert not s.available
    with s:
        pass
    assert s.energy(0.0, 1.0) is None


def test_nvml_without_driver(monkeypatch):
    class FakeNvml:
        class NVMLError(Exception):
            pass

        @staticmethod
        def nvmlInit():
            raise FakeNvml.NVMLError("Driver Not Loaded")

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml)
    assert telemetry.gpu_info(0) == {}
    assert not telemetry.PowerSampler(0).available


class _Proc:
    def __init__(self, pid, used):
        self.pid, self.usedGpuMemory = pid, used


def _fake_nvml(procs, device_used):
    class Mem:
        used = device_used

    class FakeNvml:
        nvmlInit = staticmethod(lambda: None)
        nvmlDeviceGetHandleByIndex = staticmethod(lambda i: f"gpu{i}")
        nvmlDeviceGetHandleByPciBusId = staticmethod(lambda bus: "gpu0")
        nvmlDeviceGetComputeRunningProcesses = staticmethod(lambda h: procs)
        nvmlDeviceGetMemoryInfo = staticmethod(lambda h: Mem)
    return FakeNvml


def test_gpu_memory_used_is_this_process_where_nvml_lists_it(monkeypatch):
    import os
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([_Proc(1, 5), _Proc(os.getpid(), 300 << 20)], 9 << 30))
    assert telemetry.gpu_memory_used(0) == (300 << 20, "NVML: this process's GPU memory")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([_Proc(1, 5)], 9 << 30))   # another PID namespace
    assert telemetry.gpu_memory_used(0) == (9 << 30, "NVML: GPU memory used on the device (all processes)")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert telemetry.gpu_memory_used(0) is None


def test_memory_of_a_non_torch_engine_on_cuda_is_nvml_growth(monkeypatch):
    import contextlib

    from suites.engines.base import Step
    from suites import memory
    from suites.core.cell import Cell, Context
    readings = iter([(1000 << 20, "NVML: this process's GPU memory"), (1100 << 20, "m"), (1350 << 20, "m")])
    runs = []

    class FakeEngine:
        torch_native = False     # what the memory suite reads to choose NVML over the CUDA allocator

        @contextlib.contextmanager
        def prepare(self, cell, ctx):
            yield Step(run=lambda: runs.append(1), infer=None, timer=CpuTimer(), params=2_000_000, parity_rel=1e-6)

    monkeypatch.setattr(memory, "gpu_memory_used", lambda index: next(readings))
    monkeypatch.setattr(memory.engines, "get", lambda name: FakeEngine())
    out = memory.run(Cell("memory", "lsnet_t", engine="onnxruntime", device="cuda:0"), Context())
    assert out["peak_mem_mb"] == 350 and out["extra"]["model_and_input_mb"] == 100
    assert len(runs) == memory.FORWARDS and out["parity_rel"] == 1e-6
    monkeypatch.setattr(memory, "gpu_memory_used", lambda index: None)
    with pytest.raises(RuntimeError, match="read through NVML, which is not available here"):
        memory.run(Cell("memory", "lsnet_t", engine="tensorrt", device="cuda:0"), Context())
