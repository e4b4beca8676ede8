"""Worker process entry point: ``python -m suites.executors.worker OUTCOME.json`` with a job's JSON on stdin
(``{"cell": ..., "module": ..., "ctx": ...}``, or ``{"task": {"cells": [...], "ladder": ...}, ...}`` for an
interleaved group); runs the cell with :func:`suites.sweep.runtime.execute` (the group with
:func:`suites.sweep.runtime.execute_group`) and writes its outcome (a list of ``[cell, outcome]``) to
OUTCOME.json (atomically)."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m suites.executors.worker OUTCOME.json  (job JSON on stdin)", file=sys.stderr)
        return 2
    from suites.core.cell import Task
    from suites.sweep.runtime import execute, execute_group
    from suites.core.cell import Cell, Context
    job = json.loads(sys.stdin.read())
    if job.get("module"):
        importlib.import_module(job["module"])
    run_dir = job["ctx"].get("run_dir")
    ctx = Context(run_dir=Path(run_dir) if run_dir else None, isolated=True, progress=bool(job["ctx"].get("progress")))
    if "task" in job:
        task = Task(tuple(Cell.from_dict(c) for c in job["task"]["cells"]), ladder=job["task"]["ladder"],
                    interleaved=True)
        result: object = [[c.to_dict(), o] for c, o in execute_group(task, ctx, job.get("module"))]
    else:
        result = execute(Cell.from_dict(job["cell"]), ctx, job.get("module"))
    tmp = Path(f"{argv[0]}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    tmp.replace(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
