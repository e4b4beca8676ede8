"""Deployment engines: each runs the cell's exported model, its output checked against eager float32
(parity_rel), its artifact kept in the run folder; cells an engine cannot run are skipped rows with
the reason; availability is listed."""
from __future__ import annotations

import json

import pytest
import torch

from suites import engines
import run_bench
from suites.engines.base import ParityError, Step, check_parity, eager_reference, relative_error
from suites.core import registry
from suites.core.cell import Cell, Context

FAST = ["--resolution", "64", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3", "--no-progress", "--no-report"]


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_every_engine_is_listed_with_its_availability():
    avail = engines.availability()
    assert list(avail) == list(engines.ENGINES)
    assert avail["eager"] is None and avail["onnxruntime"] is None and avail["openvino"] is None
    assert "TensorrtExecutionProvider" in avail["tensorrt"] or avail["tensorrt"] is None


@pytest.mark.parametrize("engine, cell, needle", [
    ("onnxruntime", Cell("latency", "lsnet_t", dtype="float16"), "float16 on ONNX Runtime's CPU"),
    ("onnxruntime", Cell("latency", "lsnet_t", dtype="amp"), "not an ONNX Runtime precision"),
    ("onnxruntime", Cell("latency", "lsnet_t", channels_last=True), "channels_last"),
    ("openvino", Cell("latency", "lsnet_t", dtype="amp"), "PyTorch autocast"),
    ("openvino", Cell("latency", "lsnet_t", device="cuda:0"), "Intel GPUs"),
    ("openvino", Cell("latency", "lsnet_t", cuda_graphs=True), "eager-engine option"),
    ("tensorrt", Cell("latency", "lsnet_t"), "needs a CUDA device"),
    ("compile", Cell("latency", "lsnet_t", cuda_graphs=True, device="cuda:0"), "eager-engine option"),
])
def test_cells_an_engine_cannot_run_are_skipped_with_the_reason(engine, cell, needle):
    assert needle in engines.get(engine).skip_reason(cell)


def test_parity_above_the_tolerance_is_an_error_stating_the_figure():
    step = Step(run=lambda: None, infer=lambda x: x * 1.01, timer=None, params=0)
    x = torch.ones(2, 3)
    with pytest.raises(ParityError, match=r"differs from eager float32 by 0\.01 .* tolerance 0\.0001"):
        check_parity(Cell("latency", "m", engine="onnxruntime"), step, x, x)
    assert check_parity(Cell("latency", "m", dtype="float16"), step, x, x) == pytest.approx(0.01)
    assert check_parity(Cell("latency", "m", parity_tol=0.02), step, x, x) == pytest.approx(0.01)
    with pytest.raises(ParityError, match="tolerance 0.001"):
        check_parity(Cell("latency", "m", dtype="float16", parity_tol=1e-3), step, x, x)
    assert step.parity_rel == pytest.approx(0.01)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_engine_matches_eager_and_keeps_its_artifact(engine, tmp_path):
    cell = Cell("latency", "lsnet_t", engine=engine, resolution=64, batch_size=2, threads=1)
    ctx = Context(run_dir=tmp_path)
    with engines.get(engine).prepare(cell, ctx) as step:
        step.run()
        assert step.parity_rel < 1e-4
        assert step.params == sum(p.numel() for p in _fused("lsnet_t").parameters())
    (onnx_file,) = (tmp_path / "artifacts").glob("*.onnx")
    translation = engines.get(engine).ska_translation
    assert onnx_file.name == f"lsnet_t_r64_float32_fused_ska-{translation}.onnx"
    assert step.info["ska_translation"] == translation
    if engine == "openvino":
        assert step.info["used"]["INFERENCE_PRECISION_HINT"].lower() in ("f32", "float32")
        assert step.info["static_shape"] == [2, 3, 64, 64]


def test_openvino_compiles_the_cell_batch_and_pads_other_batches(tmp_path):
    """The timed model has the cell's static batch; infer() on fewer or more images (parity, the last
    batch of an evaluation) pads to it and returns exactly the images asked for."""
    cell = Cell("latency", "starnet_s1", engine="openvino", resolution=32, batch_size=3, threads=1)
    x = torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ref = eager_reference(cell, x)
    with engines.get("openvino").prepare(cell, Context(run_dir=tmp_path)) as step:
        for n in (1, 3, 7):
            out = step.infer(x[:n])
            assert out.shape == (n, 1000)
            assert relative_error(out, ref[:n]) < 1e-4
    (onnx_file,) = (tmp_path / "artifacts").glob("*.onnx")
    assert onnx_file.name == "starnet_s1_r32_float32_fused.onnx"       # no SKA in StarNet: no translation


def _fused(name):
    import lsnet
    from suites.core import zoo
    return lsnet.fuse(zoo.create(name, img_size=64).eval())


def test_engines_through_the_cli(tmp_path):
    out = tmp_path / "run"
    code = run_bench.main(["--suite", "latency,throughput,memory", "--engine", "eager,onnxruntime,openvino,tensorrt",
                           "--models", "lsnet_t", "--batch-sizes", "2", "--threads", "1", "--out", str(out), *FAST])
    assert code == 0
    rows = {(r["suite"], r["engine"]): r for r in _rows(out)}
    assert len(rows) == 3 * 4
    for suite in ("latency", "throughput", "memory"):
        for engine in ("eager", "onnxruntime", "openvino"):
            r = rows[(suite, engine)]
            assert r["status"] == "ok", r
            assert r["parity_rel"] is not None and r["parity_rel"] < 1e-4
        assert rows[(suite, "tensorrt")]["status"] == "skipped"
    assert rows[("throughput", "openvino")]["extra"]["used"]["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert rows[("latency", "openvino")]["extra"]["used"]["PERFORMANCE_HINT"] == "LATENCY"
    assert sorted(p.name for p in (out / "artifacts").glob("*.onnx")) == [
        "lsnet_t_r64_float32_fused_ska-conv.onnx", "lsnet_t_r64_float32_fused_ska-shift.onnx"]


def test_profile_and_accuracy_run_through_engines():
    from suites.sweep.plan import runs_through
    assert set(runs_through(registry.get("accuracy"))) == set(engines.ENGINES)
    assert set(runs_through(registry.get("profile"))) == set(engines.ENGINES)
    assert runs_through(registry.get("flops")) == ["eager"]


def test_engines_declare_what_they_are():
    """Suites read what an engine is (its modes, whether it runs a torch module) instead of listing names."""
    from suites.sweep.plan import runs_through
    native = {name for name in engines.ENGINES if engines.get(name).torch_native}
    assert native == {"eager", "compile"}
    assert runs_through(registry.get("train")) == ["eager", "compile"]
    with pytest.raises(TypeError, match="does not run torch modules"):
        engines.get("onnxruntime").wrap(torch.nn.Identity(), Cell("latency", "lsnet_t"))


def test_compile_cells_in_one_process_each_compile_their_own_static_graph(tmp_path):
    """Dynamo keys its caches by the model class's forward: without a reset per cell, the second cell
    would inherit the first one's guards and get a dynamic-batch graph (and the ninth, eager)."""
    facts = []
    for batch in (1, 2, 1):
        cell = Cell("latency", "starnet_s1", engine="compile", resolution=32, batch_size=batch, threads=1)
        with engines.get("compile").prepare(cell, Context(run_dir=tmp_path)) as step:
            step.run()
            step.run()
            assert step.parity_rel < 1e-4
            facts.append(dict(step.info))
    assert [f["dynamo_graphs"] for f in facts] == [1, 1, 1]
    assert all(f["graph_breaks"] == 0 and f["compile_mode"] == "default" for f in facts)
    assert torch._dynamo.config.fail_on_recompile_limit_hit
