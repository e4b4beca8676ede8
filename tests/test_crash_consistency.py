"""Run folders survive a crash: a torn last line of results.csv or results.jsonl is set aside in a
``*.torn`` file with a warning, the two files agree again, and --resume measures the torn row's cell."""
from __future__ import annotations

import csv
import errno
import json
import os

import pytest

import run_bench
from suites.core import resultfiles
from suites.core.cell import Cell
from suites.sweep.rows import make_row
from suites.sweep.writer import ResultWriter

FAST = ["--device", "cpu", "--threads", "1", "--resolution", "64", "--no-progress", "--no-report"]
MACHINE = {"host": "h", "device_name": "CPU", "threads": 1}


def _rows(n: int) -> list[dict]:
    return [make_row("r", Cell("flops", m), {"result": {"status": "error", "gmacs": 0.1 * (i + 1),
                                                        "error": "a\nmulti-line \"reason\""}, "machine": MACHINE})
            for i, m in enumerate(["lsnet_t", "starnet_s1", "repvit_m0_9"][:n])]


def _written(tmp_path, n: int = 3) -> ResultWriter:
    w = ResultWriter(tmp_path, "r")
    for row in _rows(n):
        w.add(row)
    return w


def _csv_models(path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [r["model"] for r in csv.DictReader(f)]


def _jsonl_models(path) -> list[str]:
    return [json.loads(line)["model"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("cut", [1, 40, 200])
def test_a_torn_json_line_and_its_csv_row_are_set_aside(tmp_path, cut, capsys):
    """The crash hit while the last JSON line was being written: its csv row is complete, its JSON not."""
    w = _written(tmp_path)
    data = w.jsonl_path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    w.jsonl_path.write_bytes(data[:last + cut])
    ResultWriter(tmp_path, "r2")
    err = capsys.readouterr().err
    assert f"{w.jsonl_path}" in err and "results.jsonl.torn" in err and "results.csv.torn" in err
    assert _jsonl_models(w.jsonl_path) == _csv_models(w.csv_path) == ["lsnet_t", "starnet_s1"]
    assert (tmp_path / "results.jsonl.torn").read_bytes() == data[last:last + cut] + b"\n"
    assert b"repvit_m0_9" in (tmp_path / "results.csv.torn").read_bytes()   # kept, not lost


def test_a_torn_csv_record_inside_quotes_is_set_aside(tmp_path, capsys):
    """The crash hit while the csv row was written (its JSON line never started), inside a quoted field."""
    w = _written(tmp_path, 2)
    data = w.csv_path.read_bytes()
    w.csv_path.write_bytes(data + resultfiles.row_line(_rows(3)[2]).encode()[:-12])
    assert b'"a\nmulti' in data                    # the error field spans lines inside its quotes
    ResultWriter(tmp_path, "r2")
    assert "results.csv.torn" in capsys.readouterr().err
    assert w.csv_path.read_bytes() == data
    assert _csv_models(w.csv_path) == _jsonl_models(w.jsonl_path) == ["lsnet_t", "starnet_s1"]


def test_whole_files_are_left_alone_and_missing_csv_rows_restored(tmp_path, capsys):
    w = _written(tmp_path)
    csv_bytes, jsonl_bytes = w.csv_path.read_bytes(), w.jsonl_path.read_bytes()
    assert resultfiles.repair(tmp_path) == []
    assert (w.csv_path.read_bytes(), w.jsonl_path.read_bytes()) == (csv_bytes, jsonl_bytes)
    assert not list(tmp_path.glob("*.torn"))
    w.csv_path.unlink()                             # e.g. lost by hand: rebuilt from the JSON lines
    warnings = resultfiles.repair(tmp_path)
    assert len(warnings) == 1 and "lacked 3 row(s)" in warnings[0]
    assert w.csv_path.read_bytes() == csv_bytes


def test_resume_measures_the_torn_cell_again_and_files_agree(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "flops", "--models", "lsnet_t,starnet_s1", "--out", str(out), *FAST]) == 0
    jsonl, csv_path = out / "results.jsonl", out / "results.csv"
    data = jsonl.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    torn_model = json.loads(data[last:])["model"]
    jsonl.write_bytes(data[:last + 25])             # killed mid-line: csv has the row, the JSON half of it
    capsys.readouterr()
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert "results.jsonl.torn" in capsys.readouterr().err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]          # every line parses
    assert sorted(r["model"] for r in rows) == ["lsnet_t", "starnet_s1"]
    assert rows[-1]["model"] == torn_model and rows[-1]["status"] == "ok"        # measured again
    assert _csv_models(csv_path) == [r["model"] for r in rows]


class _FillingDisk:
    """``os`` as resultfiles sees it, on a device that fills up during results.jsonl's row ``rows + 1``:
    ``rows`` appends fit, the next is cut short after 30 bytes, then every write fails."""

    def __init__(self, rows: int):
        self.rows, self.cut = rows, 30

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data) -> int:
        if "results.jsonl" not in os.readlink(f"/proc/self/fd/{fd}"):
            return os.write(fd, data)
        if self.rows:
            self.rows -= 1
            return os.write(fd, data)
        if self.cut:
            n, self.cut = os.write(fd, bytes(data[:self.cut])), 0
            return n
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_ends_the_run_with_one_line_and_resume_finishes_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(resultfiles, "os", _FillingDisk(rows=1))       # one row fits, the second is cut short
    code = run_bench.main(["--suite", "flops", "--models", "lsnet_t,starnet_s1,repvit_m0_9", "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == (f"lsnet-bench: no space left on device while writing {out / 'results.jsonl'}; 1 rows are on "
                       f"disk and intact; free space and run --resume {out}")
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]                     # no temp files left
    env = json.loads((out / "env.json").read_text())
    assert env["sessions"][-1]["end_reason"].startswith("no space left on device while writing")
    monkeypatch.setattr(resultfiles, "os", os)                          # space freed
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert sorted(_jsonl_models(out / "results.jsonl")) == ["lsnet_t", "repvit_m0_9", "starnet_s1"]
    assert _csv_models(out / "results.csv") == _jsonl_models(out / "results.jsonl")


def test_an_atomic_write_on_a_full_disk_leaves_no_temp_file(tmp_path, monkeypatch):
    class NoRoom(_FillingDisk):
        def fsync(self, fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")
    (tmp_path / "env.json").write_text("{}")
    monkeypatch.setattr(resultfiles, "os", NoRoom(0))
    with pytest.raises(resultfiles.DiskFull) as info:
        resultfiles.write_atomic(tmp_path / "env.json", '{"a": 1}')
    assert info.value.path == tmp_path / "env.json" and "no space left" in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["env.json"] and (tmp_path / "env.json").read_text() == "{}"


def test_the_report_sets_a_torn_tail_aside_unless_a_run_holds_the_folder(tmp_path, capsys):
    from reports.load import load_run
    w = _written(tmp_path)
    torn = w.jsonl_path.read_bytes() + b'{"run_id": "r", "suite": "fl'
    (tmp_path / ".lock").write_text("{}")                    # a run is writing: read as it is
    w.jsonl_path.write_bytes(torn)
    assert len(load_run(tmp_path).rows) == 3 and w.jsonl_path.read_bytes() == torn
    (tmp_path / ".lock").unlink()
    capsys.readouterr()
    assert len(load_run(tmp_path).rows) == 3
    assert "results.jsonl.torn" in capsys.readouterr().err and (tmp_path / "results.jsonl.torn").is_file()
    assert _jsonl_models(w.jsonl_path) == _csv_models(w.csv_path)


def test_a_folder_with_results_csv_alone_keeps_every_row(tmp_path):
    w = _written(tmp_path)
    w.jsonl_path.unlink()
    data = w.csv_path.read_bytes()
    assert resultfiles.repair(tmp_path) == [] and w.csv_path.read_bytes() == data
