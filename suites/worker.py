"""Worker process entry point: ``python -m suites.worker RESULT.json`` with a cell's JSON on stdin.

Runs the cell with :func:`suites.executor.execute` and writes its result (status included) to
RESULT.json. Used by the executor for cells that need their own process.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m suites.worker RESULT.json  (cell JSON on stdin)", file=sys.stderr)
        return 2
    from suites.cell import Cell
    from suites.executor import execute
    from suites.memory import ISOLATED_KEY
    d = json.loads(sys.stdin.read())
    d["options"] = {**d.get("options", {}), ISOLATED_KEY: True}
    result = execute(Cell.from_dict(d))
    tmp = Path(argv[0] + ".tmp")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    tmp.replace(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
