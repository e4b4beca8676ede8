"""The results schema, shared by the suites (which write rows) and the reports (which read them).

A row is one measured cell. ``ROW_COLUMNS`` is the column order of ``results.csv``; ``results.json``
holds the same rows plus ``samples`` (raw timings) and ``extra`` (suite-specific facts).

- Identity columns (``IDENTITY_COLUMNS``) say what was measured and where; they come from the cell
  and the machine that ran it, and a suite's result can never overwrite them.
- ``COLUMN_TYPES`` gives every column's type; the column lists (``ROW_COLUMNS``, ``NUMERIC_COLUMNS``...)
  are derived from it. A suite fills the measurement columns it measures; the rest stay blank.
- ``status`` is one of ``STATUSES``: ``ok``, ``oom``, ``error`` or ``skipped``; ``error`` holds the
  one-line reason of every status but ``ok``.
- ``stable`` is false when the timing could not be trusted (stalls, spread, contention); the reasons
  are in ``warnings`` (``; ``-separated), which also carries non-fatal notes (oversubscribed threads,
  16-bit on a CPU without 16-bit units, another process using the cores).
- ``protocol``: ``interleaved`` (the cell was measured round by round with the other cells of its
  comparison group; its interval comes from the round medians) or ``sequential`` (alone: not paired).
  ``ratio_to_ref`` is the cell's time per call over that of ``ref_model``'s cell at the same batch,
  engine and dtype (above 1: slower), the median of per-round paired ratios, with its ~95% interval
  ``ratio_ci_low``/``ratio_ci_high``; a difference is only called where that interval excludes 1.
- ``parity_rel``: an engine's output against eager float32 on the same input, max |diff| / max |ref|.
- ``top1_source`` names where ``top1`` came from (``measured:<folder>``, ``proxy:...``,
  ``published:imagenet-1k``); sources are never mixed in one figure.

Reports group rows by (suite, engine) first: figures of different suites or engines are never merged.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# Every column of a row, in ``results.csv`` order, with the type its values take.
IDENTITY_TYPES: dict[str, type] = {
    "run_id": str, "suite": str, "engine": str, "model": str, "family": str, "host": str, "device": str,
    "device_name": str, "dtype": str, "channels_last": bool, "compile": bool, "fused": bool, "batch_size": int,
    "resolution": int, "threads": int,
}
MEASURE_TYPES: dict[str, type] = {
    "params_m": float, "gmacs": float, "latency_ms_p50": float, "latency_ms_p90": float, "latency_ms_p99": float,
    "latency_ms_mean": float, "latency_ms_std": float, "latency_ms_ci_low": float, "latency_ms_ci_high": float,
    "n_samples": int, "stable": bool, "throughput_img_s": float, "peak_mem_mb": float, "energy_j_per_img": float,
    "parity_rel": float, "top1": float, "top1_source": str, "bytes_moved": int, "gbps": float, "pct_copy_bw": float,
    "protocol": str, "ref_model": str, "ratio_to_ref": float, "ratio_ci_low": float, "ratio_ci_high": float,
}
STATUS_TYPES: dict[str, type] = {"status": str, "error": str, "warnings": str}
COLUMN_TYPES = {**IDENTITY_TYPES, **MEASURE_TYPES, **STATUS_TYPES}

IDENTITY_COLUMNS = tuple(IDENTITY_TYPES)
MEASURE_COLUMNS = tuple(MEASURE_TYPES)
STATUS_COLUMNS = tuple(STATUS_TYPES)
ROW_COLUMNS = tuple(COLUMN_TYPES)
NUMERIC_COLUMNS = tuple(c for c, t in COLUMN_TYPES.items() if t in (int, float))
STATUSES = ("ok", "oom", "error", "skipped")
FINAL_STATUSES = STATUSES   # a row with one of these ends its cell (``--resume`` skips it)

# The operator kinds of the profile suite and the report's breakdown, in display order.
OP_KINDS = ("conv", "ska", "attention", "norm", "elementwise", "other")
# Precisions a cell can ask for (amp = autocast: float16 on CUDA, bfloat16 on CPU).
DTYPES = ("float32", "float16", "bfloat16", "amp")


MODEL_PLACEHOLDER = "<model>"


def reason_template(reason: str, model: str) -> str:
    """``reason`` with the name of its row's model replaced by ``<model>``: reasons that differ only in
    the model are then one reason (grouped, with the models listed, by the console and the report)."""
    return re.sub(rf"(?<![\w]){re.escape(model)}(?![\w])", MODEL_PLACEHOLDER, reason) if model else reason


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``results.jsonl`` (a torn last line, from a killed writer, is ignored)."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
