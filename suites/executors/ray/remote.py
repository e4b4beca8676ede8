"""What runs on a Ray worker: the slot actor's class, one cell in the slot's process with the files it
wrote collected for the driver, and the node's environment for ``env.json``."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from suites.core.cell import Cell, Context

RUN_DIR_TOKEN = "{run_dir}"           # stands for the driver's run folder in a remote outcome


def replace_prefix(obj: Any, old: str, new: str) -> Any:
    """``obj`` (strings, dicts, lists, tuples) with every string that starts with ``old`` starting with ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: replace_prefix(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(replace_prefix(v, old, new) for v in obj)
    return obj


def collect_files(root: Path, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
    """Every file under ``root`` as ``(relative path, bytes)``; none, and a warning saying why, when
    together they are over ``limit`` bytes."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    if total > limit:
        return [], f"{len(files)} artifact file(s) ({total / 2**20:.1f} MiB) not sent back: over the " \
                   f"{limit / 2**20:.0f} MiB limit of a cell"
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in files], None


def serve_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in this slot's process (called by the slot actor): the outcome, the files the
    cell wrote (paths relative to its run folder) and the physical device that measured it."""
    import importlib

    import ray

    from suites.executors.local import LocalExecutor
    if job.get("module"):
        importlib.import_module(job["module"])   # a suite registered outside the built-in list
    cell = Cell.from_dict(job["cell"])
    device = cell.device
    if job["kind"] == "cuda":
        ids = ray.get_gpu_ids()
        device = f"cuda:{ids[0]}" if ids else cell.device
        cell = cell.with_(device="cuda:0")   # the GPU Ray gave this slot
    tmp = Path(tempfile.mkdtemp(prefix="lsnet-ray-cell-")) if job["keep_files"] else None
    try:
        ctx = Context(run_dir=tmp, progress=False)
        out = LocalExecutor(isolation=job["isolation"], timeout=job["timeout"]).run_cell(cell, ctx)
        files: list[tuple[str, bytes]] = []
        if tmp is not None:
            files, note = collect_files(tmp, job["artifact_limit"])
            out = replace_prefix(out, str(tmp), RUN_DIR_TOKEN)
            if note:
                out["result"]["warnings"] = list(out["result"].get("warnings") or []) + [note]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"outcome": out, "files": files, "device": device}


def serve_environment(kind: str, threads: int) -> dict[str, Any]:
    """:func:`suites.core.hostinfo.host_environment` of this node for this slot's device."""
    import ray

    from suites.core.hostinfo import host_environment
    env = host_environment(["cuda:0"] if kind == "cuda" else ["cpu"], threads)
    if kind == "cuda":
        ids = ray.get_gpu_ids()
        for entry in env["devices"]:
            entry["device"] = f"cuda:{ids[0]}" if ids else entry["device"]
    return env


def slot_class() -> type:
    """The slot actor's class. Defined in a function so Ray ships it by value: a node that cannot
    import the project (or runs another revision of it) still answers, with a clear error. It checks
    the revision through the package (:func:`suites.executors.ray.project_revision`, there in every
    revision) before it imports this module on the node."""
    class Slot:
        def __init__(self, node: str) -> None:
            self.node = node

        def ping(self) -> int:
            import os
            return os.getpid()

        def _project(self, revision: str) -> tuple[Any, str | None]:
            import importlib
            try:
                mine = importlib.import_module("suites.executors.ray").project_revision()
                if mine == revision:
                    return importlib.import_module("suites.executors.ray.remote"), None
            except Exception as exc:  # noqa: BLE001
                return None, (f"node {self.node} cannot import the project ({type(exc).__name__}: {exc}); "
                              f"the driver runs {revision}")
            return None, (f"version skew on node {self.node}: the worker runs {mine}, the driver {revision}; "
                          f"install the driver's revision on every node")

        def run_cell(self, job: dict) -> dict:
            import time
            started = time.time()
            mod, fatal = self._project(job["revision"])
            if fatal:
                reply = {"fatal": fatal}
            else:
                try:
                    reply = mod.serve_cell(job)
                except Exception as exc:  # noqa: BLE001  (a cell that cannot even start is its row)
                    reply = {"failed": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
            reply.update(started=started, ended=time.time())
            return reply

        def environment(self, kind: str, threads: int, revision: str) -> dict | None:
            mod, fatal = self._project(revision)
            return None if fatal else mod.serve_environment(kind, threads)

    return Slot
