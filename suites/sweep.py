"""A sweep: the list of cells a command line asks for, and running it cell by cell into a writer."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from suites import zoo
from suites.cell import Cell
from suites.devices import device_name, is_cuda
from suites.executor import run_cell
from suites.results import ResultWriter, make_row

DEFAULT_BATCH_SIZES = {"latency": [1], "profile": [1], "flops": [1], "memory": [1, 8, 32], "accuracy": [64]}
DEFAULT_MAX_BATCH = {"cpu": 256, "cuda": 4096}
AUTO_SWEEP_KEY = "auto_sweep"
SKIP_KEY = "skip_reason"


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to ``limit``."""
    out, b = [], 1
    while b <= limit:
        out.append(b)
        b *= 2
    return out


def plan(suites: Sequence[str], models: Sequence[str], devices: Sequence[str], dtypes: Sequence[str],
         batch_sizes: Sequence[int] | None = None, max_batch: int | None = None, **cell_fields: Any) -> list[Cell]:
    """Cells for every suite x model x device x dtype x batch size.

    ``flops`` is one cell per model (counted on the CPU); ``accuracy`` one per model, device and
    dtype at the largest batch size; ``throughput`` without ``batch_sizes`` sweeps powers of two up
    to ``max_batch`` (default 256 on CPU, 4096 on CUDA) and stops at the first out-of-memory batch.
    ``cell_fields`` are the other :class:`Cell` fields (resolution, threads, options, ...).
    """
    options = dict(cell_fields.pop("options", {}) or {})
    cells: list[Cell] = []
    for suite in suites:
        for model in models:
            if suite == "flops":
                cells.append(Cell(suite=suite, model=model, device="cpu", batch_size=1, dtype="float32",
                                  options=options, **{**cell_fields, "cuda_graphs": False, "compile": False}))
                continue
            for device in devices:
                for dtype in dtypes:
                    opts = dict(options)
                    if cell_fields.get("cuda_graphs") and not is_cuda(device):
                        opts[SKIP_KEY] = "--cuda-graphs needs a CUDA device"
                    if suite == "throughput" and not batch_sizes:
                        limit = max_batch or DEFAULT_MAX_BATCH["cuda" if is_cuda(device) else "cpu"]
                        sizes, opts[AUTO_SWEEP_KEY] = powers_of_two(limit), True
                    elif suite == "accuracy":
                        sizes = [max(batch_sizes)] if batch_sizes else DEFAULT_BATCH_SIZES["accuracy"]
                    else:
                        sizes = list(batch_sizes) if batch_sizes else DEFAULT_BATCH_SIZES.get(suite, [1])
                    cells += [Cell(suite=suite, model=model, device=device, batch_size=b, dtype=dtype,
                                   options=opts, **cell_fields) for b in sizes]
    return cells


def _auto_key(cell: Cell) -> tuple[Any, ...]:
    d = cell.to_dict()
    d.pop("batch_size")
    d.pop("options")
    return tuple(sorted(d.items(), key=lambda kv: kv[0]))


def cell_label(cell: Cell) -> str:
    return f"{cell.suite} {cell.model} {cell.device} {cell.dtype} bs{cell.batch_size}"


def run_sweep(cells: Sequence[Cell], writer: ResultWriter, isolation: str = "auto", timeout: float | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell (one row each, written as it finishes) with a progress bar over cells."""
    from tqdm import tqdm
    names: dict[str, str] = {}
    oom_at: dict[tuple[Any, ...], int] = {}
    rows = []
    bar = tqdm(cells, desc="cells", unit="cell", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix_str(cell_label(cell), refresh=True)
        key = _auto_key(cell)
        if cell.options.get(SKIP_KEY):
            result = {"status": "skipped", "error": cell.options[SKIP_KEY]}
        elif cell.options.get(AUTO_SWEEP_KEY) and key in oom_at and cell.batch_size > oom_at[key]:
            result = {"status": "skipped", "error": f"batch {oom_at[key]} already ran out of memory"}
        else:
            result = run_cell(cell, isolation=isolation, timeout=timeout)
            if result.get("status") == "oom" and cell.options.get(AUTO_SWEEP_KEY):
                oom_at[key] = min(cell.batch_size, oom_at.get(key, cell.batch_size))
        if cell.device not in names:
            try:
                names[cell.device] = device_name(cell.device)
            except Exception:  # noqa: BLE001
                names[cell.device] = ""
        row = make_row(writer.run_id, cell, result, family=zoo.spec(cell.model).family,
                       device_name=names[cell.device], threads=result.get("threads", cell.threads))
        writer.add(row)
        rows.append(row)
    bar.close()
    return rows
