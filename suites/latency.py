"""Latency suite: per-iteration forward times after warm-up; p50/p90/p99/mean/std of the samples."""
from __future__ import annotations

from typing import Any

from suites import runtime, timing
from suites.cell import Cell
from suites.counting import count_params
from suites.devices import is_cuda


def run(cell: Cell) -> dict[str, Any]:
    with runtime.inference_context(cell):
        prep = runtime.prepare(cell)
        samples = timing.measure(prep.step, timing.timer_for(cell.device), warmup=cell.warmup,
                                 min_time=cell.min_time, min_samples=cell.min_samples)
    return {**timing.summarize(samples), "threads": prep.threads, "params_m": count_params(prep.model) / 1e6,
            "samples": samples, "extra": {"timer": "cuda_events" if is_cuda(cell.device) else "perf_counter_ns"}}
