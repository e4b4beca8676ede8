"""Worker process entry point: ``python -m executors.worker OUTCOME.json`` with a job's JSON on stdin
(``{"cell": ..., "module": ..., "ctx": ...}``); runs the cell with :func:`executors.base.execute`
and writes its outcome to OUTCOME.json (atomically)."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m executors.worker OUTCOME.json  (job JSON on stdin)", file=sys.stderr)
        return 2
    from executors.base import execute
    from suites.cell import Cell, Context
    job = json.loads(sys.stdin.read())
    if job.get("module"):
        importlib.import_module(job["module"])
    run_dir = job["ctx"].get("run_dir")
    ctx = Context(run_dir=Path(run_dir) if run_dir else None, isolated=True, progress=bool(job["ctx"].get("progress")))
    result = execute(Cell.from_dict(job["cell"]), ctx, job.get("module"))
    tmp = Path(f"{argv[0]}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    tmp.replace(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
