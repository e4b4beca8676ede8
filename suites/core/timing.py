"""Timing: warm-up then per-iteration samples, with an injectable timer (CPU clock or CUDA events).

A timer has ``sync()`` (wait for the device), ``start() -> token`` and ``stop(token) -> ms``.
:func:`measure` never times the first call, warms up for a wall-clock budget, then collects at
least ``min_samples`` samples and at least ``min_time`` seconds of them. Python's garbage
collector is paused during the timed region so that it cannot land inside a sample, and every
measuring entry point runs with room on CPython's frame stack (:mod:`suites.core.stackroom`), so that
the depth a loop happens to run at cannot make each call allocate and free a stack chunk.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from suites.core.measurement import SPREAD_LIMIT, Measurement, median_ci, percentile  # noqa: F401  (re-exported)
from suites.core.stackroom import with_headroom


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
    from suites.core.devices import is_cuda
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


def summarize(samples_ms: list[float]) -> dict[str, float | int]:
    """The latency columns of one burst of samples (a single round: the interval is the samples')."""
    return Measurement([list(samples_ms)]).summary()


STALL_FACTOR = 5.0      # a sample above this multiple of the running median is a stall
PAUSE_FLOOR_MS = 100.0  # untimed time between two samples above this (and STALL_FACTOR x the median) is a pause


class StallFilter:
    """Stalls detected while sampling: a sample above ``factor`` times the running median (of the
    last 64 kept, once 10 exist) is counted and not kept; a pause of the process between two samples
    (see :meth:`pause`) is counted too."""

    def __init__(self, factor: float = STALL_FACTOR):
        self.factor, self.kept, self.n_stalls = factor, [], 0
        self.n_pauses, self.longest_pause_ms = 0, 0.0
        self._recent: list[float] = []

    def add(self, ms: float) -> bool:
        """Keep ``ms`` unless it is a stall; True when kept."""
        if len(self._recent) >= 10 and ms > self.factor * statistics.median(self._recent[-64:]):
            self.n_stalls += 1
            return False
        self._recent.append(ms)
        del self._recent[:-64]
        return True

    def pause(self, gap_ms: float) -> None:
        """Count ``gap_ms`` of untimed time between two samples as a stall when it exceeds
        ``PAUSE_FLOOR_MS`` and ``factor`` times the running median: the process was stopped or
        descheduled outside the timed work, so no sample shows it, yet the cell was disturbed."""
        median = statistics.median(self._recent[-64:]) if self._recent else 0.0
        if gap_ms > max(PAUSE_FLOOR_MS, self.factor * median):
            self.n_stalls += 1
            self.n_pauses += 1
            self.longest_pause_ms = max(self.longest_pause_ms, gap_ms)

    def notes(self) -> list[str]:
        """What the filter removed or saw, for a Measurement's notes."""
        out = []
        if self.n_stalls > self.n_pauses:
            out.append(f"{self.n_stalls - self.n_pauses} stall(s) above {self.factor:g}x the median removed")
        if self.n_pauses:
            out.append(f"{self.n_pauses} pause(s) of the process between samples (longest "
                       f"{self.longest_pause_ms:.0f} ms) counted as stalls; no sample held them")
        return out

    def early_stalls(self, rounds: list[list[float]]) -> list[list[float]]:
        """``rounds`` without the stalls among the first samples (before a running median existed)."""
        flat = [s for r in rounds for s in r]
        if not flat:
            return rounds
        limit = self.factor * statistics.median(flat)
        out = [[s for s in r if s <= limit] for r in rounds]
        self.n_stalls += len(flat) - sum(len(r) for r in out)
        return out


def sample_stable(fn: Callable[[], Any], timer: Timer, *, min_time: float, min_samples: int,
                  max_extra_time: float, spread_limit: float = SPREAD_LIMIT, stall_factor: float = STALL_FACTOR,
                  max_samples: int = 100_000, clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Per-iteration times (ms) of one cell alone (the sequential protocol), stalls detected while sampling.

    A stall (see :class:`StallFilter`) is counted, not kept, and replaced by sampling on. After
    ``min_time`` and ``min_samples``, sampling continues (at most ``max_extra_time`` more seconds)
    until the median's interval is within ``spread_limit`` of the median. The result is one round.
    """
    stalls = StallFilter(stall_factor)
    kept: list[float] = []
    with gc_paused():
        timer.sync()
        start = clock()
        t_end = start + min_time
        deadline = t_end + max_extra_time
        last = start
        while len(kept) + stalls.n_stalls < max_samples:
            token = timer.start()
            fn()
            ms = timer.stop(token)
            if stalls.add(ms):
                kept.append(ms)
            now = clock()
            stalls.pause((now - last) * 1e3 - ms)       # the loop's untimed part, this check included
            last = now
            if len(kept) >= min_samples and now >= t_end:
                if Measurement([kept]).spread <= spread_limit or now >= deadline:
                    break
        resampled = max(0.0, clock() - t_end)
    rounds = stalls.early_stalls([kept])
    return Measurement(rounds, stalls.n_stalls, [start], resampled_s=resampled, clock_offset=time.time() - clock(),
                       notes=stalls.notes())


def trusted(m: Measurement) -> dict[str, Any]:
    """The row fields of a :class:`Measurement`: the latency columns, ``stable``, ``warnings``, the
    raw ``samples`` and ``protocol``."""
    stable, reasons = m.verdict()
    return {**m.summary(), "stable": stable, "warnings": reasons, "samples": m.samples, "protocol": m.protocol}


@with_headroom
def measure_stable(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
                   min_samples: int = 30, max_extra_time: float | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Warm up, then :func:`sample_stable` (re-sampling for at most ``max_extra_time``, default
    twice ``min_time`` plus one second)."""
    warm_up(fn, timer, warmup, clock=clock)
    extra = 2 * min_time + 1.0 if max_extra_time is None else max_extra_time
    return sample_stable(fn, timer, min_time=min_time, min_samples=min_samples, max_extra_time=extra, clock=clock)


@with_headroom
def measure_rounds_stable(fn: Callable[[], Any], timer: Timer, *, warmup: float = 0.5, min_time: float = 1.0,
                          min_rounds: int = 5, clock: Callable[[], float] = time.perf_counter
                          ) -> tuple[Measurement, int]:
    """Throughput timing with stall handling: rounds of back-to-back calls (one synchronisation per
    round), each round a sample of :func:`sample_stable` in ms per call; returns (rounds, calls per round)."""
    _, per_call = warm_up(fn, timer, warmup, clock=clock)
    per_round = max(1, min(1000, int(min_time / max(min_rounds, 1) / max(per_call, 1e-9))))

    def one_round() -> None:
        for _ in range(per_round):
            fn()
    rounds = sample_stable(one_round, timer, min_time=min_time, min_samples=min_rounds,
                           max_extra_time=2 * min_time + 1.0, clock=clock)
    rounds.rounds = [[ms / per_round for ms in r] for r in rounds.rounds]
    rounds.calls_per_sample = per_round
    return rounds, per_round


class Skip(Exception):
    """Raised by a suite's ``bench`` when it does not measure the cell: a skipped row with this reason."""

    def __init__(self, reason: str, **fields: Any):
        super().__init__(reason)
        self.fields = fields

    def result(self) -> dict[str, Any]:
        return {"status": "skipped", "error": str(self), **self.fields}


@dataclass
class Bench:
    """A cell ready to be timed: ``call`` is one timed unit (a forward, a training step, an op call),
    ``timer`` times and synchronises it, ``finish`` turns the cell's :class:`Measurement` into the
    row's fields. ``batched``: a sample is several back-to-back calls with one synchronisation
    (throughput), not one call. ``scope`` is what the calls run under (inference mode, autocast)."""
    call: Callable[[], Any]
    timer: Timer
    finish: Callable[[Measurement], dict[str, Any]]
    batched: bool = False
    scope: Callable[[], AbstractContextManager[Any]] = nullcontext   # entered around every burst


@with_headroom
def measure_alone(bench: Bench, *, warmup: float, min_time: float, min_samples: int,
                  clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """The sequential protocol: warm up, then time this cell alone (one round)."""
    with bench.scope():
        return _measure_alone(bench, warmup=warmup, min_time=min_time, min_samples=min_samples, clock=clock)


def _measure_alone(bench: Bench, *, warmup: float, min_time: float, min_samples: int,
                   clock: Callable[[], float]) -> Measurement:
    if bench.batched:
        return measure_rounds_stable(bench.call, bench.timer, warmup=warmup, min_time=min_time, min_rounds=5,
                                     clock=clock)[0]
    return measure_stable(bench.call, bench.timer, warmup=warmup, min_time=min_time, min_samples=min_samples,
                          clock=clock)
