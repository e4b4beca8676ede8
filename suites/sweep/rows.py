"""Result rows: one row per cell from its outcome (``ROW_COLUMNS`` order), run ids and times, and the
machine's drift read back from the rows."""
from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from suites.core.cell import Cell
from suites.core.schema import MEASURE_COLUMNS, ROW_COLUMNS, STATUSES


def new_run_id() -> str:
    """Local time to the millisecond plus a random suffix: unique even for runs started together."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3] + "-" + os.urandom(4).hex()


def make_row(run_id: str, cell: Cell, out: dict[str, Any]) -> dict[str, Any]:
    """One row (``ROW_COLUMNS`` order) from a cell and its outcome (see :mod:`suites.sweep.runtime`).

    Identity columns come from the cell and the machine that ran it, never from the suite; what the
    suite knows of a cell before it runs (:meth:`Suite.facts`) fills the row where the result does not,
    so a skipped or failed row still says what it was; ``samples``, ``extra`` and ``cell`` (the cell
    itself, for ``--resume``) go to the JSON only.
    """
    from suites.core import registry, zoo
    try:
        known = registry.get(cell.suite).facts(cell)
    except ValueError:   # a suite this process has not registered
        known = {}
    result, machine = {**known, **out.get("result", {})}, out.get("machine", {})
    status = result.get("status", "ok")
    if status not in STATUSES:
        status, result = "error", {**result, "error": f"suite returned unknown status {status!r}"}
    try:
        family = zoo.spec(cell.model).family
    except ValueError:
        family = ""
    row: dict[str, Any] = {c: None for c in ROW_COLUMNS}
    row.update(run_id=run_id, suite=cell.suite, engine=cell.engine, model=cell.model, family=family,
               host=machine.get("host"), device=cell.device, device_name=machine.get("device_name"),
               dtype=cell.dtype, channels_last=cell.channels_last, compile=cell.compile, fused=cell.fused,
               batch_size=cell.batch_size, resolution=cell.resolution_text, threads=machine.get("threads", cell.threads),
               task=cell.task)
    row.update({k: v for k, v in result.items() if k in MEASURE_COLUMNS})
    row["status"] = status
    row["error"] = result.get("error") if status != "ok" else None
    warnings = result.get("warnings") or []
    row["warnings"] = "; ".join(warnings) if isinstance(warnings, list | tuple) else (warnings or None)
    row["warnings"] = row["warnings"] or None
    row["samples"] = list(result.get("samples") or [])
    extra = dict(result.get("extra") or {})
    if cell.cuda_graphs:
        extra.setdefault("cuda_graphs", True)
    row["extra"] = extra
    int8 = extra.get("int8")      # the accuracy cost every int8 row carries (suites.engines.quantize.judge)
    if isinstance(int8, dict) and row.get("int8_agreement") is None and "int8_agreement" in row:
        row["int8_agreement"] = int8.get("agreement")
    row["cell"] = cell.to_dict()
    return row


def drift_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How far the machine's speed moved during the run: per interleaved group, the reference cell's
    median ms per round (first and last round time, rounds, median, min, max, max/min, p90/p10)."""
    from suites.core.measurement import percentile
    out = []
    for r in rows:
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        meds = extra.get("round_medians_ms") or []
        if r.get("protocol") != "interleaved" or r.get("model") != r.get("ref_model") or len(meds) < 2:
            continue
        s = sorted(meds)
        starts = extra.get("round_starts_unix_s") or [None]
        out.append({"suite": r.get("suite"), "engine": r.get("engine"), "device": r.get("device"),
                    "dtype": r.get("dtype"), "batch_size": r.get("batch_size"), "reference": r.get("model"),
                    "rounds": len(meds), "first_round_unix_s": starts[0], "last_round_unix_s": starts[-1],
                    "median_ms": percentile(s, 50), "min_ms": s[0], "max_ms": s[-1], "max_over_min": s[-1] / s[0],
                    "p90_over_p10": percentile(s, 90) / percentile(s, 10)})
    return out
