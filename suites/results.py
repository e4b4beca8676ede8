"""Result rows and the run folder: results.csv (appended as cells finish), results.json (rows with
raw samples, rewritten atomically after every cell), env.json, and the short summary table."""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from suites.cell import ROW_COLUMNS, STATUSES, Cell

REPO_ROOT = Path(__file__).resolve().parent.parent


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def make_row(run_id: str, cell: Cell, result: dict[str, Any], family: str = "", device_name: str = "",
             threads: int | None = None) -> dict[str, Any]:
    """One row (``ROW_COLUMNS`` order) from a cell and its result; ``samples``/``extra`` are kept
    under those keys for results.json only."""
    status = result.get("status", "ok")
    if status not in STATUSES:
        status, result = "error", {**result, "error": f"suite returned unknown status {status!r}"}
    row: dict[str, Any] = {c: None for c in ROW_COLUMNS}
    row.update(run_id=run_id, suite=cell.suite, model=cell.model, family=family, device=cell.device,
               device_name=device_name, dtype=cell.dtype, channels_last=cell.channels_last, compile=cell.compile,
               fused=cell.fused, batch_size=cell.batch_size, resolution=cell.resolution,
               threads=threads if threads is not None else cell.threads)
    row.update({k: v for k, v in result.items() if k in ROW_COLUMNS and k not in ("run_id", "suite", "model")})
    row["status"] = status
    row["error"] = result.get("error") if status != "ok" else None
    row["samples"] = list(result.get("samples") or [])
    extra = dict(result.get("extra") or {})
    if cell.cuda_graphs:
        extra.setdefault("cuda_graphs", True)
    row["extra"] = extra
    return row


def _csv_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return v


class ResultWriter:
    """Writes rows as they arrive so an interrupted sweep keeps everything it measured."""

    def __init__(self, run_dir: Path, run_id: str):
        self.run_dir, self.run_id = Path(run_dir), run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.csv_path = self.run_dir / "results.csv"
        self.json_path = self.run_dir / "results.json"
        with self.csv_path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(ROW_COLUMNS)
        self._write_json()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.csv_path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([_csv_value(row.get(c)) for c in ROW_COLUMNS])
            f.flush()
            os.fsync(f.fileno())
        self._write_json()

    def _write_json(self) -> None:
        doc = {"run_id": self.run_id, "columns": list(ROW_COLUMNS), "rows": self.rows}
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str, allow_nan=True), encoding="utf-8")
        tmp.replace(self.json_path)


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(devices: list[str], threads: int, argv: list[str], started: str) -> dict[str, Any]:
    """The env.json facts: versions, git revision, devices (with NVML facts), CPU, threads, command line."""
    import psutil
    import torch

    from suites.devices import cpu_model, device_name, is_cuda
    from suites.telemetry import driver_version, gpu_info
    try:
        from importlib.metadata import version
        project_version = version("lsnet-bench")
    except Exception:
        project_version = None
    try:
        import triton
        triton_version = triton.__version__
    except Exception:
        triton_version = None
    dev_info = []
    for d in devices:
        entry: dict[str, Any] = {"device": d, "name": device_name(d)}
        if is_cuda(d):
            idx = torch.device(d).index or 0
            props = torch.cuda.get_device_properties(idx)
            entry.update(capability=f"{props.major}.{props.minor}", total_memory_mb=props.total_memory / 2**20,
                         nvml=gpu_info(idx))
        dev_info.append(entry)
    return {
        "project_version": project_version, "git_revision": _git_revision(), "python": sys.version.split()[0],
        "platform": platform.platform(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton_version, "nvidia_driver": driver_version(), "devices": dev_info,
        "cpu_model": cpu_model(), "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True), "threads": threads,
        "memory_total_mb": psutil.virtual_memory().total / 2**20,
        "command_line": " ".join([Path(argv[0]).name] + argv[1:]) if argv else "", "argv": argv,
        "start_time": started, "end_time": None,
    }


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    (Path(run_dir) / "env.json").write_text(json.dumps(env, indent=1, default=str), encoding="utf-8")


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A compact plain-text table of the rows (the headline number of each suite)."""
    head = ("suite", "model", "device", "dtype", "bs", "p50 ms", "img/s", "mem MB", "GMACs", "top1", "status")
    lines = [head]
    for r in rows:
        note = r["status"] if r["status"] == "ok" else f"{r['status']}: {(r.get('error') or '')[:60]}"
        lines.append((r["suite"], r["model"], r["device"], r["dtype"], str(r["batch_size"]),
                      _fmt(r.get("latency_ms_p50")), _fmt(r.get("throughput_img_s"), 1), _fmt(r.get("peak_mem_mb"), 1),
                      _fmt(r.get("gmacs"), 3), _fmt(r.get("top1")), note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in lines)
