"""The plan of a sweep: the tasks a command line asks for, planned from the suite descriptors, and the
cells of each comparison group gathered into one task."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from suites import engines
from suites.core import registry
from suites.core.cell import Cell, Task
from suites.core.devices import is_cuda

DEFAULT_MAX_BATCH = {"cpu": 256, "cuda": 4096}


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to ``limit``."""
    out, b = [], 1
    while b <= limit:
        out.append(b)
        b *= 2
    return out


def default_max_batch(suite: registry.Suite, device: str) -> int:
    """The top of ``suite``'s ladder on ``device`` without ``--max-batch``: its own, else the default."""
    limits = suite.max_batch or DEFAULT_MAX_BATCH
    return int(limits["cuda" if is_cuda(device) else "cpu"])


def _batch_sizes(suite: registry.Suite, device: str, batch_sizes: Sequence[int] | None,
                 max_batch: int | None) -> tuple[list[int], bool]:
    """(batch sizes, whether they form an out-of-memory ladder) of one suite on one device."""
    if suite.plan == "ladder" and not batch_sizes:
        return powers_of_two(max_batch or default_max_batch(suite, device)), True
    sizes = list(batch_sizes) if batch_sizes else list(suite.default_batch_sizes)
    return ([max(sizes)] if suite.plan == "largest_batch" else sizes), False


def runs_through(suite: registry.Suite) -> list[str]:
    """The engines ``suite`` runs through: those that declare its mode (eager alone for a suite without one)."""
    if suite.mode is None:
        return ["eager"]
    return [name for name in engines.ENGINES if suite.mode in engines.get(name).modes]


def _skip_reason(suite: registry.Suite, cell: Cell, unavailable: dict[str, str | None]) -> str | None:
    """Why ``cell`` cannot run: the engine does not run the suite, is not available here, or cannot run
    the cell; or the suite cannot (its descriptor's ``skip``). None when it can."""
    engine = cell.engine
    if engine not in runs_through(suite):
        return f"suite {suite.name!r} does not run through engine {engine!r} (it runs through {', '.join(runs_through(suite))})"
    if unavailable.get(engine):
        return f"engine {engine!r} is not available here: {unavailable[engine]}"
    if cell.dtype == "int8" and engine not in (quantizers := engines.quantizers()):
        return (f"--dtype int8 is post-training quantisation of the ONNX export, which engine {engine!r} does not do; "
                f"use --engine {' or '.join(quantizers)}")
    return engines.get(engine).skip_reason(cell) or suite.skip_reason(cell)


def plan(suites: Sequence[str], models: Sequence[str], devices: Sequence[str], dtypes: Sequence[str],
         engines_: Sequence[str] = ("eager",), batch_sizes: Sequence[int] | None = None,
         max_batch: int | None = None, options: dict[str, Any] | None = None,
         tasks_: Sequence[str] = ("classify",), **cell_fields: Any) -> list[Task]:
    """Tasks for every suite x task x model x engine x device x dtype x batch size, as each suite's
    descriptor plans them (see :class:`suites.core.registry.Suite`). ``options`` maps a suite name to its
    options; ``tasks_`` are the ``--task`` values (classify, features, segment); ``cell_fields`` are the
    other :class:`Cell` fields (resolution, threads, ...)."""
    options = options or {}
    unavailable = {e: engines.get(e).unavailable() for e in engines_}
    tasks: list[Task] = []
    for name in suites:
        suite = registry.get(name)
        opts = options.get(name)
        suite_fields = {**cell_fields, "repeats": cell_fields.get("repeats", 1) if suite.timed else 1}
        for task, model in ((t, m) for t in tasks_ for m in models):
            fields = {**suite_fields, "task": task}
            if suite.plan == "per_model":
                cell = Cell(name, model, device="cpu", dtype="float32", options=opts, **{**fields, "cuda_graphs": False})
                tasks.append(Task((cell,), skip_reason=suite.skip_reason(cell)))
                continue
            for engine in engines_:
                for device in devices:
                    for dtype in dtypes:
                        sizes, ladder = _batch_sizes(suite, device, batch_sizes, max_batch)
                        cells = [Cell(name, model, engine=engine, device=device, batch_size=b, dtype=dtype,
                                      options=opts, **fields) for b in sizes]
                        if suite.expand is not None:
                            tasks += [Task((c,), skip_reason=_skip_reason(suite, c, unavailable))
                                      for cell in cells for c in suite.expand(cell)]
                        else:
                            tasks.append(Task(tuple(cells), ladder=ladder,
                                              skip_reason=_skip_reason(suite, cells[0], unavailable)))
    return tasks


def interleave(tasks: Sequence[Task]) -> list[Task]:
    """Tasks with the interleaved cells of each comparison group (:func:`suites.interleave.group_key`)
    gathered into one task each; a group of ladders stays a ladder. Other tasks, and the cells of engines
    that cannot share a process with other cells (``Engine.interleavable``), are kept as they are."""
    from suites.interleave import group_key
    groups: dict[Cell, list[Task]] = {}
    out: list[Task | Cell] = []
    for task in tasks:
        first = task.cells[0]
        if task.skip_reason or not registry.get(first.suite).interleaves(first) \
                or not engines.get(first.engine).interleavable:
            out.append(task)
            continue
        key = group_key(first)
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append(task)
    def group(key: Cell) -> Task:
        members = groups[key]
        return Task(tuple(c for t in members for c in t.cells), ladder=any(t.ladder for t in members),
                    interleaved=True)
    return [group(t) if isinstance(t, Cell) else t for t in out]
