"""Running cells: in-process or in a worker process, each failure turned into a status, never a lost sweep.

``execute(cell)`` runs a suite in this process; an exception becomes ``status`` ``oom`` or ``error``
with a one-line ``error``. ``execute_in_worker(cell)`` runs it in a fresh Python process (memory
suite on CPU, CUDA cells by default), so even a crash or a kill becomes a row.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from suites import runtime
from suites.cell import Cell
from suites.devices import is_cuda

SUITES = ("latency", "throughput", "memory", "flops", "accuracy", "profile")
ISOLATIONS = ("auto", "inline", "process")
REPO_ROOT = Path(__file__).resolve().parent.parent


def suite_module(name: str) -> Any:
    """The module ``suites.<name>`` (ValueError naming the suites when unknown)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return importlib.import_module(f"suites.{name}")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (truncated) for the ``error`` column."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def execute(cell: Cell) -> dict[str, Any]:
    """Run ``cell`` in this process; the suite's result plus ``status`` (and ``error`` on failure)."""
    try:
        module = suite_module(cell.suite)
        with runtime.cpu_allocation_limit(cell):
            result = dict(module.run(cell))
        result.setdefault("status", "ok")
        return result
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001  (every failure of a cell becomes its row)
        return {"status": "oom" if runtime.is_oom(exc) else "error", "error": one_line(exc)}
    finally:
        runtime.release(cell.device)


def needs_process(cell: Cell, isolation: str = "auto") -> bool:
    """Whether ``cell`` runs in its own worker process under ``isolation`` (auto: CPU memory cells,
    which measure their process's peak RSS, and CUDA cells, whose faults can poison a context)."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
    if isolation == "process":
        return True
    if isolation == "inline":
        return False
    return (cell.suite == "memory") or (is_cuda(cell.device) and cell.suite != "flops")


def _describe_exit(code: int) -> tuple[str, str]:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return "oom", f"worker process killed by {name} (most likely the kernel's out-of-memory killer)"
        return "error", f"worker process crashed with {name}"
    return "error", f"worker process exited with code {code} without a result"


def execute_in_worker(cell: Cell, timeout: float | None = None) -> dict[str, Any]:
    """Run ``cell`` in a fresh ``python -m suites.worker`` process; crashes, kills and timeouts become rows."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="lsnet-cell-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run([sys.executable, "-m", "suites.worker", str(out)], input=json.dumps(cell.to_dict()),
                                  text=True, capture_output=True, env=env, cwd=str(REPO_ROOT), timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "error", "error": f"cell timed out after {timeout:g} s (worker killed)"}
        if out.exists():
            return json.loads(out.read_text(encoding="utf-8"))
        status, error = _describe_exit(proc.returncode)
        tail = (proc.stderr or "").strip().splitlines()
        return {"status": status, "error": error + (f"; last output: {tail[-1][:200]}" if tail else "")}


def run_cell(cell: Cell, isolation: str = "auto", timeout: float | None = None) -> dict[str, Any]:
    """Run ``cell`` in-process or in a worker as ``isolation`` decides."""
    if needs_process(cell, isolation):
        return execute_in_worker(cell, timeout)
    return execute(cell)
