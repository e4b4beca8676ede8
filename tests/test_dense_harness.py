"""The harness for dense prediction (issue 24): ``--task classify|features|segment`` and ``--resolution HxW``
through the CLI, cells, rows, engines (tuple outputs, ONNX Runtime on a non-square backbone) and the report's
dense section beside the published downstream figures; old rows without ``task`` still load as classify."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

import run_bench
from suites.cli.configure import parse_resolution_flag
from suites.core import published
from suites.core.cell import Cell, Context
from suites.core.schema import ROW_COLUMNS, TASKS, parse_resolution, resolution_text
from suites.engines.base import ParityError, at_batch, relative_error
from suites.sweep import rundir

CANNED = Path(__file__).parent / "data" / "canned_run"
FAST = ["--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3",
        "--threads", "1", "--no-progress", "--no-report"]
LSNET_T_96x128 = {"features": [[64, 12, 16], [128, 6, 8], [256, 3, 4], [384, 2, 2]],   # strides 8, 16, 32, 64
                  "segment": [[150, 96, 128]]}                                          # logits at the input's size


@pytest.mark.parametrize("spec, hw", [("224", 224), ("512", 512), ("800x1333", (800, 1333)), ("96X128", (96, 128)),
                                      (" 64x64 ", 64)])
def test_resolution_forms(spec, hw):
    assert parse_resolution_flag(spec) == hw
    assert resolution_text(hw) == resolution_text(spec.strip().lower()) == (
        str(hw) if isinstance(hw, int) else f"{hw[0]}x{hw[1]}")
    assert parse_resolution(resolution_text(hw)) == ((hw, hw) if isinstance(hw, int) else hw)


@pytest.mark.parametrize("argv, needle", [
    (["--resolution", "800x"], "--resolution '800x': give a size such as 224 (square) or HxW such as 800x1333"),
    (["--resolution", "0x5"], "--resolution '0x5': height and width must be > 0"),
    (["--resolution", "axb"], "--resolution 'axb': give a size such as 224"),
    (["--resolution", "224,512"], "one resolution per run"),
    (["--resolution", "0"], "--resolution must be > 0"),
    (["--resolution", "800x9000"], "--resolution 800x9000 is above its bound 8192"),
    (["--task", "detect"], "unknown task 'detect'; choose from classify, features, segment"),
])
def test_bad_resolution_and_task_exit_2_before_any_cell(argv, needle, tmp_path, capsys):
    out = tmp_path / "bad"
    assert run_bench.main(["--suite", "latency", "--models", "lsnet_t", "--out", str(out), *argv, *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert not (out / "results.jsonl").exists()


def test_cells_with_task_and_hw_round_trip_and_old_cells_resume():
    cell = Cell("latency", "lsnet_t", resolution=(800, 1333), task="features", batch_size=8)
    back = Cell.from_dict(json.loads(json.dumps(cell.to_dict())))
    assert back == cell and hash(back) == hash(cell) and back.hw == (800, 1333) and back.resolution_text == "800x1333"
    assert Cell("latency", "lsnet_t", resolution=(512, 512)) == Cell("latency", "lsnet_t", resolution="512")
    assert Cell("latency", "lsnet_t", resolution=512).resolution == 512 and Cell("flops", "x").task == "classify"
    with pytest.raises(ValueError, match="HxW"):
        Cell("latency", "lsnet_t", resolution="800x")
    old = {k: v for k, v in Cell("latency", "lsnet_t").to_dict().items() if k != "task"}   # a plan/row of before
    assert Cell.from_dict(old).task == "classify"
    assert rundir.cell_key(old) == rundir.cell_key(Cell("latency", "lsnet_t"))
    assert TASKS == ("classify", "features", "segment")


def test_tuple_outputs_parity_and_padding():
    ref = (torch.ones(2, 3, 4, 4), torch.full((2, 5, 2, 2), 2.0))
    close = (ref[0] + 1e-6, ref[1].clone())
    far = (ref[0].clone(), ref[1] * 1.5)
    assert relative_error(close, ref) == pytest.approx(1e-6, rel=0.1)
    assert relative_error(far, ref) == pytest.approx(0.5)           # the worst output counts
    with pytest.raises(ParityError, match="3 outputs differ in number"):
        relative_error((*ref, ref[0]), ref)
    with pytest.raises(ParityError, match="output 1 shape"):
        relative_error((ref[0], ref[1][:, :2]), ref)
    fwd = at_batch(lambda x: (x * 2, x[:, :1] + 1), 4)                 # a static-batch engine, two outputs
    a, b = fwd(torch.randn(3, 2, 2, 2))
    assert a.shape == (3, 2, 2, 2) and b.shape == (3, 1, 2, 2)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense") / "run"
    assert run_bench.main(["--suite", "latency,memory,flops,accuracy", "--dataset", "published", "--task",
                           "features,segment", "--resolution", "96x128", "--models", "lsnet_t", "--batch-sizes", "1",
                           "--out", str(out), *FAST]) == 0
    return out


def test_features_and_segment_rows_through_the_cli(dense_run):
    rows = _rows(dense_run)
    by = {(r["suite"], r["task"]): r for r in rows}
    assert set(by) == {(s, t) for s in ("latency", "memory", "flops", "accuracy") for t in ("features", "segment")}
    for (suite, task), r in by.items():
        assert r["resolution"] == "96x128" and r["cell"]["resolution"] == [96, 128] and r["cell"]["task"] == task
        if suite == "accuracy":       # a classifier's figure: skipped with the reason
            assert r["status"] == "skipped" and "runs --task classify only" in r["error"], r
            continue
        assert r["status"] == "ok", r
        assert r["extra"]["feature_shapes"] == LSNET_T_96x128[task], (suite, task)
    assert by[("latency", "features")]["latency_ms_p50"] > 0 and by[("latency", "features")]["parity_rel"] == 0.0
    assert by[("flops", "features")]["extra"]["feature_strides"] == [8, 16, 32, 64]
    mem = by[("memory", "segment")]
    assert mem["peak_mem_mb"] > 0 and 0 < mem["extra"]["forward_peak_mb"] <= mem["peak_mem_mb"]
    assert 0 < by[("flops", "features")]["gmacs"] < by[("flops", "segment")]["gmacs"]   # the FPN adds MACs
    with (dense_run / "results.csv").open() as f:
        header, *lines = list(csv.reader(f))
    assert tuple(header) == ROW_COLUMNS
    assert {(ln[header.index("task")], ln[header.index("resolution")]) for ln in lines} == \
        {("features", "96x128"), ("segment", "96x128")}


def test_the_report_has_a_dense_section_with_tasks_apart(dense_run, tmp_path):
    from reports import render
    from reports.load import load_run
    from reports.report import Report
    run = load_run(dense_run)
    assert set(run.rows["task"]) == {"features", "segment"} and set(run.rows["resolution"]) == {"96x128"}
    report = Report([run])
    assert report.df.empty and len(report.dense) == len(run.rows)    # no dense row among the classifier sections
    html = render(dense_run).read_text()
    dense = html[html.index('id="dense"'):html.index('id="accuracy"')]
    assert "Task <code>features</code> at 96x128 px" in dense and "Task <code>segment</code> at 96x128 px" in dense
    lsnet_t = {(r.recipe, r.metric): r.value for r in published.dense_lookup("lsnet_t")}
    assert f"{lsnet_t[('semantic_fpn', 'miou')]:.1f}" in dense and f"{lsnet_t[('retinanet', 'box_ap')]:.1f}" in dense
    assert "published: Semantic FPN ADE20K mIoU" in dense and dense.count("<svg") >= 2
    assert "64x12x16, 128x6x8, 256x3x4, 384x2x2" in dense and "fastest engine" in dense
    assert "peak over the forwards" in dense
    # each figure holds one task: the features figures never show the segment metric and vice versa
    parts = dense.split("<h3>")
    feats = next(p for p in parts if p.startswith("Task <code>features"))
    seg = next(p for p in parts if p.startswith("Task <code>segment"))
    assert "mIoU" not in feats and "box AP" not in seg


def test_onnxruntime_runs_a_non_square_backbone_with_parity(tmp_path):
    from suites import engines
    ort = engines.get("onnxruntime")
    if ort.unavailable():
        pytest.skip(ort.unavailable())
    cell = Cell("latency", "starnet_s1", engine="onnxruntime", resolution=(64, 96), task="features", batch_size=1,
                threads=1)
    with ort.prepare(cell, Context(run_dir=tmp_path)) as step:
        outs = step.infer(torch.randn(2, 3, 64, 96))
        step.run()
    assert step.parity_rel is not None and step.parity_rel <= 1e-4
    assert [tuple(o.shape) for o in outs] == [(2, 24, 16, 24), (2, 48, 8, 12), (2, 96, 4, 6), (2, 192, 2, 3)]
    assert step.info["feature_shapes"] == [[24, 16, 24], [48, 8, 12], [96, 4, 6], [192, 2, 3]]
    assert Path(step.info["onnx"]).name == "starnet_s1_r64x96_features_float32_fused.onnx"


def test_old_rows_without_task_load_as_classify(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(CANNED, folder)
    header = (folder / "results.csv").read_text().splitlines()[0].split(",")
    assert "task" not in header and "resolution" in header
    from reports.load import load_run
    from reports.render import build_html
    run = load_run(folder)
    assert set(run.rows["task"]) == {"classify"} and set(run.rows["resolution"].dropna()) <= {"224", "64"}
    assert all(isinstance(v, str) for v in run.rows["resolution"].dropna())
    html = build_html([run])
    assert 'id="dense"' not in html and 'id="pareto"' in html


def test_train_segment_steps_on_a_per_pixel_loss_and_skips_features():
    from suites import train
    from suites.core import registry
    cell = Cell("train", "starnet_s1", resolution=(64, 96), task="segment", batch_size=2, threads=1,
                options=train.Options())
    assert registry.get("train").skip_reason(cell) is None
    step = train.prepare(cell)
    with torch.inference_mode(False):
        first = float(step.run())
        second = float(step.run())
    assert torch.isfinite(torch.tensor([first, second])).all() and first > 0
    assert train.state_bytes(step)["grad_bytes"] > 0
    why = registry.get("train").skip_reason(cell.with_(task="features"))
    assert why and "runs --task classify/segment only, not features" in why
    assert "classify only" in registry.get("accuracy").skip_reason(cell.with_(suite="accuracy", options=None))
