"""The profile suite on the console: a summary line per cell, and none of the profiler library's log lines."""
from __future__ import annotations

import os
import sys

import torch

from suites import profile


def _row(model: str, kinds: dict[str, float], status: str = "ok") -> dict:
    total_us = 5000.0
    return {"suite": "profile", "model": model, "engine": "eager", "device": "cpu", "dtype": "float32",
            "batch_size": 1, "status": status,
            "extra": {"profiled_steps": 5, "time_basis": "cpu",
                      "kinds": {k: {"share": s, "self_time_us": s * total_us, "calls": 1} for k, s in kinds.items()}}}


def test_console_summary_gives_time_per_forward_and_kinds_largest_first():
    text = profile.console_summary([_row("lsnet_t", {"conv": 0.5, "ska": 0.3, "norm": 0.2, "other": 0.0}),
                                    _row("starnet_s1", {"conv": 1.0}, status="error")])
    lines = text.splitlines()
    assert lines[0].startswith("profile (self time by operator kind")
    assert lines[1] == "  lsnet_t eager cpu float32 bs1: 1 ms cpu time per forward; conv 50%, ska 30%, norm 20%"
    assert len(lines) == 2                       # failed cells have no line; zero shares are left out
    assert profile.console_summary([]) == ""


def test_profiler_log_lines_do_not_reach_stderr_but_other_output_does(capfd):
    with profile.without_profiler_log():
        with torch.profiler.profile():
            torch.randn(8).sum()
        os.write(2, b"USDT:2026-12-02 20:35:12 387:387 SyncActivityProfilerHandler.cpp:52] profiler_start\n")
        os.write(2, b"a warning the user must see\n")
        print("from python", file=sys.stderr)
    err = capfd.readouterr().err
    assert "USDT:" not in err and "STAGE:" not in err
    assert "a warning the user must see\n" in err and "from python" in err
