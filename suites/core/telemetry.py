"""GPU telemetry through NVML (``pynvml`` from nvidia-ml-py, imported lazily): device facts and a
power-sampling thread whose samples integrate to energy. Everything degrades to ``None`` / empty
when NVML or the driver is absent, so CPU-only machines run the same code."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when it is not installed or has no driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    return pynvml


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def nvml_handle(device_index: int) -> tuple[Any, Any] | None:
    """(pynvml, handle) for CUDA device ``device_index`` (respecting CUDA_VISIBLE_DEVICES by PCI bus id)."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        import torch
        handle = None
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(device_index)
            bus = getattr(props, "pci_bus_id", None)
            if bus is not None:
                domain = getattr(props, "pci_domain_id", 0)
                handle = nv.nvmlDeviceGetHandleByPciBusId(f"{domain:08X}:{bus:02X}:{props.pci_device_id:02X}.0".encode())
        if handle is None:
            handle = nv.nvmlDeviceGetHandleByIndex(device_index)
        return nv, handle
    except Exception:
        try:
            return nv, nv.nvmlDeviceGetHandleByIndex(device_index)
        except Exception:
            return None


def gpu_info(device_index: int) -> dict[str, Any]:
    """Name, driver, clocks (MHz), power (W) and limits of one GPU; {} without NVML."""
    got = nvml_handle(device_index)
    if got is None:
        return {}
    nv, h = got
    info: dict[str, Any] = {}
    probes: dict[str, Callable[[], Any]] = {
        "name": lambda: _str(nv.nvmlDeviceGetName(h)),
        "driver": lambda: _str(nv.nvmlSystemGetDriverVersion()),
        "sm_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
        "power_w": lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "power_limit_w": lambda: nv.nvmlDeviceGetEnforcedPowerManagementLimit(h) / 1000.0,
        "temperature_c": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
        "memory_total_mb": lambda: nv.nvmlDeviceGetMemoryInfo(h).total / 2**20,
        "persistence_mode": lambda: nv.nvmlDeviceGetPersistenceMode(h),
    }
    for key, probe in probes.items():
        try:
            info[key] = probe()
        except Exception:
            pass
    return info


def gpu_memory_used(device_index: int, pid: int | None = None) -> tuple[int, str] | None:
    """(bytes, what they are) of GPU memory in use on one device: this process's own allocation (all
    of it, whichever library made it) where NVML lists the process, else the whole device's; None
    without NVML."""
    import os
    got = nvml_handle(device_index)
    if got is None:
        return None
    nv, h = got
    pid = os.getpid() if pid is None else pid
    try:
        for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
            if p.pid == pid and p.usedGpuMemory is not None:
                return int(p.usedGpuMemory), "NVML: this process's GPU memory"
        return int(nv.nvmlDeviceGetMemoryInfo(h).used), "NVML: GPU memory used on the device (all processes)"
    except Exception:
        return None


def driver_version() -> str | None:
    nv = _nvml()
    if nv is None:
        return None
    try:
        return _str(nv.nvmlSystemGetDriverVersion())
    except Exception:
        return None


def integrate_energy(samples: list[tuple[float, float]], t_start: float, t_end: float) -> float | None:
    """Joules between ``t_start`` and ``t_end`` from (time s, power W) samples, by the trapezoid rule
    on the samples clipped to the window (power held constant before the first / after the last)."""
    if not samples or t_end <= t_start:
        return None
    pts = sorted(samples)
    inside = [(t, p) for t, p in pts if t_start < t < t_end]

    def power_at(t: float) -> float:
        before = [(ti, pi) for ti, pi in pts if ti <= t]
        after = [(ti, pi) for ti, pi in pts if ti >= t]
        if not before:
            return after[0][1]
        if not after:
            return before[-1][1]
        (t0, p0), (t1, p1) = before[-1], after[0]
        return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    curve = [(t_start, power_at(t_start))] + inside + [(t_end, power_at(t_end))]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(curve, curve[1:]))


class PowerSampler:
    """Samples power (W) on a background thread every ``interval`` s while in its ``with`` block.

    ``read_power`` is injectable (tests); by default it reads NVML for ``device_index``. Without
    NVML ``available`` is False and :meth:`energy` returns None.
    """

    def __init__(self, device_index: int = 0, interval: float = 0.02,
                 read_power: Callable[[], float] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.interval, self.clock = interval, clock
        if read_power is None:
            got = nvml_handle(device_index)
            if got is not None:
                nv, h = got
                read_power = lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0  # noqa: E731  (mW -> W)
        self._read = read_power
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._read is not None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)
        self._take()

    def _take(self) -> None:
        try:
            self.samples.append((self.clock(), float(self._read())))
        except Exception:
            pass

    def __enter__(self) -> "PowerSampler":
        if self.available:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="nvml-power", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def energy(self, t_start: float, t_end: float) -> float | None:
        """Joules consumed between two ``clock`` readings (None without samples)."""
        return integrate_energy(self.samples, t_start, t_end)
