"""Reading results folders (results.csv / results.json / env.json) into one table of rows."""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reports.config import add_config
from suites.core import resultfiles
from suites.core.schema import DEFAULT_TASK, NUMERIC_COLUMNS, ROW_COLUMNS, read_jsonl, resolution_text


class ResultsError(ValueError):
    """A results folder that is missing or cannot be read."""


@dataclass
class Run:
    """One results folder: its rows (ROW_COLUMNS + ``extra`` dicts + ``run_dir``), env.json and command."""
    path: Path
    rows: pd.DataFrame
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str | None:
        """The exact command line, from env.json's ``argv``."""
        argv = self.env.get("argv")
        return shlex.join(map(str, argv)) if isinstance(argv, list) and argv else None

    @property
    def partial(self) -> str | None:
        """Why this folder's sweep is incomplete (its last session did not complete), or None."""
        sessions = self.env.get("sessions") or []
        last = sessions[-1] if sessions and isinstance(sessions[-1], dict) else {}
        reason = last.get("end_reason")
        if not sessions or reason == "completed":
            return None
        if reason is None:
            return "the sweep is still running or was killed (no end recorded); finish it with --resume"
        return (f"the sweep was {reason} after {last.get('measured_cells')} of {last.get('planned_cells')} cells; "
                "finish it with --resume")

    @property
    def run_id(self) -> str:
        ids = self.rows["run_id"].dropna().astype(str).unique() if len(self.rows) else []
        return ids[0] if len(ids) else self.path.name


def _json_rows(obj: Any) -> list[dict[str, Any]] | None:
    rows = obj.get("rows") if isinstance(obj, dict) else None
    return rows if isinstance(rows, list) else None


def _clean_extra(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    if isinstance(v, str) and v.strip().startswith("{"):
        try:
            return json.loads(v)
        except ValueError:
            return {}
    return {}


def _bool(v: Any) -> bool | None:
    """True/False from a JSON bool or a CSV text; None when not recorded."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0"):
        return v.strip().lower() in ("true", "1")
    if isinstance(v, int | float) and v == v:
        return bool(v)
    return None


def _task(v: Any) -> str:
    """A row's task; blank (older rows) is classify."""
    return str(v) if isinstance(v, str) and v.strip() else DEFAULT_TASK


def _resolution(v: Any) -> str | None:
    """A row's resolution as text (``"224"``, ``"800x1333"``), whatever form the file holds (a number in
    older folders and in a CSV read as numbers); None when blank or unreadable."""
    try:
        return resolution_text(v)
    except ValueError:
        return None


def load_run(path: str | os.PathLike) -> Run:
    """Read a results folder: results.jsonl rows (with ``extra``), else results.json, else results.csv.
    Unreadable files raise :class:`ResultsError` naming the folder."""
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"results folder {path}: no such directory (expected results.csv/results.json from a run)")
    jpath, lpath, cpath = path / "results.json", path / "results.jsonl", path / "results.csv"
    if not (path / resultfiles.LOCK_NAME).exists():    # a folder being written is read as it is
        try:
            for warning in resultfiles.repair(path):
                print(warning, file=sys.stderr)
        except OSError:                                  # a read-only folder is read as it is
            pass
    try:
        return _read_run(path, jpath, lpath, cpath)
    except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError, OSError) as e:
        raise ResultsError(f"results folder {path}: unreadable results ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _read_run(path: Path, jpath: Path, lpath: Path, cpath: Path) -> Run:
    rows: list[dict[str, Any]] | None = None
    if lpath.is_file():   # the rows as written, including those of a session that has not ended
        rows = read_jsonl(lpath)
    elif jpath.is_file():
        try:
            rows = _json_rows(json.loads(jpath.read_text(encoding="utf-8")))
        except ValueError as e:
            if not cpath.is_file():
                raise ResultsError(f"{jpath}: not valid JSON ({e}) and no results.csv to fall back on") from None
    if rows is not None:
        df = pd.DataFrame([{k: v for k, v in r.items() if k != "samples"} for r in rows if isinstance(r, dict)])
    elif cpath.is_file():
        df = pd.read_csv(cpath)
    else:
        raise ResultsError(f"results folder {path} has neither results.json nor results.csv; "
                           "pass the folder a run wrote (e.g. results/<run_id>)")
    for col in ROW_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["extra"] = [_clean_extra(v) for v in df["extra"]] if "extra" in df.columns else [{} for _ in range(len(df))]
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("model", "family", "device", "device_name", "dtype", "top1_source", "status", "suite", "run_id",
                "engine", "host"):
        df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    df["status"] = df["status"].fillna("ok")
    df["task"] = df["task"].map(_task)                 # rows from before tasks existed are classify
    df["resolution"] = df["resolution"].map(_resolution)   # "224" / "800x1333", as the schema writes it
    df["dtype"] = df["dtype"].fillna("float32")
    df["engine"] = df["engine"].fillna("eager")
    df["stable"] = df["stable"].map(_bool)
    df["warnings"] = df["warnings"].map(lambda v: str(v) if isinstance(v, str) and v.strip() else None)
    df["run_dir"] = str(path)
    env: dict[str, Any] = {}
    if (path / "env.json").is_file():
        try:
            env = json.loads((path / "env.json").read_text(encoding="utf-8"))
        except ValueError as e:
            env = {"error": f"env.json is not valid JSON: {e}"}
    if isinstance(env, dict) and env.get("host"):
        df["host"] = df["host"].fillna(str(env["host"]))
    return Run(path=path, rows=df, env=env if isinstance(env, dict) else {"env": env})


def combine(runs: list[Run]) -> pd.DataFrame:
    """All rows of ``runs`` with a ``panel_device`` label (a device name seen in several runs gets the run
    id) and a ``config`` label in words (see :mod:`reports.config`)."""
    frames = []
    for run in runs:
        df = run.rows.copy()
        df["run_label"] = run.run_id
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=[*ROW_COLUMNS, "extra", "run_dir", "run_label", "panel_device", "config",
                                     "config_key"])
    df = pd.concat(frames, ignore_index=True)
    name = df["device_name"].where(df["device_name"].notna(), df["device"]).fillna("unknown device")
    runs_per_name = df.groupby(name)["run_label"].nunique()
    df["panel_device"] = [f"{n} [{r}]" if runs_per_name[n] > 1 else n for n, r in zip(name, df["run_label"])]
    return add_config(df)
