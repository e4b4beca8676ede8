"""The interleaved protocol: the cells of a comparison measured round by round, so drift hits all alike.

The machine's speed drifts on a scale of seconds, so cells timed one after another land in
different phases of it and their ranking flips between runs. Here every cell of a group (cells of
one suite on one device that differ in model, engine, dtype or batch size) is prepared and warmed
once and kept ready; then each round visits every cell once, in a fresh random order, for a short
burst (``Cell.burst`` seconds). Rounds go on until every cell has ``min_time`` seconds of samples
and ``MIN_ROUNDS`` rounds, and then until every cell's interval and every ratio against the
reference are within ``precision`` (half-width, relative), or every cell has ``max_time`` seconds,
or the group's rounds have taken ``group_time`` seconds in all (the budget of a large group).

A cell's ratio to its reference (the same cell with the reference model: ``Suite.reference_of``)
comes from per-round paired ratios (:func:`suites.core.measurement.ratio_of`), in groups of twelve cells or
more of round medians corrected for the drift within a round (:func:`suites.core.measurement.drift_corrected`);
a ratio wider than the target makes the row unstable. Where the group does not fit in memory at once it is measured
in chunks, each with the reference cells prepared again. An out-of-memory ladder (throughput,
train) is interleaved across models at each batch size, and a model that runs out of memory skips
its larger batches. A cell that fails to prepare or run is a row; the group goes on without it.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

from suites.core import guards, procmem, timing
from suites.core.cell import Cell, Context, ladder_stop
from suites.core.measurement import (MIN_CELLS_FOR_DRIFT, Measurement, Ratio, drift_corrected, ratio_of,
                                round_values)
from suites.core.stackroom import with_headroom

MIN_ROUNDS = 10
MAX_ROUNDS = 100_000
MAX_CALLS_PER_BURST = 1000
MEMORY_FLOOR = 0.25       # a chunk takes no more cells once less than this share of memory is free
TRANSIENT_MARGIN = 2.0    # ... or less than this multiple of the largest forward's transient need of its cells


def calls_per_burst(per_call_s: float, burst: float) -> int:
    """Calls of one burst: ``burst`` seconds of them, at least one."""
    return max(1, min(MAX_CALLS_PER_BURST, round(burst / max(per_call_s, 1e-9))))


@with_headroom
def run_rounds(benches: dict[Hashable, timing.Bench], per_call: dict[Hashable, float],
               refs: dict[Hashable, Hashable | None], *, burst: float, min_time: float, max_time: float,
               precision: float, group_time: float = float("inf"), min_rounds: int = MIN_ROUNDS, min_samples: int = 1,
               clock: Callable[[], float] = time.perf_counter, rng: random.Random | None = None, progress: Callable[[int], None] | None = None
               ) -> tuple[dict[Hashable, Measurement], dict[Hashable, BaseException]]:
    """Interleaved rounds over ``benches`` (warm already; ``per_call`` seconds from their warm-up).

    Returns (a paired :class:`Measurement` per cell, the exception of each cell that failed).
    ``refs`` maps a cell to its reference cell (or None) for the precision target. Rounds go on until
    every cell has ``min_time`` seconds and ``min_rounds`` rounds, then stop at whichever comes first:
    every interval within ``precision``, the ``group_time`` budget, or ``max_time`` seconds of a cell;
    ``max_time`` never stops a cell below ``min(min_samples, min_rounds)`` kept samples.
    """
    rng = rng or random.Random()
    live = dict(benches)
    n = {k: calls_per_burst(per_call[k], burst) if b.batched else 1 for k, b in live.items()}   # calls per sample
    meas = {k: Measurement(paired=True, calls_per_sample=n[k]) for k in live}
    began = clock()
    stalls = {k: timing.StallFilter() for k in live}
    spent = dict.fromkeys(live, 0.0)
    failed: dict[Hashable, BaseException] = {}
    with timing.gc_paused():
        for r in range(MAX_ROUNDS):
            order = list(live)
            rng.shuffle(order)
            for k in order:
                b = live[k]
                t0 = clock()
                try:
                    with b.scope():
                        ms = _burst(b, n[k], burst, clock)
                except Exception as exc:  # noqa: BLE001  (a failing cell leaves the group as an error row)
                    failed[k] = exc
                    del live[k]
                    continue
                kept = [x for x in ms if stalls[k].add(x)]
                meas[k].rounds.append(kept)
                meas[k].starts.append(t0)
                spent[k] += clock() - t0
            if progress is not None:
                progress(r + 1)
            if not live or _done(meas, spent, live, refs, r + 1, min_time, max_time, min_rounds,
                                 min(min_samples, min_rounds), precision, clock() - began >= group_time):
                break
    for k, m in meas.items():
        m.rounds = stalls[k].early_stalls(m.rounds)
        m.n_stalls = stalls[k].n_stalls
        m.notes.extend(stalls[k].notes())
    return {k: m for k, m in meas.items() if k not in failed}, failed


def _burst(b: timing.Bench, n: int, seconds: float, clock: Callable[[], float]) -> list[float]:
    """One burst: samples of single calls for ``seconds`` (at least one), or, batched, one sample of
    ``n`` back-to-back calls (sized from the warm-up to last ``seconds``) with one synchronisation."""
    b.timer.sync()
    if b.batched:
        token = b.timer.start()
        for _ in range(n):
            b.call()
        return [b.timer.stop(token) / n]
    out: list[float] = []
    end = clock() + seconds
    while not out or (clock() < end and len(out) < MAX_CALLS_PER_BURST):
        token = b.timer.start()
        b.call()
        out.append(b.timer.stop(token))
    return out


def _done(meas: dict[Hashable, Measurement], spent: dict[Hashable, float], live: dict[Hashable, Any],
          refs: dict[Hashable, Hashable | None], rounds: int, min_time: float, max_time: float,
          min_rounds: int, min_samples: int, precision: float, group_spent: bool) -> bool:
    least = min(spent[k] for k in live)
    if least >= max_time and min(sum(map(len, meas[k].rounds)) for k in live) >= min_samples:
        return True
    if least < min_time or rounds < min_rounds:
        return False
    if group_spent:
        return True
    values = _round_values({k: meas[k] for k in live})
    for k in live:
        ref = refs.get(k)
        if ref is not None and ref != k and ref in live:
            ratio = ratio_of(values[k], values[ref])
            if ratio is None or ratio.half_width > precision:
                return False
        elif meas[k].spread / 2 > precision:      # no ratio judges it: its own interval must settle
            return False
    return True


def _round_values(meas: dict[Hashable, Measurement]) -> dict[Hashable, list[float | None]]:
    """The round medians ratios are taken of: drift-corrected in groups of ``MIN_CELLS_FOR_DRIFT`` or more."""
    if len(meas) >= MIN_CELLS_FOR_DRIFT:
        return drift_corrected(meas)
    return {k: round_values(m) for k, m in meas.items()}


def group_key(cell: Cell) -> Cell:
    """Cells with the same key are measured together: one suite on one device, at one resolution,
    thread count and sampling setting; they may differ in model, engine, dtype, batch size and options."""
    return cell.with_(model="", engine="", dtype="", batch_size=0, options=None)


def reference_model(models: Sequence[str], chosen: str | None = None) -> str | None:
    """``chosen`` when given, else ``lsnet_t`` when measured, else the first model."""
    if chosen:
        return chosen
    return "lsnet_t" if "lsnet_t" in models else (models[0] if models else None)


def run_group(cells: Sequence[Cell], ctx: Context, ladder: bool = False,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Measure ``cells`` (one group, see :func:`group_key`) interleaved; yield each cell's result.

    ``ladder``: the cells are out-of-memory ladders; each batch size is measured as one group after
    the smaller ones, without the models that ran out of memory.
    """
    from suites.core import registry
    suite = registry.get(cells[0].suite)
    stages = sorted({c.batch_size for c in cells}) if ladder else [None]
    stopped: dict[Cell, str] = {}      # a ladder's reason to skip its larger batches
    for stage in stages:
        todo = []
        for c in cells:
            if stage is not None and c.batch_size != stage:
                continue
            if _chain(c) in stopped:
                yield c, {"status": "skipped", "error": stopped[_chain(c)]}
                continue
            todo.append(c)
        for c, res in _measure_chunks(suite, todo, ctx, clock):
            reason = ladder_stop(ladder, c, res.get("status"))
            if reason:
                stopped[_chain(c)] = reason
            yield c, res


def _chain(cell: Cell) -> Cell:
    """The ladder a cell belongs to (the cell without its batch size)."""
    return cell.with_(batch_size=0)


def _measure_chunks(suite: Any, cells: list[Cell], ctx: Context,
                    clock: Callable[[], float]) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """The cells in chunks that fit in memory, each chunk with the reference cells of its members.

    A chunk stops taking cells once the free memory is below :data:`MEMORY_FLOOR` of the total or below
    :data:`TRANSIENT_MARGIN` times the largest transient need of a warm-up forward among its cells (at
    dense-prediction sizes one forward's activations can outgrow a fixed floor: the rounds run one cell
    at a time, so the largest need is what must stay free)."""
    refs = {c: suite.reference_of(c) for c in cells}
    members = set(cells)
    pending = sorted(cells, key=lambda c: refs[c] != c)      # reference cells first
    while pending:
        needed = [r for r in dict.fromkeys(refs[c] for c in pending) if r in members]
        queue = needed + [c for c in pending if c not in needed]
        total = guards.total_memory(cells[0].device)
        with contextlib.ExitStack() as stack:
            ready: dict[Cell, tuple[timing.Bench, float]] = {}
            results: dict[Cell, dict[str, Any]] = {}
            taken: list[Cell] = []
            largest = 0             # bytes: the largest transient need of a warm-up in this chunk
            for c in queue:
                if len(taken) > len(needed) and guards.available_memory(c.device) < max(
                        MEMORY_FLOOR * total, TRANSIENT_MARGIN * largest):
                    break
                taken.append(c)
                try:
                    bench = stack.enter_context(suite.bench(c, ctx))
                    with bench.scope(), procmem.transient(c.device) as need:
                        _, per_call = timing.warm_up(bench.call, bench.timer, c.warmup)
                    largest = max(largest, need.bytes or 0)
                    ready[c] = (bench, per_call)
                except timing.Skip as skip:
                    results[c] = skip.result()
                except Exception as exc:  # noqa: BLE001  (a cell that cannot be prepared is a row)
                    results[c] = guards.failure(exc)
            own = [c for c in taken if c in pending]        # a reference of an earlier chunk has its row
            pending = [c for c in pending if c not in taken]
            results.update(_measure_ready(ready, refs, clock, ctx))
            for c in own:
                yield c, results[c]


def _measure_ready(ready: dict[Cell, tuple[timing.Bench, float]], refs: dict[Cell, Cell],
                   clock: Callable[[], float], ctx: Context) -> dict[Cell, dict[str, Any]]:
    """The rounds over the prepared cells of one chunk, and each cell's result with its ratio."""
    if not ready:
        return {}
    first = next(iter(ready))
    bar = _progress_bar(ctx, f"rounds ({len(ready)} cells)")
    meas, failed = run_rounds({c: b for c, (b, _) in ready.items()}, {c: p for c, (_, p) in ready.items()},
                              {c: refs.get(c) for c in ready}, burst=first.burst, min_time=first.min_time,
                              max_time=first.max_time, precision=first.precision, group_time=first.group_time,
                              min_samples=first.min_samples, clock=clock,
                              progress=bar.update_to if bar is not None else None)
    if bar is not None:
        bar.close()
    wall0 = time.time() - clock()
    results = {c: guards.failure(exc) for c, exc in failed.items()}
    corrected = len(meas) >= MIN_CELLS_FOR_DRIFT
    values = _round_values(meas)
    for c, m in meas.items():
        ref = refs.get(c)
        ratio: Ratio | None = None
        if ref == c:
            ratio = Ratio(1.0, 1.0, 1.0, len(m.rounds))
        elif ref in meas:
            ratio = ratio_of(values[c], values[ref])
        m.judge_spread = ratio is None
        if ratio is not None and ratio.half_width > c.precision:
            m.stable_override = False
            m.notes.append(f"the ratio to {ref.model}'s interval is +-{100 * ratio.half_width:.1f}% "
                             f"(target +-{100 * c.precision:g}%) after {len(m.rounds)} rounds")
        elif ratio is None and ref is not None:
            m.notes.append(f"no ratio: the reference {ref.model} was not measured beside it")
        m.clock_offset = wall0
        try:
            out = dict(ready[c][0].finish(m))
        except Exception as exc:  # noqa: BLE001  (a failing summary is the cell's row, not the group's end)
            results[c] = guards.failure(exc)
            continue
        out.setdefault("status", "ok")
        out["extra"] = {**(out.get("extra") or {}), **m.facts(), "group_cells": len(ready),
                        "ratio_drift_corrected": corrected}
        if ratio is not None and ref is not None:
            out.update(ratio.columns(ref.model))
        results[c] = out
    return results


def _progress_bar(ctx: Context, desc: str) -> Any:
    if not ctx.progress:
        return None
    import sys

    from tqdm import tqdm

    class Bar(tqdm):
        def update_to(self, n: int) -> None:
            self.update(n - self.n)
    return Bar(desc=desc, unit="round", file=sys.stderr, leave=False, dynamic_ncols=True)


def sequential(bench: Callable[[Cell, Context], contextlib.AbstractContextManager[timing.Bench]]
               ) -> Callable[[Cell, Context], dict[str, Any]]:
    """A suite's ``run`` for one cell alone (the sequential protocol) from its ``bench``."""
    def run(cell: Cell, ctx: Context) -> dict[str, Any]:
        try:
            with bench(cell, ctx) as b:
                m = timing.measure_alone(b, warmup=cell.warmup, min_time=cell.min_time, min_samples=cell.min_samples)
                return b.finish(m)
        except timing.Skip as skip:
            return skip.result()
    return run
