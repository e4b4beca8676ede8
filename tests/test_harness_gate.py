"""The benchmark gate's rule: normalised by calibration, tolerant of a uniformly slower machine,
failing on a real slowdown, reporting benchmarks without a baseline entry."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("gate_under_test", Path(__file__).parent / "benchmarks" / "gate.py")
gate = importlib.util.module_from_spec(_spec)
sys.modules["gate_under_test"] = gate
_spec.loader.exec_module(gate)

CT, CP = gate.CALIBRATIONS["torch"], gate.CALIBRATIONS["python"]
A, B = "tests/benchmarks/test_x.py::test_a", "tests/benchmarks/test_x.py::test_b[1]"


def _run(scale: float = 1.0, a: float = 0.010, b: float = 0.002) -> dict:
    return {CT: gate.Measured(0.001 * scale, 0.001 * scale), CP: gate.Measured(0.004 * scale, 0.004 * scale, "python"),
            A: gate.Measured(a * scale, a * scale), B: gate.Measured(b * scale, b * scale, "python")}


def test_refresh_then_same_machine_passes(tmp_path):
    base = gate.refreshed(_run(), {})
    gate.save_baseline(base, tmp_path / "b.json")
    base = gate.load_baseline(tmp_path / "b.json")
    assert base["benchmarks"][A]["normalised"] == pytest.approx(10.0)
    assert base["benchmarks"][B]["normalised"] == pytest.approx(0.5)
    assert [v.status for v in gate.evaluate(_run(), base, 0.5)] == ["pass", "pass"]


def test_twice_as_slow_machine_passes_but_real_slowdown_fails():
    base = gate.refreshed(_run(), {})
    assert {v.status for v in gate.evaluate(_run(scale=2.0), base, 0.5)} == {"pass"}
    verdicts = {v.nodeid: v for v in gate.evaluate(_run(a=0.02), base, 0.5)}   # test_a 2x slower on its own
    assert verdicts[A].status == "fail" and verdicts[A].ratio == pytest.approx(2.0)
    assert verdicts[B].status == "pass"
    assert "FAIL" in verdicts[A].line() and "limit 1.50x" in verdicts[A].line()
    assert gate.evaluate(_run(a=0.014), base, 0.5)[0].status == "pass"     # 1.4x: within tolerance


def test_missing_entries_and_calibrations_are_reported_not_gated():
    base = gate.refreshed({CT: gate.Measured(0.001, 0.001), A: gate.Measured(0.01, 0.01)}, {})
    verdicts = {v.nodeid: v.status for v in gate.evaluate(_run(), base, 0.5)}
    assert verdicts == {A: "pass", B: "new"}
    no_calib = {A: gate.Measured(0.01, 0.01)}
    assert [v.status for v in gate.evaluate(no_calib, base, 0.5)] == ["no-calibration"]


def test_refresh_keeps_entries_of_benchmarks_that_did_not_run():
    old = gate.refreshed(_run(), {})
    new = gate.refreshed({CT: gate.Measured(0.001, 0.001), A: gate.Measured(0.03, 0.03)}, old)
    assert new["benchmarks"][A]["normalised"] == pytest.approx(30.0)
    assert new["benchmarks"][B] == old["benchmarks"][B]


def test_noisy_calibration_turns_failures_into_warnings():
    base = gate.refreshed(_run(), {})
    run = _run(a=0.02)
    run[CT] = gate.Measured(0.001, 0.003)          # median 3x min: another load shared the machine
    verdicts = {v.nodeid: v for v in gate.evaluate(run, base, 0.5)}
    assert verdicts[A].status == "noisy" and "not gated" in verdicts[A].line()
    assert gate.noisy_calibrations(run) == ["torch"]
    refreshed = gate.refreshed(run, {})
    assert A not in refreshed["benchmarks"] and B in refreshed["benchmarks"]


def test_tolerance_from_environment(monkeypatch):
    monkeypatch.setenv("LSNET_BENCH_GATE_TOLERANCE", "0.25")
    assert gate.tolerance() == 0.25
