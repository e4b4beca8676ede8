"""The run folder's result files.

``results.csv`` and ``results.jsonl`` (rows with raw samples, one JSON document per line) are only
ever appended to, one row as each cell completes, so an interrupted sweep keeps everything it
measured and a resumed one never rewrites what an earlier session wrote. ``results.json`` is the
consolidated copy of the JSON lines, written when a session ends.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from suites.core import resultfiles
from suites.core.schema import ROW_COLUMNS, read_jsonl


class ResultWriter:
    """Appends rows to the run folder as they arrive; never truncates what an earlier session wrote whole.
    Opening a folder first sets aside what a crash tore (:func:`suites.core.resultfiles.repair`, one
    warning line each on stderr)."""

    def __init__(self, run_dir: Path, run_id: str):
        self.run_dir, self.run_id = Path(run_dir), run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.csv_path = self.run_dir / "results.csv"
        self.jsonl_path = self.run_dir / "results.jsonl"
        self.json_path = self.run_dir / "results.json"
        for warning in resultfiles.repair(self.run_dir):
            print(warning, file=sys.stderr)
        if not self.csv_path.is_file() or self.csv_path.stat().st_size == 0:
            resultfiles.append(self.csv_path, resultfiles.csv_line(ROW_COLUMNS))

    def add(self, row: dict[str, Any]) -> None:
        """Append ``row`` to results.csv, then results.jsonl (each one line, on disk before the next)."""
        resultfiles.append(self.csv_path, resultfiles.row_line(row))
        resultfiles.append(self.jsonl_path, json.dumps(row, default=str, allow_nan=True) + "\n")
        self.rows.append(row)

    def consolidate(self) -> None:
        """Write ``results.json``: every row of the JSON lines (all sessions), atomically."""
        doc = {"columns": list(ROW_COLUMNS), "rows": read_jsonl(self.jsonl_path)}
        resultfiles.write_atomic(self.json_path, json.dumps(doc, indent=1, default=str, allow_nan=True))
