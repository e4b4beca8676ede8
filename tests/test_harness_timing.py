"""The timing loop with an injected timer and clock: warm-up, sample counts, statistics."""
from __future__ import annotations

import gc
import sys
import statistics

import numpy as np
import pytest

from suites.core import timing


class FakeTimer:
    """Counts syncs; each sample measures a fixed 2 ms."""

    def __init__(self):
        self.syncs = 0
        self.started = 0

    def sync(self):
        self.syncs += 1

    def start(self):
        self.started += 1
        return self.started

    def stop(self, token):
        assert token == self.started
        return 2.0


class FakeClock:
    """Advances 10 ms per call made by the function under test."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_measure_never_times_the_first_call_and_respects_min_samples():
    calls = []
    timer, clock = FakeTimer(), FakeClock()

    def fn():
        calls.append(gc.isenabled())
        clock.t += 0.01

    samples = timing.measure(fn, timer, warmup=0.05, min_time=0.0, min_samples=7, clock=clock)
    assert samples == [2.0] * 7
    assert timer.started == 7                       # only timed calls start the timer
    assert len(calls) >= 7 + 1 + 5                  # first call + >= 50 ms of 10 ms warm-up calls + samples
    assert calls[-7:] == [False] * 7 and calls[0]   # GC paused while sampling only
    assert gc.isenabled()
    assert timer.syncs >= 3


def test_measure_runs_until_min_time():
    timer, clock = FakeTimer(), FakeClock()

    def fn():
        clock.t += 0.01

    samples = timing.measure(fn, timer, warmup=0.0, min_time=0.5, min_samples=3, clock=clock)
    assert 49 <= len(samples) <= 52


def test_measure_rounds_sizes_rounds_from_warmup():
    timer, clock = FakeTimer(), FakeClock()

    def fn():
        clock.t += 0.01

    rounds, per_round = timing.measure_rounds(fn, timer, warmup=0.1, min_time=1.0, min_rounds=5, clock=clock)
    assert per_round == 20                           # 1 s / 5 rounds / 10 ms per call
    assert len(rounds) >= 5
    assert all(r == pytest.approx(2.0 / per_round) for r in rounds)


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    xs = list(rng.gamma(2.0, 3.0, size=101))
    s = timing.summarize(xs)
    for q in (50, 90, 99):
        assert s[f"latency_ms_p{q}"] == pytest.approx(np.percentile(xs, q))
    assert s["latency_ms_mean"] == pytest.approx(statistics.fmean(xs))
    assert s["latency_ms_std"] == pytest.approx(statistics.stdev(xs))
    assert s["n_samples"] == 101


def test_cpu_timer_measures_real_time():
    import time
    t = timing.CpuTimer()
    tok = t.start()
    time.sleep(0.01)
    assert 9.0 <= t.stop(tok) < 200.0


def test_timer_for_picks_cuda_events_only_on_cuda():
    assert isinstance(timing.timer_for("cpu"), timing.CpuTimer)
    assert timing.CudaEventTimer.__init__  # importable on CPU-only builds


def _chain(n: int) -> int:
    return 0 if n == 0 else _chain(n - 1)


def _at_depth(k: int, fn):
    return fn() if k == 0 else _at_depth(k - 1, fn)


def _max_faults_per_depth(measure, calls: int = 400) -> int:
    """The most minor page faults one measuring call took, over 300 starting call depths (a fresh
    frame-stack chunk is a fresh page: one fault each time a call crosses into one)."""
    import resource

    def one() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        measure(lambda: _chain(20), timing.CpuTimer(), warmup=0, min_time=0, min_samples=calls)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return max(_at_depth(k, one) for k in range(300))


def test_measuring_loops_never_cross_a_frame_stack_chunk_per_call():
    calls = 400
    assert _max_faults_per_depth(timing.measure, calls) < calls // 10
    if sys.version_info < (3, 13):       # the thrashing the headroom prevents (python/cpython#142183)
        assert _max_faults_per_depth(timing.measure.__wrapped__, calls) >= calls // 2
