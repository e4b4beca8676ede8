"""The benchmark regression gate: compare each benchmark, normalised by a calibration benchmark
measured in the same run, with the baseline stored in ``baseline.json``.

normalised = min time of the benchmark / min time of its calibration benchmark (``torch``: a
fixed conv/matmul workload at the same thread count; ``python``: a fixed interpreter workload).
A benchmark fails when its normalised time exceeds the baseline's by more than the tolerance
(``LSNET_BENCH_GATE_TOLERANCE``, default 0.5, i.e. 1.5x). A machine uniformly twice as slow
doubles both times and passes; a real slowdown of one path fails. Benchmarks without a baseline
entry are reported, not gated. ``LSNET_BENCH_REFRESH=1`` rewrites the baseline from this run.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).with_name("baseline.json")
CALIBRATIONS = {
    "torch": "tests/benchmarks/test_bench_calibration.py::test_calibration_torch",
    "python": "tests/benchmarks/test_bench_calibration.py::test_calibration_python",
}
DEFAULT_TOLERANCE = 0.5
NOISE_LIMIT = 2.0   # calibration median / min above this: the machine is too noisy to judge


@dataclass(frozen=True)
class Measured:
    """One benchmark of this run: its min and median seconds and which calibration normalises it."""
    min_s: float
    median_s: float
    calibration: str = "torch"


@dataclass(frozen=True)
class Verdict:
    nodeid: str
    status: str            # pass | fail | new | no-calibration | noisy
    ratio: float | None = None   # normalised now / normalised baseline
    limit: float | None = None

    def line(self) -> str:
        if self.status in ("pass", "fail"):
            return f"{self.status.upper():4} {self.nodeid}: {self.ratio:.2f}x baseline (limit {self.limit:.2f}x)"
        if self.status == "noisy":
            return (f"WARN {self.nodeid}: {self.ratio:.2f}x baseline (limit {self.limit:.2f}x) but the calibration "
                    f"was too noisy to judge (median/min > {NOISE_LIMIT}); not gated")
        if self.status == "new":
            return f"NEW  {self.nodeid}: no baseline entry (not gated; refresh the baseline to gate it)"
        return f"SKIP {self.nodeid}: its calibration benchmark did not run"


def tolerance() -> float:
    return float(os.environ.get("LSNET_BENCH_GATE_TOLERANCE", DEFAULT_TOLERANCE))


def refresh_requested() -> bool:
    return os.environ.get("LSNET_BENCH_REFRESH", "") not in ("", "0")


def normalised(results: dict[str, Measured]) -> dict[str, float]:
    """Each non-calibration benchmark's min divided by its calibration's min (where that ran)."""
    calib = {kind: results[node].min_s for kind, node in CALIBRATIONS.items() if node in results}
    return {node: m.min_s / calib[m.calibration] for node, m in results.items()
            if node not in CALIBRATIONS.values() and m.calibration in calib and calib[m.calibration] > 0}


def noisy_calibrations(results: dict[str, Measured]) -> list[str]:
    """Calibration kinds whose median exceeds ``NOISE_LIMIT`` x their min (a machine under other load)."""
    return [kind for kind, node in CALIBRATIONS.items()
            if node in results and results[node].median_s > NOISE_LIMIT * results[node].min_s]


def evaluate(results: dict[str, Measured], baseline: dict[str, Any], tol: float | None = None) -> list[Verdict]:
    """A verdict for every benchmark of this run (calibrations excluded)."""
    tol = tolerance() if tol is None else tol
    noisy = set(noisy_calibrations(results))
    norm = normalised(results)
    entries = baseline.get("benchmarks", {})
    verdicts = []
    for node in sorted(results):
        if node in CALIBRATIONS.values():
            continue
        if node not in norm:
            verdicts.append(Verdict(node, "no-calibration"))
        elif node not in entries:
            verdicts.append(Verdict(node, "new"))
        else:
            ratio = norm[node] / entries[node]["normalised"]
            status = "pass" if ratio <= 1 + tol else ("noisy" if results[node].calibration in noisy else "fail")
            verdicts.append(Verdict(node, status, ratio, 1 + tol))
    return verdicts


def refreshed(results: dict[str, Measured], old: dict[str, Any]) -> dict[str, Any]:
    """The baseline rewritten from this run (entries of benchmarks that did not run are kept; benchmarks
    whose calibration was noisy are left out, since a noisy calibration would make a wrong baseline)."""
    norm = normalised(results)
    noisy = set(noisy_calibrations(results))
    entries = {k: v for k, v in old.get("benchmarks", {}).items() if k not in norm}
    for node, value in norm.items():
        if results[node].calibration in noisy:
            continue
        entries[node] = {"normalised": value, "min_s": results[node].min_s, "calibration": results[node].calibration}
    return {
        "about": "normalised = benchmark min / calibration min, both from one run; see tests/benchmarks/gate.py",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "calibration_min_s": {k: results[n].min_s for k, n in CALIBRATIONS.items() if n in results},
        "noisy_calibrations": sorted(noisy),
        "benchmarks": dict(sorted(entries.items())),
    }


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_baseline(doc: dict[str, Any], path: Path = BASELINE) -> None:
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
