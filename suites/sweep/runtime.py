"""Running cells: what every executor does in the process that measures (guards, outcomes, repeats, ladders).

A :class:`Task` is a chain of cells that runs serially on one device: one cell, or an
out-of-memory ladder (throughput's batch sweep) that stops at its first out-of-memory batch.
Tasks are independent of each other, so an executor may run them in any order or in parallel.

An outcome is ``{"result": {...}, "machine": {...}}``: the suite's result with ``status`` (and
``error``), and the facts of the machine that ran it (``host``, ``device_name``, ``threads``).
:func:`execute` produces it in whatever process runs the cell; every failure becomes a status.
"""
from __future__ import annotations

import importlib
import socket
import statistics
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from suites.core.schema import IDENTITY_COLUMNS
from suites.core.cell import Cell, Context, Task
from suites.core.cell import ladder_stop as stop_reason

Outcome = dict[str, Any]


def machine_facts(cell: Cell, threads: int | None = None) -> dict[str, Any]:
    """``host``, ``device_name`` and ``threads`` of this process (the one that runs the cell)."""
    from suites.core.devices import device_name
    try:
        name = device_name(cell.device)
    except Exception:  # noqa: BLE001  (a device that cannot be named still gets its row)
        name = ""
    return {"host": socket.gethostname(), "device_name": name, "threads": threads or cell.threads}


def outcome(cell: Cell, status: str, error: str | None = None, threads: int | None = None) -> Outcome:
    """An outcome without a measurement (skipped, or a failure outside the suite)."""
    return {"result": {"status": status, "error": error}, "machine": machine_facts(cell, threads)}


def execute(cell: Cell, ctx: Context, module: str | None = None) -> Outcome:
    """Run ``cell`` in this process; the suite's result plus ``status`` (and ``error`` on failure).

    ``module`` is imported first (a suite registered outside the built-in list). Identity columns
    in a suite's result are dropped: they come from the cell and this machine only.
    """
    from suites.core import registry

    def measure() -> Iterator[tuple[Cell, dict[str, Any]]]:
        yield cell, dict(registry.get(cell.suite).run(cell, ctx))
    return next(iter(_guarded(Task((cell,)), measure, module)))[1]


def execute_group(task: Task, ctx: Context, module: str | None = None) -> list[tuple[Cell, Outcome]]:
    """Run an interleaved task's cells together in this process (:func:`suites.interleave.run_group`)."""
    from suites.interleave import run_group
    return list(_guarded(task, lambda: run_group(task.cells, ctx, ladder=task.ladder), module))


def _guarded(task: Task, measure: Callable[[], Iterable[tuple[Cell, dict[str, Any]]]],
             module: str | None) -> Iterator[tuple[Cell, Outcome]]:
    """The outcomes of ``measure()`` under the cells' thread count, core pinning and allocation limit,
    with CPU contention over the whole measurement; every failure is a status. The cells of a task
    share those settings (a group's key includes them)."""
    from suites.core import guards, hostinfo, registry
    from suites.core.contention import CpuContention, contention_note
    first = task.cells[0]
    threads = first.threads
    done: list[tuple[Cell, dict[str, Any]]] = []
    try:
        if module:
            importlib.import_module(module)
        registry.get(first.suite)
        malloc = guards.steady_malloc()
        cores = hostinfo.parse_cores(first.pin_cores) if first.pin_cores else None
        with guards.threads(first.threads) as threads, hostinfo.pinned(cores), guards.cpu_allocation_limit(first):
            meter = CpuContention()
            for item in measure():
                done.append(item)
            shares = meter.stop()
        note = contention_note(shares)
        for cell, result in done:
            for key in IDENTITY_COLUMNS:
                result.pop(key, None)
            result.setdefault("status", "ok")
            warnings = list(result.get("warnings") or [])
            warnings += hostinfo.cpu_warnings(threads, cell.dtype, cell.device, cores=len(cores) if cores else None)
            if note:
                warnings.append(note)
                if result.get("stable") is not None:
                    result["stable"] = False
            result["warnings"] = warnings
            result["extra"] = {**(result.get("extra") or {}), "cpu_contention": shares, "malloc": malloc}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001  (every failure of a cell becomes its row)
        from suites.core.guards import failure
        failed = failure(exc)
        finished = {c for c, _ in done}
        done += [(c, dict(failed)) for c in task.cells if c not in finished]
    finally:
        from suites.core.guards import release
        release(first.device)
    for cell, result in done:
        yield cell, {"result": result, "machine": machine_facts(cell, threads)}


def combine_repeats(outs: list[Outcome]) -> Outcome:
    """One outcome from the same cell measured in several fresh processes: pooled samples, the median
    of the processes' throughputs, an interval that also covers every process's median, and the
    between-process spread in ``extra["repeats"]`` (a spread above the stability limit is unstable)."""
    from suites.core import timing
    bad = [o for o in outs if o["result"].get("status") != "ok"]
    if bad:
        res = dict(bad[0]["result"])
        res["error"] = f"{len(bad)} of {len(outs)} repeats failed; first: {res.get('error')}"
        return {"result": res, "machine": bad[0]["machine"]}
    results = [o["result"] for o in outs]
    merged = dict(results[0])
    rep: dict[str, Any] = {"n": len(outs)}
    warnings = [w for r in results for w in (r.get("warnings") or [])]
    stable = all(r.get("stable") is not False for r in results)
    key = "throughput_img_s" if results[0].get("throughput_img_s") is not None else "latency_ms_p50"
    values = [r[key] for r in results if r.get(key) is not None]
    if key == "latency_ms_p50":
        pooled = [x for r in results for x in (r.get("samples") or [])]
        merged.update(timing.summarize(pooled), samples=pooled)
        merged["latency_ms_ci_low"] = min([merged["latency_ms_ci_low"], *values])
        merged["latency_ms_ci_high"] = max([merged["latency_ms_ci_high"], *values])
    else:
        merged[key] = statistics.median(values)
    spread = (max(values) - min(values)) / statistics.median(values) if values else 0.0
    rep.update({key: values, "between_process_spread": spread})
    if spread > timing.SPREAD_LIMIT:
        stable = False
        warnings.append(f"the {len(outs)} processes' {key} differ by {100 * spread:.0f}% of the median")
    merged.update(stable=stable, warnings=list(dict.fromkeys(warnings)),
                  extra={**(merged.get("extra") or {}), "repeats": rep})
    return {"result": merged, "machine": outs[0]["machine"]}


def skipped(cells: Iterable[Cell], reason: str) -> Iterator[tuple[Cell, Outcome]]:
    """A skipped outcome with ``reason`` for each of ``cells`` (nothing runs)."""
    for cell in cells:
        yield cell, outcome(cell, "skipped", reason)


def ladder_stop(task: Task, cell: Cell, out: Outcome) -> str | None:
    """The skip reason for the cells of ``task`` after ``cell`` when ``out`` ends its ladder, else None
    (:func:`suites.core.cell.ladder_stop`)."""
    return stop_reason(task.ladder, cell, out["result"].get("status"))


def run_task(task: Task, run_cell: Callable[[Cell], Outcome]) -> Iterator[tuple[Cell, Outcome]]:
    """Run a task's cells in order with ``run_cell``; skipped cells and the rest of an OOM ladder
    become skipped outcomes without running (:func:`ladder_stop`)."""
    if task.skip_reason:
        yield from skipped(task.cells, task.skip_reason)
        return
    for i, cell in enumerate(task.cells):
        out = run_cell(cell)
        stop = ladder_stop(task, cell, out)
        yield cell, out
        if stop:
            yield from skipped(task.cells[i + 1:], stop)
            return
