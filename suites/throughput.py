"""Throughput suite: images/s at one batch size, from rounds of back-to-back forwards with one
synchronisation per round; on CUDA, energy per image from NVML power samples over the timed rounds.
Without ``--batch-sizes`` it is an out-of-memory ladder: powers of two up to ``--max-batch``."""
from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from typing import Any

from suites import engines
from suites.core import timing
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.interleave import sequential
from suites.core.registry import Suite, register
from suites.core.telemetry import PowerSampler


@contextlib.contextmanager
def bench(cell: Cell, ctx: Context) -> Iterator[timing.Bench]:
    sampler = PowerSampler(int(cell.device.split(":")[1])) if is_cuda(cell.device) else None
    metered = sampler is not None and sampler.available
    with engines.get(cell.engine).prepare(cell, ctx, throughput=True) as step, (sampler if metered else contextlib.nullcontext()):
        def finish(m: timing.Measurement) -> dict[str, Any]:
            rounds = m.samples
            ms_per_batch = statistics.median(rounds)
            images = step.images_per_run or cell.batch_size
            stable, reasons = m.verdict()
            out: dict[str, Any] = {
                "throughput_img_s": images * 1000.0 / ms_per_batch, "params_m": step.params / 1e6,
                "parity_rel": step.parity_rel, "n_samples": len(rounds), "samples": rounds, "stable": stable,
                "warnings": reasons, "protocol": m.protocol,
                "extra": {**m.facts(), "ms_per_run_median": ms_per_batch, "images_per_run": images, **step.info}}
            if metered:
                energy = energy_fields(sampler, m, images)
                out["extra"].update(energy.pop("extra", {}))
                out.update(energy)
            return out
        yield timing.Bench(step.run, step.timer, finish, batched=True, scope=step.scope)


def energy_fields(sampler: PowerSampler, m: timing.Measurement, batch_size: int) -> dict[str, Any]:
    """energy_j_per_img over the timed samples: each round's window starts at its recorded start and
    lasts as long as its samples (other cells' bursts of an interleaved group lie outside them)."""
    joules, images, powers = 0.0, 0, []
    for start, samples in zip(m.starts, m.rounds):
        end = start + sum(samples) * m.calls_per_sample / 1000.0
        j = sampler.energy(start, end)
        if j is None:
            return {}
        joules += j
        images += len(samples) * m.calls_per_sample * batch_size
        powers += [p for t, p in sampler.samples if start <= t <= end]
    if images == 0:
        return {}
    return {"energy_j_per_img": joules / images,
            "extra": {"energy_j": joules, "power_w_mean": statistics.fmean(powers) if powers else None,
                      "power_samples": len(powers)}}


SUITE = register(Suite("throughput", sequential(bench), __name__, "images per second at each batch size (an out-of-memory ladder)",
                       plan="ladder", timed=True, bench=bench))
