"""Timing: warm-up then per-iteration samples, with an injectable timer (CPU clock or CUDA events).

A timer has ``sync()`` (wait for the device), ``start() -> token`` and ``stop(token) -> ms``.
:func:`measure` never times the first call, warms up for a wall-clock budget, then collects at
least ``min_samples`` samples and at least ``min_time`` seconds of them. Python's garbage
collector is paused during the timed region so that it cannot land inside a sample, and every
measuring entry point runs with room on CPython's frame stack (:mod:`suites.stackroom`), so that
the depth a loop happens to run at cannot make each call allocate and free a stack chunk.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from suites.stackroom import with_headroom


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
    from suites.devices import is_cuda
    return CudaEventTimer(device) if is_cuda(str(device)) else CpuTimer()


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


@with_headroom
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


@with_headroom
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
    """The latency columns of a row: p50/p90/p99/mean/std (ms), the median's ~95% interval, the sample count."""
    s = sorted(samples_ms)
    lo, hi = median_ci(s)
    return {
        "latency_ms_p50": percentile(s, 50), "latency_ms_p90": percentile(s, 90), "latency_ms_ci_low": lo,
        "latency_ms_ci_high": hi,
        "latency_ms_p99": percentile(s, 99), "latency_ms_mean": statistics.fmean(s) if s else math.nan,
        "latency_ms_std": statistics.stdev(s) if len(s) > 1 else 0.0, "n_samples": len(s),
    }


def median_ci(samples: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median: the order statistics at
    n/2 -+ z*sqrt(n)/2 (the binomial rule); (min, max) for fewer than 6 samples."""
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return math.nan, math.nan
    if n < 6:
        return s[0], s[-1]
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return s[lo], s[hi]


STALL_FACTOR = 5.0      # a sample above this multiple of the running median is a stall
SPREAD_LIMIT = 0.10     # stable when the median's interval is at most this fraction of the median
STALL_SHARE_LIMIT = 0.05


@dataclass
class Sampled:
    """Samples kept after stall removal, and how far to trust them."""
    samples: list[float]
    stable: bool
    reasons: list[str]
    n_stalls: int
    resampled_s: float

    @property
    def spread(self) -> float:
        """Width of the median's interval relative to the median."""
        lo, hi = median_ci(self.samples)
        med = statistics.median(self.samples) if self.samples else math.nan
        return (hi - lo) / med if med else math.inf


def sample_stable(fn: Callable[[], Any], timer: Timer, *, min_time: float, min_samples: int,
                  max_extra_time: float, spread_limit: float = SPREAD_LIMIT, stall_factor: float = STALL_FACTOR,
                  max_samples: int = 100_000, clock: Callable[[], float] = time.perf_counter) -> Sampled:
    """Per-iteration times (ms) with stalls detected while sampling.

    A sample above ``stall_factor`` times the running median (of the last 64 kept, once 10 exist) is
    a stall: counted, not kept, and replaced by sampling on. After ``min_time`` and ``min_samples``,
    sampling continues (at most ``max_extra_time`` more seconds) until the median's interval is
    within ``spread_limit`` of the median; if it never is, ``stable`` is False with the reason.
    """
    kept: list[float] = []
    stalls = 0
    with gc_paused():
        timer.sync()
        start = clock()
        t_end = start + min_time
        deadline = t_end + max_extra_time
        while len(kept) + stalls < max_samples:
            token = timer.start()
            fn()
            ms = timer.stop(token)
            if len(kept) >= 10 and ms > stall_factor * statistics.median(kept[-64:]):
                stalls += 1
            else:
                kept.append(ms)
            now = clock()
            if len(kept) >= min_samples and now >= t_end:
                spread = Sampled(kept, True, [], 0, 0.0).spread
                if spread <= spread_limit or now >= deadline:
                    break
        resampled = max(0.0, clock() - t_end)
    if kept:   # stalls among the first samples, before a running median existed
        limit = stall_factor * statistics.median(kept)
        early = [s for s in kept if s > limit]
        kept = [s for s in kept if s <= limit]
        stalls += len(early)
    out = Sampled(kept, True, [], stalls, resampled)
    if stalls:
        out.reasons.append(f"{stalls} stall(s) above {stall_factor:g}x the median removed")
    if stalls > STALL_SHARE_LIMIT * max(len(kept), 1):
        out.stable = False
        out.reasons.append(f"stalls were {stalls} of {stalls + len(kept)} samples")
    if out.spread > spread_limit:
        out.stable = False
        out.reasons.append(f"the median's interval is {100 * out.spread:.0f}% of the median (limit "
                           f"{100 * spread_limit:.0f}%) after {resampled:.1f} s of re-sampling")
    return out


def trusted(sampled: Sampled) -> dict[str, Any]:
    """The row fields of a :class:`Sampled`: the latency columns, ``stable``, ``warnings``, and the
    stall count and re-sampling time for ``extra``."""
    return {**summarize(sampled.samples), "stable": sampled.stable, "warnings": list(sampled.reasons),
            "samples": sampled.samples, "stalls": {"n_stalls": sampled.n_stalls, "resampled_s": sampled.resampled_s}}


@with_headroom
def measure_stable(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
                   min_samples: int = 30, max_extra_time: float | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> Sampled:
    """Warm up, then :func:`sample_stable` (re-sampling for at most ``max_extra_time``, default
    twice ``min_time`` plus one second)."""
    warm_up(fn, timer, warmup, clock=clock)
    extra = 2 * min_time + 1.0 if max_extra_time is None else max_extra_time
    return sample_stable(fn, timer, min_time=min_time, min_samples=min_samples, max_extra_time=extra, clock=clock)


@with_headroom
def measure_rounds_stable(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
                          min_rounds: int = 5, clock: Callable[[], float] = time.perf_counter
                          ) -> tuple[Sampled, int]:
    """Throughput timing with stall handling: rounds of back-to-back calls (one synchronisation per
    round), each round a sample of :func:`sample_stable` in ms per call; returns (rounds, calls per round)."""
    _, per_call = warm_up(fn, timer, warmup, clock=clock)
    per_round = max(1, min(1000, int(min_time / max(min_rounds, 1) / max(per_call, 1e-9))))

    def one_round() -> None:
        for _ in range(per_round):
            fn()
    rounds = sample_stable(one_round, timer, min_time=min_time, min_samples=min_rounds,
                           max_extra_time=2 * min_time + 1.0, clock=clock)
    rounds.samples = [ms / per_round for ms in rounds.samples]
    return rounds, per_round
