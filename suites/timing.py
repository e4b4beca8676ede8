"""Timing: warm-up then per-iteration samples, with an injectable timer (CPU clock or CUDA events).

A timer has ``sync()`` (wait for the device), ``start() -> token`` and ``stop(token) -> ms``.
:func:`measure` never times the first call, warms up for a wall-clock budget, then collects at
least ``min_samples`` samples and at least ``min_time`` seconds of them. Python's garbage
collector is paused during the timed region so that it cannot land inside a sample.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch


class Timer(Protocol):
    def sync(self) -> None: ...
    def start(self) -> Any: ...
    def stop(self, token: Any) -> float: ...


class CpuTimer:
    """Wall-clock timer (``perf_counter_ns``) for CPU work, which is synchronous."""

    def sync(self) -> None:
        pass

    def start(self) -> int:
        return time.perf_counter_ns()

    def stop(self, token: int) -> float:
        return (time.perf_counter_ns() - token) * 1e-6


class CudaEventTimer:
    """CUDA-event timer: events recorded on the current stream around the work; ``stop`` waits for
    the end event so every sample is the device time of one isolated iteration."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]

    def sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def start(self) -> Any:
        begin = self._events[0]
        begin.record(torch.cuda.current_stream(self.device))
        return begin

    def stop(self, token: Any) -> float:
        end = self._events[1]
        end.record(torch.cuda.current_stream(self.device))
        end.synchronize()
        return token.elapsed_time(end)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's garbage collector (so it cannot land inside a timed sample)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timer_for(device: str) -> Timer:
    """The right timer for ``device``: CUDA events on GPUs, the wall clock on CPU."""
    return CudaEventTimer(device) if str(device).startswith("cuda") else CpuTimer()


def warm_up(fn: Callable[[], Any], timer: Timer, seconds: float, min_calls: int = 2,
            clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Call ``fn`` at least ``min_calls`` times and for ``seconds``; return (calls, seconds per call
    of the calls after the first, which pays for compilation and allocation growth)."""
    timer.sync()
    fn()                         # the first call: compilation, allocator growth, caches; never timed
    timer.sync()
    calls, t0 = 0, clock()
    while calls < min_calls - 1 or clock() - t0 < seconds:
        fn()
        calls += 1
    timer.sync()
    return calls + 1, (clock() - t0) / max(calls, 1)


def measure(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
            min_samples: int = 30, max_samples: int = 100_000,
            clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Per-iteration times of ``fn`` in milliseconds, after warm-up."""
    warm_up(fn, timer, warmup, clock=clock)
    return sample(fn, timer, min_time=min_time, min_samples=min_samples, max_samples=max_samples, clock=clock)


def sample(fn: Callable[[], Any], timer: Timer, *, min_time: float, min_samples: int,
           max_samples: int = 100_000, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Per-iteration times of an already warm ``fn`` (ms): at least ``min_samples`` and ``min_time`` s."""
    samples: list[float] = []
    with gc_paused():
        timer.sync()
        t_end = clock() + min_time
        while len(samples) < max_samples and (len(samples) < min_samples or clock() < t_end):
            token = timer.start()
            fn()
            samples.append(timer.stop(token))
    return samples


def measure_rounds(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
                   min_rounds: int = 5, clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], int]:
    """Throughput-style timing: rounds of back-to-back calls with one synchronisation per round,
    so device queues stay full. Returns (ms per call for each round, calls per round)."""
    _, per_call = warm_up(fn, timer, warmup, clock=clock)
    per_round = max(1, min(1000, int(min_time / max(min_rounds, 1) / max(per_call, 1e-9))))
    rounds: list[float] = []
    with gc_paused():
        timer.sync()
        t_end = clock() + min_time
        while len(rounds) < min_rounds or clock() < t_end:
            token = timer.start()
            for _ in range(per_round):
                fn()
            rounds.append(timer.stop(token) / per_round)
    return rounds, per_round


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 100]) of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: list[float]) -> dict[str, float | int]:
    """The latency columns of a row: p50/p90/p99/mean/std (ms) and the sample count."""
    s = sorted(samples_ms)
    return {
        "latency_ms_p50": percentile(s, 50), "latency_ms_p90": percentile(s, 90),
        "latency_ms_p99": percentile(s, 99), "latency_ms_mean": statistics.fmean(s) if s else math.nan,
        "latency_ms_std": statistics.stdev(s) if len(s) > 1 else 0.0, "n_samples": len(s),
    }
