"""Throughput suite: images/s at one batch size, from rounds of back-to-back forwards with one
synchronisation per round; on CUDA, energy per image from NVML power samples over the timed rounds.
Without ``--batch-sizes`` it is an out-of-memory ladder: powers of two up to ``--max-batch``."""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import engines
from suites import timing
from suites.cell import Cell, Context
from suites.devices import is_cuda
from suites.registry import Suite, register
from suites.telemetry import PowerSampler


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    sampler = PowerSampler(int(cell.device.split(":")[1])) if is_cuda(cell.device) else None
    metered = sampler is not None and sampler.available
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        with sampler if metered else contextlib.nullcontext():
            t0 = time.perf_counter()
            sampled, per_round = timing.measure_rounds_stable(step.run, step.timer, warmup=cell.warmup,
                                                              min_time=cell.min_time, min_rounds=5)
            t1 = time.perf_counter()
    rounds = sampled.samples
    ms_per_batch = statistics.median(rounds)
    images = step.images_per_run or cell.batch_size
    out: dict[str, Any] = {"throughput_img_s": images * 1000.0 / ms_per_batch, "params_m": step.params / 1e6,
                           "parity_rel": step.parity_rel, "n_samples": len(rounds), "samples": rounds,
                           "stable": sampled.stable, "warnings": sampled.reasons,
                           "extra": {"calls_per_round": per_round, "ms_per_run_median": ms_per_batch,
                                     "images_per_run": images, "n_stalls": sampled.n_stalls,
                                     "resampled_s": sampled.resampled_s, **step.info}}
    if metered:
        energy = energy_fields(sampler, rounds, per_round, images, t0, t1)
        out["extra"].update(energy.pop("extra", {}))
        out.update(energy)
    return out


def energy_fields(sampler: PowerSampler, rounds_ms: list[float], per_round: int, batch_size: int,
                  t_start: float, t_end: float) -> dict[str, Any]:
    """energy_j_per_img over the timed rounds (the last ``sum(rounds)`` ms of the window)."""
    timed_s = sum(rounds_ms) * per_round / 1000.0
    start = max(t_start, t_end - timed_s)
    joules = sampler.energy(start, t_end)
    images = len(rounds_ms) * per_round * batch_size
    if joules is None or images == 0:
        return {}
    powers = [p for t, p in sampler.samples if start <= t <= t_end]
    return {"energy_j_per_img": joules / images,
            "extra": {"energy_j": joules, "power_w_mean": statistics.fmean(powers) if powers else None,
                      "power_samples": len(powers)}}


SUITE = register(Suite("throughput", run, __name__, "images per second at each batch size (an out-of-memory ladder)",
                       plan="ladder", engines=engines.ENGINES, timed=True))
