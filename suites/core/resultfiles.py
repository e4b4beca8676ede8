"""The run folder's result files on disk: appending a row, and setting aside what a crash tore.

A writer appends each row to ``results.csv`` and then to ``results.jsonl``, each as one complete line
written with one call and flushed to disk. A crash (power loss, a killed process, a full disk) can
leave the last line of either file incomplete, and ``results.csv`` one row ahead of ``results.jsonl``.
:func:`repair` cuts such a tail off, keeps it in ``<file>.torn`` beside the file, and gives a one-line
warning naming it; the cell it belonged to has no row in ``results.jsonl``, so ``--resume`` measures it
again. Afterwards both files hold the same rows, and a row appended next starts on a line of its own.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from suites.core.schema import ROW_COLUMNS

CSV_NAME, JSONL_NAME, LOCK_NAME = "results.csv", "results.jsonl", ".lock"
TORN_SUFFIX = ".torn"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """No space is left (ENOSPC, or a quota's EDQUOT) on the device of the run-folder file ``path``."""

    def __init__(self, path: Path | str):
        super().__init__(errno.ENOSPC, "no space left on device", str(path))
        self.path = Path(path)


@contextlib.contextmanager
def naming_a_full_disk(path: Path | str) -> Iterator[None]:
    """Within the block, an OSError of a full disk becomes :class:`DiskFull` naming ``path``."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise DiskFull(path) from exc
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, flushed, then renamed over it. The
    temporary file is removed whatever happens; a full disk is :class:`DiskFull`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        with naming_a_full_disk(path):
            with tmp.open("w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record (``csv`` module quoting, ``\\r\\n`` terminated)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


def csv_value(v: Any) -> Any:
    """A row's value as results.csv holds it (None and NaN blank)."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return v


def row_line(row: dict[str, Any]) -> str:
    """The results.csv record of ``row`` (``ROW_COLUMNS`` order)."""
    return csv_line([csv_value(row.get(c)) for c in ROW_COLUMNS])


def append(path: Path, text: str, sync: bool = True) -> None:
    """Append ``text`` with one write call per chunk the kernel takes, then flush it to disk (a full disk
    is :class:`DiskFull`; what it cut short is set aside by :func:`repair` on the next open)."""
    data = text.encode("utf-8")
    with naming_a_full_disk(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


def _jsonl_records(data: bytes) -> list[int]:
    """End offsets of the complete lines of a results.jsonl."""
    ends, pos = [], 0
    for line in data.splitlines(keepends=True):
        pos += len(line)
        if line.endswith(b"\n"):
            ends.append(pos)
    return ends


def _csv_records(data: bytes) -> list[int]:
    """End offsets of the complete records of a results.csv (a record is complete when it ends with a
    line break outside quotes: its quote characters are even in number, as the csv module writes them)."""
    ends, pos, quotes = [], 0, 0
    for line in data.splitlines(keepends=True):
        pos += len(line)
        quotes += line.count(b'"')
        if line.endswith(b"\n") and quotes % 2 == 0:
            ends.append(pos)
            quotes = 0
    return ends


def _set_aside(path: Path, keep: int) -> str | None:
    """Move the bytes of ``path`` after offset ``keep`` to ``<path>.torn``; a warning, or None if none."""
    size = path.stat().st_size
    if keep >= size:
        return None
    with path.open("rb") as f:
        f.seek(keep)
        tail = f.read()
    torn = path.with_name(path.name + TORN_SUFFIX)
    with torn.open("ab") as f:
        f.write(tail if tail.endswith(b"\n") else tail + b"\n")
        f.flush()
        os.fsync(f.fileno())
    with path.open("r+b") as f:
        f.truncate(keep)
        os.fsync(f.fileno())
    return (f"warning: {path} ended in a write a crash cut short ({len(tail)} bytes); set aside in {torn}, "
            "and its cell is measured again by --resume")


def repair(run_dir: Path) -> list[str]:
    """Make ``results.csv`` and ``results.jsonl`` of ``run_dir`` whole and in agreement: a torn last line
    of either, and csv rows whose JSON line was never written, go to ``*.torn``; csv rows missing for
    complete JSON lines are appended. One warning per file changed."""
    run_dir = Path(run_dir)
    jsonl, csv_path = run_dir / JSONL_NAME, run_dir / CSV_NAME
    warnings = []
    rows: list[dict[str, Any]] = []
    if jsonl.is_file():
        ends = _jsonl_records(jsonl.read_bytes())
        warnings.append(_set_aside(jsonl, ends[-1] if ends else 0))
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:       # a line glued by an older writer: kept, counted, not readable
                rows.append({})
    if not jsonl.is_file():          # results.csv alone was not written by a writer of this suite: as it is
        pass
    elif csv_path.is_file() or rows:
        ends = _csv_records(csv_path.read_bytes()) if csv_path.is_file() else []
        if csv_path.is_file():       # the header, then one record per JSON line
            warnings.append(_set_aside(csv_path, ends[min(len(rows), len(ends) - 1)] if ends else 0))
        missing = rows[max(len(ends) - 1, 0):]
        if missing:
            append(csv_path, ("" if ends else csv_line(ROW_COLUMNS)) + "".join(row_line(r) for r in missing))
            warnings.append(f"warning: {csv_path} lacked {len(missing)} row(s) of {jsonl.name}; appended them")
    return [w for w in warnings if w]
