"""run_bench end to end on CPU at small sizes, every bad-input case (exit 2, one line), and the commands."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import run_bench
from suites import cli
from suites.core.schema import ROW_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--models", "lsnet_t", "--resolution", "64", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3",
        "--no-progress", "--no-report"]


@pytest.mark.parametrize("argv, needle", [
    (["--suite", "speed"], "unknown suite 'speed'; choose from latency"),
    (["--models", "resnet9000"], "unknown model 'resnet9000'"),
    (["--dtype", "float8"], "unknown dtype 'float8'; choose from float32, float16, bfloat16, amp"),
    (["--device", "cuda:7"], "device 'cuda:7' is not available"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--batch-sizes", "0"], "batch size 0 must be a positive integer"),
    (["--batch-sizes", "-4"], "batch size -4 must be a positive integer"),
    (["--batch-sizes", "two"], "batch size 'two' is not an integer"),
    (["--threads", "0"], "--threads must be > 0"),
    (["--resolution", "-1"], "--resolution must be > 0"),
    (["--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs a CUDA device"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--engine", "tvm"], "unknown engine 'tvm'; choose from eager, compile"),
    (["--compile", "--compile-mode", "bogus"], "unknown --compile-mode 'bogus'"),
    (["--warmup", "inf"], "--warmup must be a finite number"),
    (["--min-time", "nan"], "--min-time must be a finite number"),
    (["--cell-timeout", "inf"], "--cell-timeout must be a finite number"),
    (["--suite", "accuracy"], "suite 'accuracy' needs --data DIR"),
    (["--suite", "accuracy", "--data", "/d"], "needs --checkpoint PATH"),
    (["--suite", "ops", "--op-backends", "cuda"], "--op-backends: cuda; choose from reference"),
    (["--min-samples", "1000000000"], "--min-samples 1000000000 is above its bound 100000; give at most 100000"),
    (["--repeats", "5000", "--protocol", "sequential"], "--repeats 5000 is above its bound 100"),
    (["--max-time", "1e9"], "--max-time 1000000000.0 is above its bound 3600"),
    (["--group-time", "1e7"], "--group-time 10000000.0 is above its bound 86400"),
    (["--warmup", "100000"], "--warmup 100000.0 is above its bound 600"),
    (["--suite", "accuracy", "--dataset", "proxy", "--proxy-steps", "99999999"],
     "--proxy-steps 99999999 is above its bound 100000"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_bench.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_cuda_on_cpu_only_machine_subprocess():
    proc = subprocess.run([sys.executable, "run_bench.py", "--device", "cuda", "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "device 'cuda' is not available" in lines[0] and "visible devices: cpu" in lines[0]


def test_list_and_help(capsys):
    assert run_bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "lsnet_t" in out and "latency" in out and "cpu" in out
    from suites.cli.parser import build_parser
    help_text = build_parser().format_help()
    assert "engines:" in out and "eager  available" in out and "ops" in out
    for flag in ("--suite", "--device", "--models", "--batch-sizes", "--dtype", "--channels-last", "--compile",
                 "--cuda-graphs", "--no-fuse", "--threads", "--resolution", "--warmup", "--min-time", "--out", "--list",
                 "--engine", "--data", "--checkpoint", "--crop-ratio", "--workers", "--eval-batch-size", "--tag",
                 "--op-backends"):
        assert flag in help_text


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["rows"]


def test_cli_every_cpu_suite_end_to_end(tmp_path):
    """One subprocess run of latency, throughput, flops and profile through the real CLI."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "run_bench.py", "--suite", "latency,throughput,flops,profile",
                           "--batch-sizes", "1", "--threads", "2", "--out", str(out), *FAST],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "latency" in proc.stdout and "lsnet_t" in proc.stdout           # the summary table
    rows = {r["suite"]: r for r in _rows(out)}
    assert set(rows) == {"latency", "throughput", "flops", "profile"}
    assert all(r["status"] == "ok" and r["threads"] == 2 for r in rows.values()), rows
    lat = rows["latency"]
    assert lat["n_samples"] >= 3 and len(lat["samples"]) == lat["n_samples"]
    assert 0 < lat["latency_ms_p50"] <= lat["latency_ms_p90"] <= lat["latency_ms_p99"]
    assert rows["throughput"]["throughput_img_s"] > 0
    assert rows["flops"]["gmacs"] == pytest.approx(316_298_816 * (64 / 224) ** 2 / 1e9, rel=0.1)
    assert rows["flops"]["extra"]["macs_flop_counter"] > 0
    kinds = rows["profile"]["extra"]["kinds"]
    assert set(kinds) == {"conv", "ska", "attention", "norm", "elementwise", "other"}
    assert sum(k["share"] for k in kinds.values()) == pytest.approx(1.0) and kinds["ska"]["self_time_us"] > 0
    assert list((out / "profile").glob("*/*.pt.trace.json*")) and list((out / "profile").glob("*_kinds.csv"))
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == ROW_COLUMNS
    env = json.loads((out / "env.json").read_text())
    for key in ("git_revision", "python", "torch", "cpu_model", "threads", "command_line", "start_time", "end_time"):
        assert key in env
    assert env["end_time"] and "--suite" in env["command_line"]


def test_failing_cell_next_to_a_good_one(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_bench.main(["--suite", "latency", "--batch-sizes", "1,100000", "--out", str(out),
                           *[a if a != "64" else "224" for a in FAST]])
    rows = _rows(out)
    assert code == (1 if rows[1]["status"] == "error" else 0)   # an error row makes the run exit 1
    assert [r["batch_size"] for r in rows] == [1, 100000]
    assert rows[0]["status"] == "ok" and rows[0]["error"] is None
    assert rows[1]["status"] in ("oom", "error") and rows[1]["error"]
    assert len((out / "results.csv").read_text().splitlines()) == 3


def test_memory_suite_in_worker_process(tmp_path):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "memory", "--batch-sizes", "2", "--out", str(out), *FAST]) == 0
    (row,) = _rows(out)
    assert row["status"] == "ok", row
    assert row["peak_mem_mb"] > row["extra"]["rss_after_model_mb"] > 0
    assert row["extra"]["param_bytes"] == pytest.approx(row["params_m"] * 1e6 * 4)


def test_accuracy_wiring(tmp_path, monkeypatch):
    seen = {}
    import suites.accuracy as acc

    def fake_run(cell, ctx):
        seen.update(vars(cell.opts))
        return {"top1": 12.5, "top1_source": "test"}
    import dataclasses

    from suites.core import registry
    monkeypatch.setitem(registry._REGISTRY, "accuracy", dataclasses.replace(acc.SUITE, run=fake_run))
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "accuracy", "--data", "/d", "--checkpoint", "/c.pth", "--num-classes", "10",
                           "--dataset", "imagefolder", "--out", str(out), *FAST]) == 0
    assert seen["data"] == "/d" and seen["checkpoint"] == "/c.pth" and seen["num_classes"] == 10
    assert seen["dataset"] == "imagefolder"
    (row,) = _rows(out)
    assert row["top1"] == 12.5 and row["status"] == "ok"


def test_out_with_results_is_refused_and_left_intact(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "flops", "--out", str(out), *FAST]) == 0
    before = (out / "results.csv").read_bytes()
    assert run_bench.main(["--suite", "flops", "--out", str(out), *FAST]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == before


def test_options_for_suites_not_run_warn(tmp_path, capsys):
    assert run_bench.main(["--suite", "flops", "--crop-ratio", "0.9", "--out", str(tmp_path / "r"), *FAST]) == 0
    assert "--crop-ratio is ignored: only suite(s) accuracy read it" in capsys.readouterr().err


# --- the commands ------------------------------------------------------------------------------------


def test_help_lists_the_commands_and_run_help_the_run_flags(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("run", "resume", "list", "report", "compare", "gate", "export-bench"):
        assert f"\n    {name}" in out, out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lsnet-bench run") and "--suite" in out and "--resume" in out


def test_unknown_command_exits_2_with_one_line(capsys):
    assert cli.main(["speed"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lsnet-bench: error: unknown command 'speed'")
    assert "choose from run, resume, list, report, compare, gate, export-bench" in err


@pytest.mark.parametrize("argv, command, rest", [
    ([], "run", []),
    (["--suite", "flops"], "run", ["--suite", "flops"]),
    (["--list"], "run", ["--list"]),
    (["run", "--suite", "flops"], "run", ["--suite", "flops"]),
    (["resume", "DIR", "--retry-errors"], "resume", ["DIR", "--retry-errors"]),
    (["gate", "--only", "ska_fwd"], "gate", ["--only", "ska_fwd"]),
    (["export-bench", "--rounds", "3"], "export-bench", ["--rounds", "3"]),
])
def test_each_command_gets_its_arguments_and_no_command_is_run(argv, command, rest, monkeypatch):
    seen = []
    for name, (_, help_) in list(cli.COMMANDS.items()):
        monkeypatch.setitem(cli.COMMANDS, name, (lambda a, name=name: seen.append((name, a)) or 0, help_))
    assert cli.main(argv) == 0
    assert seen == [(command, rest)]


def test_gate_and_export_bench_get_their_arguments(monkeypatch, capsys):
    from suites.engines import export_bench
    from suites.gate import gate
    calls = []
    monkeypatch.setattr(gate, "main", lambda argv: calls.append(argv) or 7)
    assert cli.main(["gate", "--base", "HEAD~1"]) == 7 and calls == [["--base", "HEAD~1"]]
    with pytest.raises(SystemExit) as exit_:
        export_bench.main(["--threads", "two"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("lsnet-bench export-bench: error: argument --threads")


def test_list_command_is_list_flag(capsys):
    assert cli.main(["--list"]) == 0
    flag = capsys.readouterr().out
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out == flag and "lsnet_t" in flag and "visible devices:" in flag
    assert cli.main(["list", "--executor", "slurm"]) == 2
    assert "invalid choice: 'slurm'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory) -> Path:
    """A small interleaved latency run of two models through ``lsnet-bench run``."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["run", "--suite", "latency", "--models", "lsnet_t,starnet_s1", "--threads", "1",
                     "--out", str(out), *FAST[2:]]) == 0
    return out


def test_run_command_records_itself(latency_run):
    env = json.loads((latency_run / "env.json").read_text())
    assert env["argv"][:4] == ["lsnet-bench", "run", "--suite", "latency"]
    assert {r["model"] for r in _rows(latency_run)} == {"lsnet_t", "starnet_s1"}
    assert (latency_run / "plan.json").is_file()


def test_report_command(latency_run, tmp_path, capsys):
    assert cli.main(["report", str(latency_run)]) == 0
    assert capsys.readouterr().out.strip() == str(latency_run / "report.html")
    merged = tmp_path / "merged.html"
    assert cli.main(["report", str(latency_run), str(latency_run), "-o", str(merged)]) == 0
    assert merged.read_text().startswith("<!DOCTYPE html>") and "starnet_s1" in merged.read_text()
    assert cli.main(["report"]) == 2
    assert "the following arguments are required: DIR" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lsnet-bench: error: ") and "no such directory" in err


def test_compare_command(latency_run, tmp_path, capsys):
    from reports.compare import CROSS_RUN
    assert cli.main(["compare", str(latency_run), "--models", "lsnet_t,starnet_s1"]) == 0
    out = capsys.readouterr().out
    assert CROSS_RUN not in out and out.startswith("* eager float32 bs1: ") and "(paired rounds)" in out
    assert cli.main(["compare", str(latency_run), str(latency_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(ln.split(":")[0] for ln in lines) == ["lsnet_t eager float32 bs1", "starnet_s1 eager float32 bs1"]
    for argv, needle in ((["compare", str(latency_run)], "compare needs two folders"),
                         (["compare", str(latency_run), "--models", "lsnet_t"], "--models takes two model names"),
                         (["compare", str(latency_run), str(tmp_path / "nope")], "no such directory")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("lsnet-bench: error: ") and needle in err, err


@pytest.mark.parametrize("argv, warning", [
    (["--suite", "accuracy", "--dataset", "proxy", "--checkpoint", "/c.pth"],
     "--checkpoint is ignored with --dataset proxy"),
    (["--suite", "accuracy", "--dataset", "published", "--proxy-steps", "3"],
     "--proxy-steps is ignored: only --dataset proxy trains the proxy task"),
    (["--suite", "flops", "--burst", "0.1"], "--burst is ignored: no chosen suite is timed (flops)"),
    (["--suite", "latency", "--protocol", "sequential", "--precision", "0.02"],
     "--precision is ignored: it sets the interleaved rounds"),
    (["--suite", "latency", "--compile-mode", "default"], "--compile-mode is ignored: no cell runs through the compile"),
    (["--suite", "latency", "--nodes", "a"], "--nodes is ignored without --executor ray"),
])
def test_an_option_the_configuration_ignores_is_a_warning_once(argv, warning, capsys):
    from suites.cli.configure import configure
    from suites.cli.parser import build_parser
    configure(build_parser().parse_args([*argv, "--models", "lsnet_t", "--device", "cpu"]))
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and f"warning: {warning}" in err


def test_options_the_configuration_reads_give_no_warning(capsys):
    from suites.cli.configure import configure
    from suites.cli.parser import build_parser
    configure(build_parser().parse_args(["--suite", "latency,accuracy", "--dataset", "proxy", "--proxy-steps", "3",
                                         "--precision", "0.02", "--models", "lsnet_t", "--device", "cpu"]))
    assert "warning" not in capsys.readouterr().err


def test_reasons_that_differ_only_in_the_model_are_one_footnote():
    from suites.cli.console import summary_table
    base = {"suite": "accuracy", "engine": "eager", "device": "cpu", "dtype": "float32", "batch_size": 64,
            "status": "skipped"}
    models = ["lsnet_t_mixer_attn", "lsnet_t_mixer_dwconv3", "lsnet_t_mixer_dwconv7"]
    rows = [{**base, "model": m, "error": f"no published ImageNet top-1 for {m!r} (models with one: lsnet_t, lsnet_s)"}
            for m in models]
    rows.append({**base, "suite": "latency", "model": "lsnet_t", "status": "error", "error": "lsnet_t_x failed"})
    notes = [line for line in summary_table(rows).splitlines() if line.startswith("[")]
    assert notes == ["[1] no published ImageNet top-1 for '<model>' (models with one: lsnet_t, lsnet_s); <model>: "
                     + ", ".join(models), "[2] lsnet_t_x failed"]


def test_suite_all_is_every_suite_that_has_what_it_needs():
    from suites.cli.configure import configure
    from suites.cli.parser import build_parser
    from suites.core import registry
    base = ["--suite", "all", "--models", "lsnet_t", "--device", "cpu"]
    plan_kw, _ = configure(build_parser().parse_args(base))
    assert plan_kw["suites"] == [n for n in registry.names() if n != "accuracy"]    # no data: no accuracy
    plan_kw, _ = configure(build_parser().parse_args([*base, "--dataset", "proxy"]))
    assert plan_kw["suites"] == registry.names()
