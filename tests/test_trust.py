"""Rows say how far to trust them: the median's interval, stalls detected while sampling (and
re-sampled or flagged), other processes' CPU use, repeats in fresh processes, host facts and CPU
warnings. Deterministic with injected timers and clocks; one real fault test (SIGSTOP mid-cell)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suites.sweep.runtime import combine_repeats
from suites.core import contention, hostinfo, timing

ROOT = Path(__file__).resolve().parent.parent


class ScriptedTimer:
    """Returns the scripted sample times (ms) in order, then the last one forever; the clock advances
    by each sample."""

    def __init__(self, script: list[float], clock: "Clock"):
        self.script, self.i, self.clock = script, 0, clock

    def sync(self):
        pass

    def start(self):
        return None

    def stop(self, token):
        ms = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        self.clock.t += ms / 1000
        return ms


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _sample(script: list[float], min_time=0.2, min_samples=30, extra=1.0) -> timing.Sampled:
    clock = Clock()
    return timing.sample_stable(lambda: None, ScriptedTimer(script, clock), min_time=min_time,
                                min_samples=min_samples, max_extra_time=extra, clock=clock)


def test_median_interval_is_distribution_free():
    assert timing.median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)                 # few samples: the range
    lo, hi = timing.median_ci([float(i) for i in range(100)])
    assert (lo, hi) == (39.0, 59.0)                                         # ranks 50 -+ 9.8
    row = timing.summarize([float(i) for i in range(100)])
    assert row["latency_ms_ci_low"] <= row["latency_ms_p50"] <= row["latency_ms_ci_high"]


def test_clean_samples_are_stable():
    s = _sample([10.0, 10.1, 9.9] * 40)
    assert s.stable and s.n_stalls == 0 and not s.reasons and len(s.samples) >= 30


def test_an_injected_stall_is_removed_and_resampled():
    clean = _sample([10.0, 10.2, 9.8] * 40)
    script = [10.0, 10.2, 9.8] * 5 + [1500.0] + [10.0, 10.2, 9.8] * 40        # a 1.5 s stall mid-cell
    hit = _sample(script)
    assert hit.n_stalls == 1 and 1500.0 not in hit.samples and hit.stable
    p50 = timing.summarize(hit.samples)["latency_ms_p50"]
    assert abs(p50 / timing.summarize(clean.samples)["latency_ms_p50"] - 1) < 0.10
    assert "1 stall(s) above 5x the median removed" in hit.reasons[0]


class PausingClock(Clock):
    """A clock that jumps ``pause_s`` forward on its ``at``-th reading: the process stopped between samples."""

    def __init__(self, at: int, pause_s: float):
        super().__init__()
        self.calls, self.at, self.pause_s = 0, at, pause_s

    def __call__(self):
        self.calls += 1
        if self.calls == self.at:
            self.t += self.pause_s
        return self.t


def test_a_pause_between_samples_is_counted_though_no_sample_holds_it():
    clock = PausingClock(at=20, pause_s=1.5)
    hit = timing.sample_stable(lambda: None, ScriptedTimer([10.0, 10.2, 9.8] * 60, clock), min_time=0.2,
                               min_samples=30, max_extra_time=1.0, clock=clock)
    assert hit.n_stalls == 1 and max(hit.samples) < 11 and hit.stable
    assert "1 pause(s) of the process between samples (longest 1500 ms)" in hit.reasons[0]
    clock = PausingClock(at=20, pause_s=0.04)
    calm = timing.sample_stable(lambda: None, ScriptedTimer([10.0] * 60, clock), min_time=0.2,
                                min_samples=30, max_extra_time=1.0, clock=clock)
    assert calm.n_stalls == 0                       # 40 ms of untimed time is under the 100 ms floor


def test_a_stall_among_the_first_samples_is_caught_afterwards():
    hit = _sample([2000.0] + [10.0] * 60)
    assert hit.n_stalls == 1 and max(hit.samples) == 10.0


def test_two_speeds_never_settle_and_are_flagged():
    bimodal = _sample([10.0, 25.0] * 400, extra=0.5)
    assert not bimodal.stable and "interval" in bimodal.reasons[-1] and bimodal.resampled_s > 0.4


def test_many_stalls_are_flagged_even_when_removed():
    s = _sample(([10.0] * 9 + [100.0]) * 20)
    assert not s.stable and any("stalls were" in r for r in s.reasons)


def test_contention_shares_from_proc_stat():
    stats = iter([(100.0, 0.0, 200.0), (101.5, 0.2, 202.0)])     # 1.5 s busy, 0.2 s stolen over 2 s total
    own = iter([10.0, 10.5])                                     # this process used 0.5 s of it
    clock = iter([0.0, 1.0])
    meter = contention.CpuContention(reader=lambda: next(stats), own=lambda: next(own), clock=lambda: next(clock))
    shares = meter.stop()
    cpus = len(os.sched_getaffinity(0))
    assert shares["other_cpu_share"] == pytest.approx(1.0 / cpus) and shares["steal_share"] == pytest.approx(0.1)
    assert "the hypervisor stole 10%" in contention.contention_note(shares)
    assert contention.contention_note({"other_cpu_share": 0.05, "steal_share": 0.0}) is None
    busy, steal, total = contention.read_proc_stat("cpu  100 0 50 800 10 0 5 7 0 0\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert (busy, steal, total) == pytest.approx((155 / hz, 7 / hz, 972 / hz))
    real = contention.CpuContention().stop()
    assert 0 <= real["other_cpu_share"] <= 1 and 0 <= real["steal_share"] <= 1


def test_host_facts_and_cpu_warnings():
    flags = hostinfo.cpu_flags("processor: 0\nflags\t\t: fpu avx2 avx512f fma\n")
    assert flags == {"fpu", "avx2", "avx512f", "fma"}
    w = hostinfo.cpu_warnings(4, "float16", "cpu", flags=flags, cores=2)
    assert w[0] == "oversubscribed: 4 threads on 2 usable cores" and "without float16 arithmetic" in w[1]
    assert hostinfo.cpu_warnings(1, "bfloat16", "cpu", flags=flags | {"amx_bf16"}, cores=2) == []
    assert hostinfo.cpu_warnings(64, "float16", "cuda:0", flags=flags, cores=2) == []
    facts = hostinfo.host_facts()
    assert set(facts) >= {"isa", "governor", "onednn", "mkl", "parallel", "env", "affinity", "loadavg"}
    assert hostinfo.parse_cores("0,2-3") == [0, 2, 3]
    with pytest.raises(ValueError, match="not a core number"):
        hostinfo.parse_cores("a-b")
    before = os.sched_getaffinity(0)
    with hostinfo.pinned([min(before)]):
        assert os.sched_getaffinity(0) == {min(before)}
    assert os.sched_getaffinity(0) == before


def _outcome(p50: float, samples: list[float], stable: bool = True) -> dict:
    return {"result": {"status": "ok", "latency_ms_p50": p50, "samples": samples, "stable": stable, "warnings": []},
            "machine": {"host": "h", "device_name": "d", "threads": 1}}


def test_repeats_pool_samples_and_report_the_between_process_spread():
    outs = [_outcome(10.0, [10.0] * 30), _outcome(10.2, [10.2] * 30), _outcome(10.1, [10.1] * 30)]
    res = combine_repeats(outs)["result"]
    assert res["n_samples"] == 90 and res["latency_ms_p50"] == pytest.approx(10.1)
    assert res["latency_ms_ci_low"] <= 10.0 and res["latency_ms_ci_high"] >= 10.2
    assert res["extra"]["repeats"]["between_process_spread"] == pytest.approx(0.2 / 10.1) and res["stable"]
    split = combine_repeats([_outcome(10.0, [10.0] * 30), _outcome(20.0, [20.0] * 30)])["result"]
    assert not split["stable"] and "differ by" in split["warnings"][-1]
    failed = combine_repeats([_outcome(1.0, [1.0]), {"result": {"status": "error", "error": "boom"},
                                                    "machine": {}}])["result"]
    assert failed["status"] == "error" and "1 of 2 repeats failed; first: boom" in failed["error"]


STALL_SCRIPT = """
import json, sys, time, torch
from suites.core import timing
torch.set_num_threads(1)
a = torch.randn(160, 160)
fn = lambda: a @ a @ a
timing.warm_up(fn, timing.CpuTimer(), 0.2)
print("sampling", flush=True)
s = timing.sample_stable(fn, timing.CpuTimer(), min_time=float(sys.argv[1]), min_samples=30, max_extra_time=3.0)
print(json.dumps({"p50": timing.summarize(s.samples)["latency_ms_p50"], "stable": s.stable,
                  "stalls": s.n_stalls, "max": max(s.samples)}))
"""


def _measure(min_time: float, stop_after: float | None) -> dict:
    """A real measurement in a subprocess, SIGSTOPped for 1.5 s ``stop_after`` s into its sampling."""
    proc = subprocess.Popen([sys.executable, "-c", STALL_SCRIPT, str(min_time)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "sampling"
    if stop_after is not None:
        time.sleep(stop_after)
        proc.send_signal(signal.SIGSTOP)            # the measuring process stalls for 1.5 s mid-cell
        time.sleep(1.5)
        proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_a_process_stopped_mid_cell_is_never_a_silent_ok():
    clean = _measure(1.5, None)
    hit = _measure(1.5, 0.3)
    assert hit["max"] < 1000 and clean["max"] < 1000      # the 1.5 s sample never stays in the row
    assert hit["stalls"] >= 1, (clean, hit)               # inside a sample or between two, it is counted
