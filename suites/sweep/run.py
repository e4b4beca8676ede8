"""Running a sweep: every task through an executor into the writer, one row per cell as it completes."""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from suites.core.cell import Cell, Context, Task
from suites.sweep.rows import make_row
from suites.sweep.writer import ResultWriter


def cell_label(cell: Cell) -> str:
    return f"{cell.suite} {cell.model} {cell.engine} {cell.device} {cell.dtype} bs{cell.batch_size}"


def run_sweep(tasks: Sequence[Task], executor: Any, writer: ResultWriter, ctx: Context,
              progress: bool = True, check: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Run every task through ``executor``; each row is written as its cell completes, then ``check()``
    runs (it raises to stop the sweep, e.g. :meth:`rundir.Signals.raise_if_received`)."""
    from tqdm import tqdm
    total = sum(len(t.cells) for t in tasks)
    rows = []
    with tqdm(total=total, desc="cells", unit="cell", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        for cell, out in executor.run(tasks, ctx):
            row = make_row(writer.run_id, cell, out)
            writer.add(row)
            rows.append(row)
            bar.set_postfix_str(cell_label(cell), refresh=False)
            bar.update(1)
            if check is not None:
                check()
    return rows
