"""--dtype int8: post-training quantisation in ONNX Runtime and OpenVINO, its cache, its accuracy cost
(top-1 agreement with eager float32), skipped rows where an engine cannot quantise, the CLI end to end
and the report's "int8 against float32" section.

One tiny CLI run (starnet_s1 at 64 px, 8 calibration images, both engines, float32 and int8) is shared
by the tests that read a run folder; the rest are unit tests on small inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

import run_bench  # noqa: E402
from suites.core.cell import Cell, Context  # noqa: E402
from suites.engines import quantize  # noqa: E402

MODEL = "starnet_s1"     # small, fast to export and quantise in both engines
TINY = ["--resolution", "64", "--calib-images", "8", "--batch-sizes", "1", "--threads", "2", "--warmup", "0",
        "--min-time", "0", "--max-time", "0.2", "--burst", "0.02", "--min-samples", "3", "--group-time", "1",
        "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "run"
    proc = _command("--suite", "latency", "--engine", "onnxruntime,openvino,eager", "--dtype", "float32,int8",
                    "--models", MODEL, "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _command(*argv: str) -> subprocess.CompletedProcess:
    """The command in a process of its own, as a user runs it: the two native runtimes and their int8 kernels
    then share no process with the other tests (in the one that ran them all, such a mix once crashed it)."""
    return subprocess.run([sys.executable, "run_bench.py", *argv], cwd=Path(run_bench.__file__).parent,
                          capture_output=True, text=True, timeout=300)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _row(rows: list[dict], engine: str, dtype: str) -> dict:
    (row,) = [r for r in rows if r["engine"] == engine and r["dtype"] == dtype]
    return row


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_both_engines_quantise_and_every_int8_row_carries_its_accuracy_cost(run_dir, engine):
    rows = _rows(run_dir)
    q, f = _row(rows, engine, "int8"), _row(rows, engine, "float32")
    assert q["status"] == "ok" and f["status"] == "ok", (q["error"], f["error"])
    facts = q["extra"]["int8"]
    # the column and the extra figure agree; parity_rel is the logit error on the same inputs
    assert q["int8_agreement"] == facts["agreement"] and 0 <= facts["agreement"] <= 100
    assert q["parity_rel"] == pytest.approx(facts["logit_rel"]) and 0 < facts["logit_rel"] < 1
    assert f["int8_agreement"] is None and "int8" not in f["extra"]
    assert facts["weights"] == "random (seeded)" and "not judged" in facts["rule"]
    assert facts["calibration"]["source"] == "proxy" and facts["calibration"]["images"] == 8
    assert facts["agreement_inputs"]["images"] == quantize.AGREEMENT_IMAGES
    assert q["latency_ms_p50"] > 0
    art = run_dir / "artifacts"
    assert (art / facts["file"]).is_file() and "int8-proxy8" in facts["file"]
    if engine == "onnxruntime":
        # 7-bit weights exactly when the CPU lacks VNNI; op types kept in float are counted
        assert facts["reduce_range"] == (not quantize.cpu_int8_features()["vnni"])
        assert facts["format"] == "QDQ" and facts["per_channel"] and facts["int8_ops"].get("Conv", 0) > 0
        assert isinstance(facts["float_ops"], dict)
    else:
        prec = facts["runtime_precisions"]
        assert set(prec) & {"i8", "u8"}, prec          # the compiled model really runs int8 layers
        assert facts["file"].endswith(".xml") and (art / facts["file"]).with_suffix(".bin").is_file()


def test_onnx_runtime_quantises_the_shift_translation_of_ska(tmp_path):
    """int8 LSNet in ONNX Runtime is exported with the shift SKA translation (float keeps the conv one)."""
    from suites import engines
    assert engines.get("onnxruntime").ska_translation == "conv"
    out = tmp_path / "ska"
    proc = _command("--suite", "latency", "--engine", "onnxruntime", "--dtype", "int8", "--models", "lsnet_t",
                    "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (q,) = _rows(out)
    assert q["status"] == "ok", q["error"]
    assert q["extra"]["ska_translation"] == "shift"
    assert q["extra"]["int8"]["file"] == "lsnet_t_r64_int8-proxy8_fused_ska-shift.onnx"
    assert [p.name for p in (out / "artifacts").glob("*float32*.onnx")] == ["lsnet_t_r64_float32_fused_ska-shift.onnx"]


def test_an_engine_that_cannot_quantise_gives_a_skipped_row_naming_the_fix(run_dir):
    row = _row(_rows(run_dir), "eager", "int8")
    assert row["status"] == "skipped" and "--engine onnxruntime or openvino" in row["error"]


def test_the_quantised_file_is_cached_and_reused(run_dir):
    from suites.engines import get
    row = _row(_rows(run_dir), "onnxruntime", "int8")
    cell = Cell.from_dict(row["cell"])
    path = run_dir / "artifacts" / row["extra"]["int8"]["file"]
    before = path.stat().st_mtime_ns
    with get("onnxruntime").prepare(cell, Context(run_dir=run_dir)) as step:
        assert step.info["int8"]["cached"] is True and step.info["int8"]["agreement"] == row["int8_agreement"]
    assert path.stat().st_mtime_ns == before
    # another calibration (count or source) is another file
    f = Path("m_r64_float32_fused.onnx")
    names = {quantize.artifact_stem(f, cell.with_(calib_images=n, calib_source=s))
             for n in (8, 300) for s in ("proxy", "random", "imagefolder:/data/val")}
    assert len(names) == 6 and all("int8-" in n for n in names)


def test_cell_calibration_fields_round_trip():
    cell = Cell("latency", MODEL, engine="openvino", dtype="int8", calib_images=17, calib_source="random")
    assert Cell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell
    assert cell != cell.with_(calib_images=18) and hash(cell) != hash(cell.with_(calib_source="proxy"))


def test_agreement_figure_and_rule():
    from suites.engines.base import ParityError, Step
    from suites.core.timing import CpuTimer
    cell = Cell("latency", MODEL, engine="onnxruntime", dtype="int8", resolution=64, calib_source="random")
    model = quantize.float_model(cell)

    def step_of(forward):
        return Step(run=lambda: None, infer=forward, timer=CpuTimer(), params=0)

    exact = step_of(lambda x: model(x).detach())
    facts = quantize.judge(cell, exact)
    assert facts["agreement"] == 100.0 and facts["logit_rel"] == 0.0 and exact.parity_rel == 0.0

    def half_wrong(x):          # the top-1 of every other input moved to another class
        with torch.no_grad():
            y = model(x)
        top = y.argmax(1)
        for i in range(0, len(y), 2):
            y[i, (top[i] + 1) % y.shape[1]] = y[i].max() + 1e-3
        return y
    step = step_of(half_wrong)
    loose = cell.with_(parity_tol=100.0)              # random weights' logits are tiny: only the agreement here
    facts = quantize.judge(loose, step)               # random weights: recorded, not judged
    assert facts["agreement"] == 50.0 and step.info["int8"]["agreement"] == 50.0
    with pytest.raises(ParityError, match="above the int8 tolerance"):
        quantize.judge(cell, step_of(lambda x: -10 * model(x).detach()))


def test_trained_weights_are_judged_by_agreement(tmp_path):
    from suites.core import zoo
    from suites.engines.base import ParityError, Step
    from suites.core.timing import CpuTimer
    cell = Cell("latency", MODEL, engine="onnxruntime", dtype="int8", resolution=64, calib_source="random")
    torch.manual_seed(0)
    ckpt = tmp_path / "trained.pth"
    torch.save(zoo.create(MODEL, num_classes=10, img_size=64).state_dict(), ckpt)
    model = quantize.float_model(cell, num_classes=10, checkpoint=str(ckpt))

    def shuffled(x):            # the right logits, each row rolled: top-1 agreement near 10%
        with torch.inference_mode():
            return model(x).roll(1, dims=1)
    step = Step(run=lambda: None, infer=shuffled, timer=CpuTimer(), params=0)
    with pytest.raises(ParityError, match="top-1 of only"):
        quantize.judge(cell.with_(parity_tol=100.0), step, num_classes=10, checkpoint=str(ckpt))
    assert step.info["int8"]["weights"] == "trained" and step.parity_failure is None
    quantize.judge(cell.with_(parity_tol=100.0), step, num_classes=10, checkpoint=str(ckpt), strict=False)
    assert "top-1 of only" in step.parity_failure          # kept for the caller (accuracy) instead of raised


@pytest.mark.parametrize("argv, needle", [
    (["--dtype", "int8"], "--dtype int8 is post-training quantisation in onnxruntime and openvino"),
    (["--dtype", "int8", "--engine", "onnxruntime", "--calib-images", "0"], "--calib-images must be > 0"),
    (["--dtype", "int8", "--engine", "openvino", "--calib-images", "1000000"], "--calib-images 1000000 is above"),
    (["--dtype", "int8", "--engine", "openvino", "--calib-source", "imagefolder"], "needs --data DIR"),
])
def test_bad_int8_input_exits_2_before_any_cell(argv, needle, capsys, tmp_path):
    assert run_bench.main([*argv, "--models", MODEL, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and not (tmp_path / "r").exists()


def test_cells_an_engine_cannot_quantise_are_skipped_at_plan_time():
    from suites.engines import get
    from suites.sweep.plan import plan
    tasks = plan(["latency"], [MODEL], ["cpu"], ["int8"], engines_=("eager", "compile", "onnxruntime", "openvino"))
    reasons = {t.cells[0].engine: t.skip_reason for t in tasks}
    assert "does not do" in reasons["eager"] and "does not do" in reasons["compile"]
    assert reasons["onnxruntime"] is None and reasons["openvino"] is None
    assert get("tensorrt").quantizes is False and get("onnxruntime").quantizes and get("openvino").quantizes
    assert "--device cpu" in get("onnxruntime").skip_reason(Cell("latency", MODEL, "onnxruntime", "cuda:0", dtype="int8"))
    ops = plan(["ops"], ["lsnet_t"], ["cpu"], ["int8"])
    assert all(t.skip_reason for t in ops)        # the ops suite never runs int8 as float32


def test_help_names_the_int8_flags(capsys):
    from suites import cli
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--calib-images" in out and "--calib-source" in out and "int8" in out


def test_report_section_renders(run_dir):
    html = (run_dir / "report.html").read_text()
    assert 'id="int8"' in html and "int8 against float32" in html and "top-1 agreement" in html
    from reports import int8
    from reports.load import load_run
    from reports.report import Report
    report = Report([load_run(run_dir)])
    p = int8.pairs(report.df)
    assert set(p["engine"]) == {"onnxruntime", "openvino"}
    assert (p["speedup"] > 0).all() and p["paired"].isin(["paired rounds", "medians"]).all()
    paired = p[p["paired"] == "paired rounds"]
    assert ((paired["ci_low"] <= paired["speedup"]) & (paired["speedup"] <= paired["ci_high"])).all()
    sec = html[html.index('id="int8"'):]
    assert all(f">{v:.4g}</td>" in sec for v in [*p["float32"], *p["int8"]])   # 4 significant digits, not repr


def test_report_int8_fronts_use_int8_top1_with_their_own_marker():
    import pandas as pd

    from reports import int8
    base = {"status": "ok", "engine": "openvino", "panel_device": "cpu", "run_label": "r", "protocol": "interleaved",
            "batch_size": 1, "parity_rel": 0.05, "top1_source": None, "extra": None, "family": "x"}
    rows = []
    for model, f_ms, q_ms in (("a", 2.0, 1.0), ("b", 3.0, 2.5)):
        rows += [{**base, "suite": "latency", "model": model, "dtype": "float32", "latency_ms_p50": f_ms,
                  "extra": {"round_medians_ms": [f_ms] * 5}, "int8_agreement": None},
                 {**base, "suite": "latency", "model": model, "dtype": "int8", "latency_ms_p50": q_ms,
                  "int8_agreement": 97.0, "extra": {"round_medians_ms": [q_ms] * 5,
                                                    "int8": {"agreement": 97.0, "weights": "random (seeded)"}}},
                 {**base, "suite": "accuracy", "model": model, "dtype": "int8", "top1": 70.0, "top1_float32": 71.0,
                  "top1_source": "proxy:v1", "int8_agreement": 95.0}]
    rows.append({**rows[-1], "engine": "onnxruntime", "status": "error", "top1": 40.0, "int8_agreement": 50.0,
                 "error": "onnxruntime int8 agrees with eager float32 on the top-1 of only 50.0% ..."})
    df = pd.DataFrame(rows)
    acc = int8.accuracy_rows(df).set_index("engine")
    assert acc.loc["onnxruntime", "parity"] == "failed" and acc.loc["onnxruntime", "top1"] == 40.0
    assert (acc.loc["openvino", "parity"] == "ok").all()
    sec = int8.section(df, {})
    assert sec is not None and sec.figs and "<svg" in sec.figs[0][1]
    p = int8.pairs(df).set_index("model")
    assert p.loc["a", "speedup"] == pytest.approx(2.0) and p.loc["b", "speedup"] == pytest.approx(1.2)
    assert "faster" in str(sec.table) and "Δ top-1" in str(sec.accuracy)
    assert int8.paired_ratio([1, 2], [1, 2]) is None           # too few rounds: no paired interval
    assert int8.section(df[df["dtype"] != "int8"], {}) is None


def test_proxy_accuracy_int8_beside_float32(tmp_path):
    out = tmp_path / "acc"
    proc = _command("--suite", "accuracy", "--dataset", "proxy", "--engine", "onnxruntime", "--dtype", "int8",
                    "--models", MODEL, "--calib-images", "8", "--proxy-steps", "1", "--proxy-n-train", "64",
                    "--proxy-n-test", "64", "--proxy-batch-size", "4", "--batch-sizes", "64", "--threads", "2",
                    "--no-progress", "--no-report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = _rows(out)
    assert row["status"] == "ok", row["error"]
    facts = row["extra"]["int8"]
    assert row["top1_float32"] == facts["top1_float32"] and row["top1"] == facts["top1"]
    assert row["int8_agreement"] == facts["agreement"] and row["parity_rel"] == pytest.approx(facts["logit_rel"])
    assert facts["weights"] == "trained" and facts["calibration"]["source"] == "proxy"
    assert (out / "artifacts" / row["extra"]["trained_checkpoint"]).is_file()


def test_calibration_sources(tmp_path):
    import numpy as np
    from PIL import Image
    for k, c in enumerate(("ant", "bee")):
        (tmp_path / "val" / c).mkdir(parents=True)
        for i in range(40):      # every image one grey level of its own
            Image.fromarray(np.full((70, 90, 3), 3 * i + 120 * k, np.uint8)).save(tmp_path / "val" / c / f"{i}.png")
    src = quantize.resolve_source("auto", str(tmp_path / "val"))
    assert src == f"imagefolder:{(tmp_path / 'val').resolve()}" and quantize.resolve_source("auto", None) == "proxy"
    cell = Cell("latency", MODEL, dtype="int8", resolution=64, calib_source=src)
    calib, facts = quantize.images(cell, "calibration", 300)
    agree, _ = quantize.images(cell, "agreement", quantize.AGREEMENT_IMAGES)
    # 80 images: the first 64 of the seeded shuffle are the agreement set, the other 16 calibrate
    assert calib.shape == (16, 3, 64, 64) and agree.shape == (64, 3, 64, 64)
    assert facts["folder_images"] == 80 and facts["disjoint"] and facts["images"] == 16
    levels = lambda x: {round(float(v), 4) for v in x[:, 0].mean(dim=(1, 2))}  # noqa: E731
    assert len(levels(agree)) == 64 and not levels(agree) & levels(calib)
    assert "imagefolder-val-" in quantize.source_label(cell)
    proxy, pf = quantize.images(cell.with_(calib_source="proxy"), "calibration", 5)
    again, _ = quantize.images(cell.with_(calib_source="proxy"), "calibration", 5)
    assert torch.equal(proxy, again) and pf["source"] == "proxy" and proxy.std() > 0.5    # seeded, normalised


def test_without_vnni_onnx_runtime_uses_7_bit_weights():
    no_vnni = quantize.ort_settings({"vnni": False, "vnni_flags": [], "avx2": True, "avx512f": False})
    vnni = quantize.ort_settings({"vnni": True, "vnni_flags": ["avx512_vnni"], "avx2": True, "avx512f": True})
    assert no_vnni["reduce_range"] and "saturates" in no_vnni["reduce_range_reason"]
    assert not vnni["reduce_range"] and "avx512_vnni" in vnni["reduce_range_reason"]
    flags = quantize.cpu_int8_features()
    assert flags["vnni"] == bool(flags["vnni_flags"])
