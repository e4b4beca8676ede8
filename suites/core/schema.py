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
- ``task`` is one of ``TASKS``: ``classify`` (the classifier), ``features`` (the backbone alone, its
  multi-scale feature maps) or ``segment`` (backbone + Semantic FPN, per-pixel logits); rows without it
  (older folders) are ``classify``. Reports keep tasks apart.
- ``resolution`` is text: ``"224"`` for a square input (as older folders hold it, where it was a number)
  and ``"HxW"`` otherwise (``"800x1333"``); :func:`parse_resolution` and :func:`resolution_text` read and
  write every form.
- ``int8_agreement`` (int8 rows): the percent of fixed inputs whose top-1 class the int8 model shares with
  eager float32 (its ``parity_rel`` is the relative logit error on the same inputs; details in
  ``extra.int8``); ``top1_float32`` (accuracy int8 rows): the float32 model's top-1 on the same images.
- ``top1_source`` names where ``top1`` came from (``measured:<folder>``, ``proxy:...``,
  ``published:imagenet-1k``); sources are never mixed in one figure.

Reports group rows by (suite, engine) first: figures of different suites or engines are never merged.
"""
from __future__ import annotations

import json
import numbers
import re
from pathlib import Path
from typing import Any

# Every column of a row, in ``results.csv`` order, with the type its values take.
IDENTITY_TYPES: dict[str, type] = {
    "run_id": str, "suite": str, "engine": str, "model": str, "family": str, "host": str, "device": str,
    "device_name": str, "dtype": str, "channels_last": bool, "compile": bool, "fused": bool, "batch_size": int,
    "resolution": str, "threads": int, "task": str,
}
MEASURE_TYPES: dict[str, type] = {
    "params_m": float, "gmacs": float, "latency_ms_p50": float, "latency_ms_p90": float, "latency_ms_p99": float,
    "latency_ms_mean": float, "latency_ms_std": float, "latency_ms_ci_low": float, "latency_ms_ci_high": float,
    "n_samples": int, "stable": bool, "throughput_img_s": float, "peak_mem_mb": float, "energy_j_per_img": float,
    "parity_rel": float, "top1": float, "top1_source": str, "bytes_moved": int, "gbps": float, "pct_copy_bw": float,
    "protocol": str, "ref_model": str, "ratio_to_ref": float, "ratio_ci_low": float, "ratio_ci_high": float,
    "int8_agreement": float, "top1_float32": float,
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
# What a cell runs the model as (mirrors ``baselines.dense.TASKS``; suites.core.zoo checks the two agree).
TASKS = ("classify", "features", "segment")
DEFAULT_TASK = "classify"
RESOLUTION_FORMS = "a size such as 224 (square) or HxW such as 800x1333 (height x width)"
# Precisions a cell can ask for (amp = autocast: float16 on CUDA, bfloat16 on CPU; int8 = post-training
# static quantisation of the float32 export in ONNX Runtime and OpenVINO, see suites.engines.quantize).
DTYPES = ("float32", "float16", "bfloat16", "amp", "int8")


def parse_resolution(value: Any) -> tuple[int, int]:
    """(height, width) of a resolution in any recorded form: an int or ``"224"`` (square), ``"800x1333"``
    (height x width; ``X`` and ``*`` also accepted), a (H, W) pair, or a whole float such as 224.0 (a CSV
    column read as numbers). ValueError naming the forms for anything else, or a size that is not positive."""
    if isinstance(value, bool):
        raise ValueError(f"resolution {value!r} is not {RESOLUTION_FORMS}")
    if isinstance(value, numbers.Integral):
        hw = (int(value), int(value))
    elif isinstance(value, numbers.Real) and value == value and float(value).is_integer():
        hw = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        hw = (int(value[0]), int(value[1]))
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        hw = (int(value), int(value))
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", value)):
        hw = (int(m.group(1)), int(m.group(2)))
    else:
        raise ValueError(f"resolution {value!r} is not {RESOLUTION_FORMS}")
    if min(hw) <= 0:
        raise ValueError(f"resolution {value!r}: height and width must be > 0 ({RESOLUTION_FORMS})")
    return hw


def resolution_text(value: Any) -> str | None:
    """The ``resolution`` column's text: ``"224"`` for a square input, ``"800x1333"`` (HxW) otherwise; None
    for a blank value (None, NaN, empty). ValueError for text in no known form."""
    if value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip()):
        return None
    h, w = parse_resolution(value)
    return str(h) if h == w else f"{h}x{w}"


def resolution_pixels(value: Any) -> int | None:
    """H * W of a resolution in any form (None when blank or unreadable): how reports order resolutions."""
    try:
        text = resolution_text(value)
    except ValueError:
        return None
    if text is None:
        return None
    h, w = parse_resolution(text)
    return h * w


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
