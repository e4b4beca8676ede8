"""Run folders: one writer at a time (a lock file), the plan a run recorded and what a folder already
holds (for ``--resume``), and signals that end a sweep the way Ctrl-C does."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from suites.core.resultfiles import LOCK_NAME, write_atomic
from suites.core.cell import Cell, Task
from suites.core.schema import FINAL_STATUSES, read_jsonl

PLAN_NAME = "plan.json"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class RunDirError(Exception):
    """The run folder cannot be used (held by another writer, unwritable, not a run folder)."""


class Interrupted(KeyboardInterrupt):
    """A sweep ended by a signal (SIGINT, SIGTERM or SIGHUP); ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)


class Signals:
    """The signal a :func:`signals_interrupt` block received, kept after its :class:`Interrupted` was raised:
    Python drops an exception raised in a finaliser or weakref callback ("Exception ignored in ..."), so a
    signal handled there would otherwise be lost and the sweep would run on to completion."""

    def __init__(self) -> None:
        self.received: int | None = None

    def raise_if_received(self) -> None:
        """Raise :class:`Interrupted` again if a signal came (whether or not its first raise got through)."""
        if self.received is not None:
            raise Interrupted(self.received)


@contextmanager
def signals_interrupt() -> Iterator[Signals]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` and are remembered in the
    :class:`Signals` it yields; a block that ends normally after one (its raise was dropped) raises it then."""
    got = Signals()

    def handler(signum: int, frame: FrameType | None) -> None:
        got.received = signum
        raise Interrupted(signum)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield got
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    got.raise_if_received()


def check_writable(path: Path) -> None:
    """Raise :class:`RunDirError` unless ``path`` is (or can be made) a writable folder."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"--out {path} is not a writable folder ({exc.strerror or exc})") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunLock:
    """``run_dir/.lock`` held while a sweep writes the folder; a stale lock (dead pid on this host) is
    taken over with a warning, a live one refused naming its holder."""
    run_dir: Path

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_NAME

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _now(), "argv": sys.argv}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1))):
                    print(f"warning: taking over the stale lock of {self.run_dir} (pid {holder.get('pid')} "
                          f"started {holder.get('start')} is gone)", file=sys.stderr)
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunDirError(f"{self.run_dir} is being written by pid {holder.get('pid')} on "
                                  f"{holder.get('host')} since {holder.get('start')}; wait for it or choose "
                                  "another folder") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return
        raise RunDirError(f"could not lock {self.run_dir}")

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def _now() -> str:
    from suites.sweep.envfile import now_iso
    return now_iso()


def cell_key(cell: Cell | dict[str, Any]) -> str:
    """A stable identity of a cell (its JSON form; a recorded cell without a field added since, e.g. ``task``,
    has that field's default, so older folders resume without re-running their cells)."""
    if isinstance(cell, Cell):
        d = cell.to_dict()
    else:
        d = {f.name: f.default for f in dataclasses.fields(Cell) if f.default is not dataclasses.MISSING}
        d.update(cell)
    return json.dumps(d, sort_keys=True, default=str)


def finished_cells(run_dir: Path, retry_errors: bool = False) -> set[str]:
    """Keys of the cells that already have a final row (``error`` counts unless ``retry_errors``)."""
    final = set(FINAL_STATUSES) - ({"error"} if retry_errors else set())
    return {cell_key(r["cell"]) for r in read_jsonl(run_dir / "results.jsonl")
            if isinstance(r.get("cell"), dict) and r.get("status") in final}


def remaining(tasks: list[Task], done: set[str]) -> list[Task]:
    """The tasks with the finished cells taken out (a ladder resumes at its first unfinished batch)."""
    out = []
    for task in tasks:
        cells = tuple(c for c in task.cells if cell_key(c) not in done)
        if cells:
            out.append(Task(cells, ladder=task.ladder, skip_reason=task.skip_reason, interleaved=task.interleaved))
    return out


def _task_dict(task: Task) -> dict[str, Any]:
    return {"cells": [c.to_dict() for c in task.cells], "ladder": task.ladder, "skip_reason": task.skip_reason,
            "interleaved": task.interleaved}


def _task(d: dict[str, Any]) -> Task:
    return Task(tuple(Cell.from_dict(c) for c in d["cells"]), ladder=d["ladder"], skip_reason=d["skip_reason"],
                interleaved=d["interleaved"])


def write_plan(run_dir: Path, tasks: Sequence[Task], settings: dict[str, Any]) -> None:
    """Write ``plan.json`` atomically: the tasks as planned (cells, ladder, skip reason, interleaved) and
    the settings they run with, which ``--resume`` runs again."""
    doc = {"settings": settings, "tasks": [_task_dict(t) for t in tasks]}
    write_atomic(Path(run_dir) / PLAN_NAME, json.dumps(doc, indent=1))


def read_plan(run_dir: Path) -> tuple[list[Task], dict[str, Any]]:
    """The tasks and settings recorded in ``run_dir/plan.json``; :class:`RunDirError` saying why when the
    folder has none (not a run folder, or one written before plans were recorded) or it is unreadable."""
    path = Path(run_dir) / PLAN_NAME
    if not path.is_file():
        if (Path(run_dir) / "env.json").is_file():
            raise RunDirError(f"{run_dir} was written by an older lsnet-bench that did not record its plan "
                              f"({PLAN_NAME}), so it cannot be resumed; run the sweep again into a new folder")
        raise RunDirError(f"{run_dir} is not a run folder (no {PLAN_NAME}); --resume takes a folder that a run "
                          "wrote")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [_task(t) for t in doc["tasks"]], dict(doc["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path} is unreadable ({type(exc).__name__}: {exc}); it cannot be resumed, run the "
                          "sweep again into a new folder") from None
