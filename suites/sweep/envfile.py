"""``env.json``: the project's facts, one environment per host that measured a row, the command line and
every session's start, end and end reason; written atomically."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from suites.core.hostinfo import git_revision, host_environment
from suites.core.resultfiles import write_atomic


def environment(devices: list[str], threads: int, argv: list[str], started: str) -> dict[str, Any]:
    """env.json for a new run: the project, this host's facts (top level and under ``hosts``), the
    command line and the first session."""
    try:
        from importlib.metadata import version
        project_version = version("lsnet-bench")
    except Exception:
        project_version = None
    host = host_environment(devices, threads)
    return {"project_version": project_version, "git_revision": git_revision(), **host,
            "hosts": {host["host"]: host},
            "command_line": " ".join([Path(argv[0]).name] + argv[1:]) if argv else "", "argv": argv,
            "start_time": started, "end_time": None,
            "sessions": [{"start_time": started, "end_time": None, "end_reason": None, "host": host["host"],
                          "pid": os.getpid(), "argv": argv, "loadavg_start": host["loadavg"]}]}


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    """Write env.json atomically."""
    write_atomic(Path(run_dir) / "env.json", json.dumps(env, indent=1, default=str))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_session(run_dir: Path, devices: list[str], threads: int, argv: list[str], run_id: str,
                  resume: bool, planned_cells: int) -> dict[str, Any]:
    """env.json with a new session begun (a new run's whole document, or a resumed run's with this host's
    facts and one more session); written, and returned for :func:`end_session`."""
    started = now_iso()
    if resume:
        env = json.loads((run_dir / "env.json").read_text(encoding="utf-8"))
        host = host_environment(devices, threads)
        env.setdefault("hosts", {})[host["host"]] = host
        env.setdefault("sessions", []).append({"start_time": started, "end_time": None, "end_reason": None,
                                               "host": host["host"], "pid": os.getpid(), "argv": argv,
                                               "loadavg_start": host["loadavg"]})
        env.setdefault("run_id", run_id)
    else:
        env = environment(devices, threads, argv, started)
        env["run_id"] = run_id
    env["sessions"][-1]["planned_cells"] = planned_cells
    write_env(run_dir, env)
    return env


def end_session(run_dir: Path, env: dict[str, Any], reason: str, **facts: Any) -> None:
    """Mark the last session of ``env`` ended with ``reason`` (and ``facts``) and write env.json."""
    env["end_time"] = env["sessions"][-1]["end_time"] = now_iso()
    env["sessions"][-1].update(end_reason=reason, **facts,
                               loadavg_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    write_env(run_dir, env)
