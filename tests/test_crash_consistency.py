"""Run folders survive a crash: a torn last line of results.csv or results.jsonl is set aside in a
``*.torn`` file with a warning, the two files agree again, and --resume measures the torn row's cell."""
from __future__ import annotations

import csv
import json

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
