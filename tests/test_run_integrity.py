"""Run folders never lose a row: append-only writes, --resume, one writer at a time, signals,
unique run ids, enforced cell timeouts and honest statuses for killed workers. Each test checks
what is on disk afterwards."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_bench
from suites.sweep import rows, rundir

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--resolution", "64", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3", "--no-progress", "--no-report"]
SLOW = ["--suite", "latency,memory", "--models", "lsnet_t,starnet_s1,repvit_m0_9", "--batch-sizes", "1",
        "--resolution", "64", "--warmup", "0.2", "--min-time", "0.4", "--threads", "1", "--no-progress", "--no-report"]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run_bench.py", *SLOW, "--out", str(out), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (out / "results.jsonl").is_file() and len(_rows(out)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"fewer than {n} rows after {timeout} s")


def _workers_of(pid: int) -> list[int]:
    """Live worker processes started by ``pid`` (their own sessions; matched by parent pid)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and "suites.executors.worker" in (p / "cmdline").read_text():
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_keeps_rows_and_resume_finishes_the_sweep(tmp_path, signum, code):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_rows(out, 4, proc)          # the 4th cell onwards are memory cells, in worker processes
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in err and "--resume" in err
    assert _workers_of(proc.pid) == [] and not (out / ".lock").exists()
    env = json.loads((out / "env.json").read_text())
    assert env["sessions"][-1]["end_reason"] == "interrupted" and env["sessions"][-1]["end_time"]
    before_csv = (out / "results.csv").read_bytes()
    before = _rows(out)
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0
    after = _rows(out)
    assert (out / "results.csv").read_bytes().startswith(before_csv)        # earlier rows byte for byte
    assert after[:len(before)] == before
    keys = [rundir.cell_key(r["cell"]) for r in after]
    assert len(keys) == len(set(keys)) == 3 * 2                             # every cell once
    assert all(r["status"] == "ok" for r in after)
    env = json.loads((out / "env.json").read_text())
    assert [s["end_reason"] for s in env["sessions"]] == ["interrupted", "completed"]
    assert json.loads((out / "results.json").read_text())["rows"] == after  # consolidated copy
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0   # nothing left to run
    assert _rows(out) == after


def test_second_writer_is_refused_and_stale_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    # memory rows first, then an interleaved group that takes at least 3 cells x 5 s: the sweep is still
    # running when the signal comes, however fast or loaded the machine
    proc = _start(out, "--suite", "memory,latency", "--min-time", "5", "--max-time", "6")
    _wait_rows(out, 1, proc)
    assert run_bench.main(["--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "is being written" in err and len(err.strip().splitlines()) == 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    (out / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 7, "host": os.uname().nodename, "start": "then"}))
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert "taking over the stale lock" in capsys.readouterr().err and not (out / ".lock").exists()


def test_resume_rejects_other_arguments_and_non_run_folders(tmp_path, capsys):
    assert run_bench.main(["--resume", str(tmp_path), "--suite", "flops"]) == 2
    assert "--resume takes no other arguments" in capsys.readouterr().err
    assert run_bench.main(["--resume", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_retry_errors_reruns_only_error_cells(tmp_path):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "latency", "--models", "lsnet_t", "--batch-sizes", "1,100000000",
                           "--out", str(out), *FAST]) in (0, 1)
    first = _rows(out)
    assert run_bench.main(["--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert _rows(out) == first                        # oom/error rows are final without --retry-errors
    (out / "results.jsonl").write_text("".join(json.dumps(r | {"status": "error"} if r["batch_size"] == 1 else r)
                                               + "\n" for r in first))
    assert run_bench.main(["--resume", str(out), "--retry-errors", "--no-progress", "--no-report"]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and rows[-1]["batch_size"] == 1 and rows[-1]["status"] == "ok"


def test_run_ids_are_unique():
    ids = {rows.new_run_id() for _ in range(200)}
    assert len(ids) == 200


def test_inline_cell_timeout_is_enforced(tmp_path):
    out = tmp_path / "run"
    code = run_bench.main(["--suite", "latency", "--models", "lsnet_t", "--isolation", "inline", "--cell-timeout",
                           "0.05", "--out", str(out), *FAST])
    (row,) = _rows(out)
    assert code == 1 and row["status"] == "error" and "timed out after 0.05 s" in row["error"]


def test_a_killed_worker_is_an_error_unless_the_oom_killer_is_evidenced(tmp_path, monkeypatch):
    from suites.executors import local
    from suites.core import registry
    from suites.core.cell import Cell, Context
    kill = registry.Suite("suicide", lambda cell, ctx: os.kill(os.getpid(), signal.SIGKILL), "tests.suicide_suite",
                          "test")
    (tmp_path / "suicide_suite.py").write_text(
        "import os, signal\nfrom suites.core.registry import Suite, register\n"
        "register(Suite('suicide', lambda cell, ctx: os.kill(os.getpid(), signal.SIGKILL), __name__, 'test'))\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    registry.register(kill.__class__(**{**kill.__dict__, "module": "suicide_suite"}))
    try:
        res = local.LocalExecutor("process").run_cell(Cell("suicide", "lsnet_t"), Context())["result"]
        assert res["status"] == "error" and "SIGKILL" in res["error"]
        counts = iter([3, 4])
        monkeypatch.setattr(local, "oom_kills", lambda: next(counts))
        res = local.LocalExecutor("process").run_cell(Cell("suicide", "lsnet_t"), Context())["result"]
        assert res["status"] == "oom" and "out-of-memory killer" in res["error"]
    finally:
        registry.unregister("suicide")


def _flops_run(out: Path) -> list[dict]:
    assert run_bench.main(["--suite", "flops", "--models", "lsnet_t", "--out", str(out), *FAST]) == 0
    return _rows(out)


def test_resume_runs_the_recorded_plan_not_the_flags(tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = _flops_run(out)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["settings"]["executor"] == "local" and plan["settings"]["reference"] == "lsnet_t"
    ((cell,),) = [t["cells"] for t in plan["tasks"]]
    assert cell == first[0]["cell"] and cell["fused"] is True
    plan["tasks"].append({**plan["tasks"][0], "cells": [cell | {"model": "starnet_s1"}]})   # only in the plan
    (out / "plan.json").write_text(json.dumps(plan))
    from suites.cli import parser
    build = parser.build_parser

    def changed_default():                  # a default that changed since the run began
        p = build()
        p.set_defaults(no_fuse=True, models="all")
        return p
    monkeypatch.setattr(parser, "build_parser", changed_default)
    assert run_bench.main(["resume", str(out), "--no-progress", "--no-report"]) == 0
    rows = _rows(out)
    assert rows[:1] == first and [r["model"] for r in rows] == ["lsnet_t", "starnet_s1"]
    assert rows[1]["cell"] == cell | {"model": "starnet_s1"} and rows[1]["fused"] is True
    assert json.loads((out / "plan.json").read_text()) == plan          # the plan is never rewritten
    env = json.loads((out / "env.json").read_text())
    assert env["sessions"][-1]["argv"] == ["lsnet-bench", "resume", str(out), "--no-progress", "--no-report"]


def test_a_folder_without_a_plan_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    first = _flops_run(out)
    (out / "plan.json").unlink()             # as an older lsnet-bench wrote it
    capsys.readouterr()
    for argv in (["resume", str(out)], ["--resume", str(out)]):
        assert run_bench.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("lsnet-bench: error: ")
        assert "older lsnet-bench" in err and "plan.json" in err and "into a new folder" in err
    assert _rows(out) == first and not (out / ".lock").exists()


def test_plan_round_trips_tasks_and_suite_options(tmp_path):
    from suites import ops, train
    from suites.core.cell import Cell, Task
    tasks = [Task((Cell("train", "lsnet_t", batch_size=8, options=train.Options(optimizer="adamw", lr=0.01)),
                   Cell("train", "lsnet_t", batch_size=16, options=train.Options(optimizer="adamw", lr=0.01))),
                  ladder=True),
             Task((Cell("ops", "lsnet_t", options=ops.Options(op_stages="stage2", copy_mb=8)),),
                  skip_reason="not here"),
             Task((Cell("latency", "lsnet_t", reference="lsnet_t"), Cell("latency", "starnet_s1", reference="lsnet_t")),
                  interleaved=True)]
    rundir.write_plan(tmp_path, tasks, {"executor": "local"})
    assert rundir.read_plan(tmp_path) == (tasks, {"executor": "local"})
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]          # no temporary file left
    (tmp_path / "plan.json").write_text("{")
    with pytest.raises(rundir.RunDirError, match="unreadable"):
        rundir.read_plan(tmp_path)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_raise_was_swallowed_still_ends_the_sweep(tmp_path):
    """A signal handled inside a finaliser loses its exception; the sweep still stops after that row."""
    import gc
    from suites.core.cell import Cell, Context, Task
    from suites.executors.local import LocalExecutor
    from suites.sweep.run import run_sweep
    from suites.sweep.writer import ResultWriter

    class Finaliser:
        def __del__(self):          # the handler's raise lands here and is dropped ("Exception ignored in")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)

    class Once(LocalExecutor):
        def run_cell(self, cell, ctx):
            Finaliser()
            gc.collect()
            return {"result": {"status": "ok"}, "machine": {"host": "h", "device_name": "d", "threads": 1}}

    tasks = [Task([Cell("flops", m)]) for m in ("lsnet_t", "starnet_s1", "repvit_m0_9")]
    writer = ResultWriter(tmp_path, "r")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(rundir.Interrupted) as exc:
        with rundir.signals_interrupt() as signals:
            run_sweep(tasks, Once(), writer, Context(), progress=False, check=signals.raise_if_received)
    assert exc.value.exit_code == 143 and signals.received == signal.SIGTERM
    assert len(_rows(tmp_path)) == 1                # the first row is kept, nothing after the signal ran
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before   # the handlers are restored
    with pytest.raises(rundir.Interrupted):         # a block that ends after a dropped raise raises it at its end
        with rundir.signals_interrupt():
            Finaliser()
            gc.collect()
