"""Latency suite: per-iteration forward times after warm-up; p50/p90/p99/mean/std of the samples."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from suites import engines
from suites.core import timing
from suites.core.cell import Cell, Context
from suites.interleave import sequential
from suites.core.registry import Suite, register


@contextlib.contextmanager
def bench(cell: Cell, ctx: Context) -> Iterator[timing.Bench]:
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        def finish(m: timing.Measurement) -> dict:
            return {**timing.trusted(m), "params_m": step.params / 1e6, "parity_rel": step.parity_rel,
                    "extra": {"timer": type(step.timer).__name__, **m.facts(), **step.info}}
        yield timing.Bench(step.run, step.timer, finish, scope=step.scope)


SUITE = register(Suite("latency", sequential(bench), __name__, "per-forward latency percentiles after warm-up",
                       timed=True, bench=bench))
