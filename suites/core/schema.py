"""The results schema, shared by the suites (which write rows) and the reports (which read them).

A row is one measured cell. ``ROW_COLUMNS`` is the column order of ``results.csv``; ``results.json``
holds the same rows plus ``samples`` (raw timings) and ``extra`` (suite-specific facts).

- Identity columns (``IDENTITY_COLUMNS``) say what was measured and where; they come from the cell
  and the machine that ran it, and a suite's result can never overwrite them.
- ``SUITE_COLUMNS`` says which measurement columns each suite fills; the rest stay blank.
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
from pathlib import Path
from typing import Any

IDENTITY_COLUMNS = (
    "run_id", "suite", "engine", "model", "family", "host", "device", "device_name", "dtype", "channels_last",
    "compile", "fused", "batch_size", "resolution", "threads",
)
MEASURE_COLUMNS = (
    "params_m", "gmacs", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_std",
    "latency_ms_ci_low", "latency_ms_ci_high", "n_samples", "stable", "throughput_img_s", "peak_mem_mb",
    "energy_j_per_img", "parity_rel", "top1", "top1_source", "bytes_moved", "gbps", "pct_copy_bw",
    "protocol", "ref_model", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high",
)
STATUS_COLUMNS = ("status", "error", "warnings")
ROW_COLUMNS = IDENTITY_COLUMNS + MEASURE_COLUMNS + STATUS_COLUMNS
STATUSES = ("ok", "oom", "error", "skipped")
FINAL_STATUSES = STATUSES   # a row with one of these ends its cell (``--resume`` skips it)

NUMERIC_COLUMNS = (
    "batch_size", "resolution", "threads", "params_m", "gmacs", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p99", "latency_ms_mean", "latency_ms_std", "latency_ms_ci_low", "latency_ms_ci_high", "n_samples",
    "throughput_img_s", "peak_mem_mb", "energy_j_per_img", "parity_rel", "top1", "bytes_moved", "gbps",
    "pct_copy_bw", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high",
)
BOOL_COLUMNS = ("channels_last", "compile", "fused", "stable")

_PAIRED = ("protocol", "ref_model", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high")
_LATENCY = ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_std",
            "latency_ms_ci_low", "latency_ms_ci_high", "n_samples", "stable") + _PAIRED
SUITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "latency": ("params_m", "parity_rel") + _LATENCY,
    "throughput": ("params_m", "throughput_img_s", "energy_j_per_img", "n_samples", "stable", "parity_rel") + _PAIRED,
    "memory": ("params_m", "peak_mem_mb", "parity_rel"),
    "flops": ("params_m", "gmacs"),
    "accuracy": ("params_m", "top1", "top1_source"),
    "profile": ("params_m",),
    "ops": _LATENCY + ("bytes_moved", "gbps", "pct_copy_bw"),
    "train": ("params_m", "throughput_img_s", "peak_mem_mb") + _LATENCY,
}

# The operator kinds of the profile suite and the report's breakdown, in display order.
OP_KINDS = ("conv", "ska", "attention", "norm", "elementwise", "other")
# Precisions a cell can ask for (amp = autocast: float16 on CUDA, bfloat16 on CPU).
DTYPES = ("float32", "float16", "bfloat16", "amp")


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
