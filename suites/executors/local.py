"""The local executor: every cell on this machine, in this process or in a worker process of its own.

``isolation``: ``inline`` runs every cell here; ``process`` every cell in a fresh
``python -m executors.worker``; ``auto`` gives a worker to the cells whose suite asks for one (CPU
memory cells measure their own process's peak RSS) and to CUDA cells (a fault can poison a CUDA
context). A ``timeout`` always runs cells in workers, since only a process can be stopped safely.
A cell with ``repeats`` > 1 runs that many times, each in a fresh worker, and the outcomes are combined
(:func:`suites.sweep.runtime.combine_repeats`). Crashes, kills and timeouts of a worker become rows; its
process group is killed on the way out.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from suites.core.cell import Task
from suites.executors.base import Executor
from suites.sweep.runtime import Outcome, combine_repeats, execute, execute_group, outcome
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda

ISOLATIONS = ("auto", "inline", "process")
REPO_ROOT = Path(__file__).resolve().parents[2]


def oom_kills() -> int | None:
    """The kernel's out-of-memory kill count for this process's cgroup (v2 ``memory.events``, v1
    ``memory.oom_control``), or None where neither is readable."""
    candidates = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                candidates.append(Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.events")
    except OSError:
        pass
    candidates += [Path("/sys/fs/cgroup/memory.events"), Path("/sys/fs/cgroup/memory/memory.oom_control")]
    for path in candidates:
        try:
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def describe_exit(code: int, oom_killed: bool | None = None) -> tuple[str, str]:
    """(status, error) for a worker that exited with ``code`` without writing a result.

    A SIGKILL is ``oom`` only when the cgroup's out-of-memory kill count rose while the worker ran
    (``oom_killed``); otherwise it is an error that says the worker was killed.
    """
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            if oom_killed:
                return "oom", f"worker process killed by {name} by the kernel's out-of-memory killer"
            evidence = "no out-of-memory kill was recorded" if oom_killed is False else \
                "the cgroup's out-of-memory count is not readable here"
            return "error", f"worker process killed by {name} ({evidence})"
        return "error", f"worker process crashed with {name}"
    return "error", f"worker process exited with code {code} without a result"


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, isolation: str = "auto", timeout: float | None = None):
        if isolation not in ISOLATIONS:
            raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
        self.isolation, self.timeout = isolation, timeout
        self._proc: subprocess.Popen[str] | None = None

    def needs_process(self, cell: Cell) -> bool:
        """Whether ``cell`` runs in a worker process (see the module docstring)."""
        if self.isolation == "process" or self.timeout is not None:
            return True
        if self.isolation == "inline":
            return False
        from suites.core import registry
        return registry.get(cell.suite).own_process(cell) or is_cuda(cell.device)

    def run_cell(self, cell: Cell, ctx: Context) -> Outcome:
        if cell.repeats > 1:
            return combine_repeats([self.run_in_worker(cell, ctx) for _ in range(cell.repeats)])
        if self.needs_process(cell):
            return self.run_in_worker(cell, ctx)
        return execute(cell, ctx, _suite_module(cell))

    def run_group(self, task: Task, ctx: Context) -> list[tuple[Cell, Outcome]]:
        """The group inline, or in one warm worker process when any of its cells needs one."""
        if any(self.needs_process(c) for c in task.cells):
            job = {"task": {"cells": [c.to_dict() for c in task.cells], "ladder": task.ladder}}
            out = self._worker(task.cells[0], job, ctx, timeout_scale=len(task.cells))
            if isinstance(out, list):
                return [(Cell.from_dict(c), o) for c, o in out]
            return [(c, out) for c in task.cells]
        return execute_group(task, ctx, _suite_module(task.cells[0]))

    def run_in_worker(self, cell: Cell, ctx: Context) -> Outcome:
        """Run ``cell`` in a fresh worker process (its own process group, killed on any way out)."""
        return self._worker(cell, {"cell": cell.to_dict()}, ctx)

    def _worker(self, cell: Cell, job: dict[str, Any], ctx: Context, timeout_scale: int = 1) -> Any:
        """Run ``job`` (one cell, or a group's task) in a fresh worker; its outcome(s), or one failure outcome."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        job = {**job, "module": _suite_module(cell),
               "ctx": {"run_dir": str(ctx.run_dir) if ctx.run_dir else None, "progress": ctx.progress}}
        timeout = self.timeout * timeout_scale if self.timeout is not None else None
        kills_before = oom_kills()
        with tempfile.TemporaryDirectory(prefix="lsnet-cell-") as tmp:
            out = Path(tmp) / "outcome.json"
            self._proc = subprocess.Popen([sys.executable, "-m", "suites.executors.worker", str(out)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                          cwd=str(REPO_ROOT), start_new_session=True)
            try:
                _, stderr = self._proc.communicate(json.dumps(job), timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                what = "cell" if timeout_scale == 1 else f"group of {timeout_scale} cells"
                return outcome(cell, "error", f"{what} timed out after {timeout:g} s (worker killed)")
            finally:
                self.kill()
            if out.exists():
                return json.loads(out.read_text(encoding="utf-8"))
            kills_after = oom_kills()
            oom = None if kills_before is None or kills_after is None else kills_after > kills_before
            status, error = describe_exit(self._proc.returncode, oom)
            tail = (stderr or "").strip().splitlines()
            return outcome(cell, status, error + (f"; last output: {tail[-1][:200]}" if tail else ""))

    def kill(self) -> None:
        """Kill the running worker's process group, if any, and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def close(self) -> None:
        self.kill()


def _suite_module(cell: Cell) -> str:
    from suites.core import registry
    return registry.get(cell.suite).module


def create(**kw: Any) -> LocalExecutor:
    return LocalExecutor(**kw)
