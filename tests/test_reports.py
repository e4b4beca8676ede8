"""Report generation from canned results: tables, Pareto plots, merging folders, the CLI, published data."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import reports
from reports import tables
from suites.core import published
from suites.cli import main as cli
from reports.load import ResultsError, combine, load_run

CANNED = Path(__file__).parent / "data" / "canned_run"
SHARED_PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published.csv"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "canned-cpu"
    shutil.copytree(CANNED, d)
    return d


def _as_json_run(src: Path, dst: Path, device_name: str, run_id: str, device: str = "cuda") -> Path:
    """A results.json copy of the canned rows on another device, plus profile rows with op shares."""
    dst.mkdir(parents=True)
    rows = list(csv.DictReader((src / "results.csv").open()))
    for r in rows:
        r.update(device_name=device_name, run_id=run_id, device=device)
    shares = {"lsnet_t": {"conv": 0.4, "ska": 0.25, "attention": 0.15, "norm": 0.05, "elementwise": 0.1, "other": 0.05},
              "repvit_m0_9": {"conv": 70, "norm": 10, "elementwise": 15, "other": 5, "bogus": "n/a"}}  # percent
    for m, s in shares.items():
        rows.append({**rows[0], "suite": "profile", "model": m, "batch_size": "8", "latency_ms_p50": "",
                     "params_m": "", "gmacs": "", "extra": {"kinds": {k: {"share": v} for k, v in s.items()}}})
    # the profile suite's own form: {kind: {"share": x, "self_time_us": t, "calls": n}}
    kinds = {"conv": 0.5, "ska": 0.3, "other": 0.2}
    rows.append({**rows[0], "suite": "profile", "model": "lsnet_b", "batch_size": "1", "latency_ms_p50": "",
                 "extra": {"kinds": {k: {"share": v, "self_time_us": 100 * v, "calls": 3} for k, v in kinds.items()}}})
    rows.append({**rows[0], "suite": "profile", "model": "lsnet_s", "extra": {"kinds": "garbage"}})
    (dst / "results.json").write_text(json.dumps({"rows": rows, "samples": {}}))
    (dst / "env.json").write_text(json.dumps({"argv": ["run_bench.py", "--device", "cuda"], "gpu": device_name}))
    return dst


def test_tables_follow_the_stated_rules(run_dir):
    df = combine([load_run(run_dir)])
    perf = tables.performance(df).set_index("model")
    t = perf.loc["lsnet_t"]
    assert t["latency_ms_p50_batch"] == 1 and t["latency_ms_p50"] == pytest.approx(9.8)
    assert t["throughput_img_s_batch"] == 32  # best over batch sizes
    assert t["params_m"] == pytest.approx(11.41) and t["gmacs"] == pytest.approx(0.316)
    assert "lsnet_b" in perf.index  # its oom row does not hide its ok rows
    acc = tables.accuracy(df)
    srcs = acc.groupby("model")["top1_source"].apply(set).to_dict()
    assert srcs["lsnet_t"] == {"published:imagenet-1k", "proxy:v1-seed0-300steps"}
    # published figures come from the data file for models without a published row, labelled as such
    b = acc[(acc["model"] == "lsnet_b")].iloc[0]
    assert (b["top1_source"], b["top1"]) == ("published:imagenet-1k", 80.3) and "data file" in b["detail"]
    assert "lsnet_t_mixer_dwconv" not in set(acc.loc[acc["top1_source"].str.startswith("published"), "model"])
    summ = tables.summary(df, acc)
    assert {"top1 [published:imagenet-1k]", "top1 [proxy:v1-seed0-300steps]"} <= set(summ.columns)
    assert tables.failures(df)["status"].tolist() == ["oom"]


def test_render_single_folder(run_dir):
    out = reports.render(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text()
    assert text.count("<svg") >= 8  # 4 Pareto plots x 2 sources, plus batch-size plots
    for needle in ("Canned CPU (2 cores)", "lsnet_t_mixer_dwconv", "proxy:v1-seed0-300steps", "published:imagenet-1k",
                   "Throughput vs batch size", "Peak memory vs batch size", "CUDA out of memory (canned)",
                   "lsnet-bench --suite latency,throughput,memory,flops,accuracy"):
        assert needle in text, needle
    # Pareto-optimal models are marked in the key of the numbered points; a dominated one is not
    proxy = text[text.index("Top-1 source: <code>proxy"):text.index("Top-1 source: <code>published")]
    assert "lsnet_t *" in proxy and "repvit_m0_9 *" not in proxy
    # the ablations are not on the default fronts: they have their own section, with their own front
    assert "lsnet_t_mixer_dwconv" not in proxy
    ablations = text[text.index('id="ablations"'):text.index('id="operators"')]
    assert "lsnet_t_mixer_dwconv *" in ablations
    _assert_self_contained(text)


def _assert_self_contained(text: str) -> None:
    """One offline file: inline scripts and styles only, nothing fetched."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", text) and "<link" not in text and "<img" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//|file:)""", text)
    assert "url(http" not in text and "@import" not in text and "url(file" not in text


def test_merge_folders_across_devices(run_dir, tmp_path):
    gpu = _as_json_run(CANNED, tmp_path / "gpu", "Canned GPU", "canned-gpu")
    out = reports.render_many([run_dir, gpu], tmp_path / "merged" / "all.html")
    text = out.read_text()
    assert "<h3>PyTorch eager · Canned CPU (2 cores) (2 threads) · float32 · NCHW</h3>" in text
    assert "<h3>PyTorch eager · Canned GPU · float32 · NCHW</h3>" in text
    assert "Canned GPU · float32" in text and "run_bench.py --device cuda" in text
    assert "Per-operator" in text and "share of operator time" in text
    shares = tables.op_shares(combine([load_run(gpu)]))
    per_model = shares.groupby("model")["share"].sum()
    assert per_model.to_dict() == pytest.approx({"lsnet_t": 1.0, "repvit_m0_9": 1.0, "lsnet_b": 1.0})
    assert shares[shares["model"] == "repvit_m0_9"].set_index("kind")["share"]["conv"] == pytest.approx(0.7)
    assert "bogus" not in set(shares["kind"]) and "lsnet_s" not in set(shares["model"])
    _assert_self_contained(text)


def test_same_device_in_two_runs_is_told_apart(run_dir, tmp_path):
    other = _as_json_run(CANNED, tmp_path / "again", "Canned CPU (2 cores)", "canned-again", device="cpu")
    df = combine([load_run(run_dir), load_run(other)])
    assert set(df["panel_device"]) == {"Canned CPU (2 cores) [canned-cpu]", "Canned CPU (2 cores) [canned-again]"}
    # panels are labelled by configuration in words; the run id is only added to tell equal ones apart
    label = "PyTorch eager · Canned CPU (2 cores) (2 threads) · float32 · NCHW"
    assert set(df.loc[df["suite"] == "latency", "config"]) == {f"{label} [run canned-cpu]", f"{label} [run canned-again]"}


def test_csv_only_folder_and_accuracy_only_run(tmp_path):
    d = tmp_path / "acc"
    d.mkdir()
    pd.DataFrame([{"run_id": "a", "suite": "accuracy", "model": "lsnet_t", "top1": 50.0, "top1_source": "proxy:x",
                   "status": "ok"}]).to_csv(d / "results.csv", index=False)
    text = reports.render(d).read_text()
    assert "(no device measurements)" in text and "proxy:x" in text and "(not recorded in env.json)" in text


def test_cli(run_dir, tmp_path, capsys):
    assert cli(["report", str(run_dir), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert cli(["report", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="neither results.json nor results.csv"):
        load_run(tmp_path / "empty")


def test_published_rule_and_data_file():
    assert published.lookup("lsnet_t").top1 == 74.9 and published.lookup("lsnet_t").tag == "in1k"
    assert published.lookup("lsnet_t_distill").top1 == 76.1
    assert published.lookup("fastvit_t12").tag == "apple_in1k"  # non-distilled preferred
    r = published.lookup("repvit_m1_1")  # only distilled tags: the 300-epoch schedule
    assert (r.tag, r.top1) == ("dist_300e_in1k", 80.826) and "dist_300e_in1k" in r.cited
    assert published.lookup("repvit_m1_1", tag="dist_450e_in1k").top1 == 81.314
    assert published.lookup("fastvit_t12_distill").tag == "apple_dist_in1k"
    assert published.lookup("efficientvit_m4_distill") is None  # never the non-distilled figure
    assert published.lookup("lsnet_t_mixer_dwconv") is None
    with pytest.raises(ValueError, match="tags: in1k"):
        published.lookup("lsnet_t", tag="nope")
    if SHARED_PUBLISHED.is_file():  # the project copy holds every row of the shared reference, unchanged
        pkg = (Path(published.__file__).parent / published.DATA_FILE).read_text().splitlines()
        shared = SHARED_PUBLISHED.read_text().splitlines()
        assert pkg[:len(shared)] == shared


def test_every_zoo_model_but_the_mixer_swaps_has_a_published_top1():
    from suites.core import zoo
    missing = [n for n in zoo.names("all") if "_mixer_" not in n and published.lookup(n) is None]
    assert missing == []
    assert published.lookup("repvit_m2_3").top1 == 83.3 and published.lookup("efficientformerv2_s0").distilled


def test_folder_from_the_real_writer(tmp_path):
    """Rows written by suites.results (results.json with extra, env.json) render, incl. profile kinds."""
    from suites import accuracy
    from suites.sweep.envfile import write_env
    from suites.sweep.rows import make_row
    from suites.sweep.writer import ResultWriter
    from suites.core.cell import Cell
    w = ResultWriter(tmp_path, "writer-run")
    cells = [(Cell("latency", "lsnet_t"), {"latency_ms_p50": 5.0, "latency_ms_p90": 5.5, "params_m": 11.4}),
             (Cell("latency", "repvit_m0_9"), {"latency_ms_p50": 4.0, "latency_ms_p90": 4.2, "params_m": 5.5}),
             (Cell("profile", "lsnet_t"), {"extra": {"kinds": {"conv": {"share": 0.6}, "ska": {"share": 0.4}}}}),
             (Cell("accuracy", "lsnet_t", options=accuracy.Options(dataset="proxy")),
              {"top1": 88.0, "top1_source": "proxy:v1-seed0-150steps", "extra": {"seed": 0, "budget": {"steps": 150}}})]
    for cell, res in cells:
        w.add(make_row("writer-run", cell, {"result": res, "machine": {"host": "h", "device_name": "Writer CPU"}}))
    write_env(tmp_path, {"command_line": "lsnet-bench --suite latency", "argv": ["lsnet-bench"]})
    text = reports.render(tmp_path).read_text()
    assert "Writer CPU" in text and "lsnet-bench --suite latency" in text and "proxy:v1-seed0-150steps" in text
    assert "share of operator time" in text and "budget 150 steps" in text


def test_reports_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.csv").write_bytes(b"")
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "results.csv").write_bytes(b"\xff\xfe\x00garbage")
    for folder in ("empty", "binary"):
        assert cli(["report", str(tmp_path / folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "unreadable results" in err and "Traceback" not in err
    (tmp_path / "file").write_text("x")
    assert cli(["report", str(CANNED), "-o", str(tmp_path / "file" / "r.html")]) == 2
    assert "cannot write the report" in capsys.readouterr().err


def test_partial_runs_are_said_to_be_partial(run_dir):
    env = {"argv": ["lsnet-bench"], "sessions": [{"end_reason": "interrupted", "measured_cells": 3,
                                                  "planned_cells": 9}]}
    (run_dir / "env.json").write_text(json.dumps(env))
    text = reports.render(run_dir).read_text()
    assert "Partial results." in text and "interrupted after 3 of 9 cells" in text


def test_compare_calls_a_difference_only_when_the_intervals_exclude_one():
    from reports.compare import compare, format_table
    base = {"suite": "latency", "engine": "eager", "device_name": "cpu", "dtype": "float32", "channels_last": False,
            "compile": False, "fused": True, "batch_size": 1, "resolution": 224, "status": "ok"}

    def rows(**lat):
        return pd.DataFrame([{**base, "model": m, "latency_ms_p50": p, "latency_ms_ci_low": lo,
                              "latency_ms_ci_high": hi} for m, (p, lo, hi) in lat.items()])
    a = rows(lsnet_t=(9.30, 9.20, 9.40), repvit_m0_9=(10.0, 9.9, 10.1))
    b = rows(lsnet_t=(9.34, 9.25, 9.45), repvit_m0_9=(12.0, 11.9, 12.1))
    out = compare(a, b).set_index("model")
    assert out.loc["lsnet_t", "verdict"].startswith("no difference")
    assert out.loc["repvit_m0_9", "verdict"] == "B slower" and out.loc["repvit_m0_9", "low"] > 1
    assert "repvit_m0_9 eager float32 bs1: 1.200x" in format_table(out.reset_index())
    assert cli(["compare", str(CANNED), str(CANNED)]) == 0
