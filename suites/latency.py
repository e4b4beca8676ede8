"""Latency suite: per-iteration forward times after warm-up; p50/p90/p99/mean/std of the samples."""
from __future__ import annotations

from typing import Any

import engines
from suites import timing
from suites.cell import Cell, Context
from suites.registry import Suite, register


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        sampled = timing.measure_stable(step.run, step.timer, warmup=cell.warmup, min_time=cell.min_time,
                                        min_samples=cell.min_samples)
    out = timing.trusted(sampled)
    return {**out, "params_m": step.params / 1e6, "parity_rel": step.parity_rel,
            "extra": {"timer": type(step.timer).__name__, **out.pop("stalls"), **step.info}}


SUITE = register(Suite("latency", run, __name__, "per-forward latency percentiles after warm-up",
                       engines=engines.ENGINES, timed=True))
