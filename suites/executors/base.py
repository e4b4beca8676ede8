"""The executor seam: tasks in, ``(cell, outcome)`` pairs out as cells complete (see
:mod:`suites.sweep.runtime` for what an outcome is and how a cell runs in the measuring process)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from suites.core.cell import Cell, Context, Task
from suites.sweep.runtime import Outcome, run_task


class Executor:
    """Base executor: runs tasks one after another through :meth:`run_cell`."""
    name = "executor"

    def run(self, tasks: Iterable[Task], ctx: Context) -> Iterator[tuple[Cell, Outcome]]:
        """Every cell's outcome, in the order cells complete."""
        for task in tasks:
            if task.interleaved and not task.skip_reason:
                yield from self.run_group(task, ctx)
            else:
                yield from run_task(task, lambda cell: self.run_cell(cell, ctx))

    def run_cell(self, cell: Cell, ctx: Context) -> Outcome:
        raise NotImplementedError

    def run_group(self, task: Task, ctx: Context) -> Iterable[tuple[Cell, Outcome]]:
        """An interleaved task's outcomes (all cells of the group measured together)."""
        raise NotImplementedError

    def environments(self, threads: int) -> dict[str, dict[str, Any]]:
        """``host -> environment`` of the other machines that ran cells (none for this machine alone)."""
        return {}

    def close(self) -> None:
        """Release workers and connections (idempotent)."""
