"""Result rows and the run folder.

``results.csv`` and ``results.jsonl`` (rows with raw samples, one JSON document per line) are only
ever appended to, one row as each cell completes, so an interrupted sweep keeps everything it
measured and a resumed one never rewrites what an earlier session wrote. ``results.json`` is the
consolidated copy of the JSON lines, written when a session ends. ``env.json`` holds the project's
facts, one environment per host that measured a row, and every session's start, end and end reason.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from schema import MEASURE_COLUMNS, ROW_COLUMNS, STATUSES, read_jsonl
from suites.cell import Cell

REPO_ROOT = Path(__file__).resolve().parent.parent


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Local time to the millisecond plus a random suffix: unique even for runs started together."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3] + "-" + os.urandom(4).hex()


def make_row(run_id: str, cell: Cell, out: dict[str, Any]) -> dict[str, Any]:
    """One row (``ROW_COLUMNS`` order) from a cell and its outcome (see :mod:`executors.base`).

    Identity columns come from the cell and the machine that ran it, never from the suite;
    ``samples``, ``extra`` and ``cell`` (the cell itself, for ``--resume``) go to the JSON only.
    """
    from suites import zoo
    result, machine = out.get("result", {}), out.get("machine", {})
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
               batch_size=cell.batch_size, resolution=cell.resolution, threads=machine.get("threads", cell.threads))
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
    row["cell"] = cell.to_dict()
    return row


def _csv_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return v


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def csv_line(values: list[Any]) -> str:
    import io
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


class ResultWriter:
    """Appends rows to the run folder as they arrive; never truncates what is already there."""

    def __init__(self, run_dir: Path, run_id: str):
        self.run_dir, self.run_id = Path(run_dir), run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.csv_path = self.run_dir / "results.csv"
        self.jsonl_path = self.run_dir / "results.jsonl"
        self.json_path = self.run_dir / "results.json"
        if not self.csv_path.is_file() or self.csv_path.stat().st_size == 0:
            _append(self.csv_path, csv_line(list(ROW_COLUMNS)))

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        _append(self.csv_path, csv_line([_csv_value(row.get(c)) for c in ROW_COLUMNS]))
        _append(self.jsonl_path, json.dumps(row, default=str, allow_nan=True) + "\n")

    def consolidate(self) -> None:
        """Write ``results.json``: every row of the JSON lines (all sessions), atomically."""
        doc = {"columns": list(ROW_COLUMNS), "rows": read_jsonl(self.jsonl_path)}
        tmp = self.json_path.with_name(f".results.json.{os.getpid()}.{os.urandom(3).hex()}.tmp")
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


def host_environment(devices: list[str], threads: int) -> dict[str, Any]:
    """The facts of this host: versions, devices (with NVML facts), CPU, memory, threads."""
    import psutil
    import torch

    from suites.devices import cpu_model, device_name, is_cuda
    from suites.telemetry import driver_version, gpu_info
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
    from suites.hostinfo import host_facts
    return {
        "host": socket.gethostname(), "python": sys.version.split()[0], "platform": platform.platform(),
        **host_facts(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton_version, "nvidia_driver": driver_version(), "devices": dev_info,
        "cpu_model": cpu_model(), "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True), "threads": threads,
        "memory_total_mb": psutil.virtual_memory().total / 2**20,
    }


def environment(devices: list[str], threads: int, argv: list[str], started: str) -> dict[str, Any]:
    """env.json for a new run: the project, this host's facts (top level and under ``hosts``), the
    command line and the first session."""
    try:
        from importlib.metadata import version
        project_version = version("lsnet-bench")
    except Exception:
        project_version = None
    host = host_environment(devices, threads)
    return {"project_version": project_version, "git_revision": _git_revision(), **host,
            "hosts": {host["host"]: host},
            "command_line": " ".join([Path(argv[0]).name] + argv[1:]) if argv else "", "argv": argv,
            "start_time": started, "end_time": None,
            "sessions": [{"start_time": started, "end_time": None, "end_reason": None, "host": host["host"],
                          "pid": os.getpid(), "argv": argv, "loadavg_start": host["loadavg"]}]}


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    """Write env.json atomically."""
    path = Path(run_dir) / "env.json"
    tmp = path.with_name(f".env.json.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    tmp.write_text(json.dumps(env, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def drift_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How far the machine's speed moved during the run: per interleaved group, the reference cell's
    median ms per round (first and last round time, rounds, median, min, max, max/min, p90/p10)."""
    from suites.measurement import percentile
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


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one line per model and configuration (engine, device, dtype, layout, batch) with
    its latency, throughput and memory rows merged, the spread of the latency (CI of the median, else
    p50..p90), the model's MACs and top-1; ``train`` and ``ops`` rows get lines of their own. Skip and
    error reasons are printed in full once each, as numbered footnotes referenced from the lines."""
    per_model: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("suite") in ("flops", "accuracy"):
            m = per_model.setdefault(r["model"], {})
            for c in ("gmacs", "top1"):
                if r.get(c) is not None and m.get(c) is None:
                    m[c] = r[c]
    reasons: dict[str, int] = {}
    lines: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        suite = r.get("suite")
        if suite in ("flops", "accuracy", "profile") and r.get("status") == "ok":
            continue
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        kind = {"train": "train", "ops": f"ops {extra.get('backend', '')}/{extra.get('mode', '')}"}.get(suite, "")
        key = (r.get("model"), kind, r.get("engine") or "eager", r.get("device"), r.get("dtype"),
               "NHWC" if r.get("channels_last") in (True, "True") else "NCHW",
               "compiled" if r.get("compile") in (True, "True") and r.get("engine") != "compile" else "",
               str(r.get("batch_size")))
        line = lines.setdefault(key, {"notes": []})
        if r.get("status") != "ok":
            reason = r.get("error") or "(no reason recorded)"
            n = reasons.setdefault(reason, len(reasons) + 1)
            line["notes"].append(f"{suite} {r.get('status')} [{n}]")
            continue
        for c in ("latency_ms_p50", "latency_ms_p90", "latency_ms_ci_low", "latency_ms_ci_high", "throughput_img_s",
                  "peak_mem_mb", "gbps", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high", "ref_model"):
            if r.get(c) is not None and line.get(c) is None:
                line[c] = r[c]
        if r.get("stable") is False or r.get("stable") == "False":
            line["notes"].append(f"{suite} unstable")
    for model, m in per_model.items():
        if not any(k[0] == model for k in lines):
            lines[(model, "", "-", "-", "-", "-", "", "-")] = {"notes": []}

    def spread(ln: dict[str, Any]) -> str:
        p50 = ln.get("latency_ms_p50")
        if p50 is None:
            return "-"
        lo, hi = ln.get("latency_ms_ci_low"), ln.get("latency_ms_ci_high")
        if lo is not None and hi is not None:
            return f"{_fmt(p50)} [{_fmt(lo)}..{_fmt(hi)} CI]"
        return f"{_fmt(p50)} [..{_fmt(ln.get('latency_ms_p90'))} p90]" if ln.get("latency_ms_p90") is not None \
            else _fmt(p50)
    def ratio(ln: dict[str, Any]) -> str:
        r, lo, hi = ln.get("ratio_to_ref"), ln.get("ratio_ci_low"), ln.get("ratio_ci_high")
        if r is None:
            return "-"
        if ln.get("ref_model") == model:
            return "ref"
        verdict = "slower" if lo > 1 else "faster" if hi < 1 else "same"
        return f"{r:.3f} [{lo:.3f}..{hi:.3f}] {verdict}"
    head = ("model", "kind", "engine", "device", "dtype", "layout", "bs", "latency p50 ms [spread]",
            "time / ref [paired CI]", "img/s", "mem MB", "GMACs", "top1", "notes")
    table = [head]
    for key in sorted(lines, key=lambda k: tuple(map(str, k))):
        ln, m = lines[key], ({} if key[1].startswith("ops") else per_model.get(key[0], {}))
        model, kind, engine, device, dtype, layout, comp, bs = key
        table.append((str(model), kind or "infer", engine + (f" ({comp})" if comp else ""), str(device), str(dtype),
                      layout, bs, spread(ln), ratio(ln), _fmt(ln.get("throughput_img_s"), 1), _fmt(ln.get("peak_mem_mb"), 1),
                      _fmt(m.get("gmacs"), 3), _fmt(m.get("top1")), ", ".join(dict.fromkeys(ln["notes"])) or "ok"))
    widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in table]
    out += [f"[{n}] {reason}" for reason, n in reasons.items()]
    return "\n".join(out)
