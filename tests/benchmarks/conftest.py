"""Benchmark gate wiring: record every benchmark's stats, then gate them against baseline.json at
the end of the session (the run fails on a real slowdown); ``LSNET_BENCH_REFRESH=1`` rewrites
the baseline instead. See gate.py for the rule and the README for the commands."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("lsnet_bench_gate", Path(__file__).with_name("gate.py"))
gate = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("lsnet_bench_gate", gate)
_spec.loader.exec_module(gate)

THREADS = 2  # benchmarks and their calibration run on 2 intra-op threads (the CI machine's cores)
_RESULTS = pytest.StashKey[dict]()


@pytest.fixture(autouse=True)
def _benchmark_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
_LINES = pytest.StashKey[list]()


@pytest.fixture(autouse=True)
def _record_benchmark(request):
    yield
    if "benchmark" not in request.fixturenames:
        return
    bench = request.node.funcargs.get("benchmark")
    stats = getattr(getattr(bench, "stats", None), "stats", None)
    if stats is None or not getattr(stats, "data", None):
        return   # benchmarks disabled or the benchmark did not run
    kind = bench.extra_info.get("calibration", "torch")
    request.config.stash.setdefault(_RESULTS, {})[request.node.nodeid] = gate.Measured(stats.min, stats.median, kind)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    results = session.config.stash.get(_RESULTS, {})
    if not results:
        return
    lines: list[str] = []
    if gate.refresh_requested():
        doc = gate.refreshed(results, gate.load_baseline())
        gate.save_baseline(doc)
        lines.append(f"baseline refreshed: {len(doc['benchmarks'])} entries in {gate.BASELINE}")
        for kind in gate.noisy_calibrations(results):
            lines.append(f"warning: the {kind} calibration was noisy (median > {gate.NOISE_LIMIT}x min); "
                         "its benchmarks were left out of the baseline; refresh again on a quiet machine")
    else:
        verdicts = gate.evaluate(results, gate.load_baseline())
        lines += [v.line() for v in verdicts]
        failed = [v for v in verdicts if v.status == "fail"]
        if failed:
            lines.append(f"benchmark gate FAILED: {len(failed)} benchmark(s) slower than the baseline allows")
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.stash[_LINES] = lines


def pytest_terminal_summary(terminalreporter):
    lines = terminalreporter.config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("benchmark gate")
        for line in lines:
            terminalreporter.write_line(line)
