"""Harness machinery on CPU: devices, model preparation (dtype, layout, autocast), guards (OOM
handling), the eager engine, profile tables, the local executor, sweep planning and the results schema."""
from __future__ import annotations

import csv
import json
import resource
from types import SimpleNamespace

import pytest
import torch

from suites import engines
from suites.core.cell import Task
from suites.sweep.runtime import execute
from suites.executors.local import LocalExecutor, describe_exit
from suites.core.schema import ROW_COLUMNS
from suites.core import devices, guards, modelprep
from suites import profile
from suites.sweep import plan as sweep
from suites.sweep.rows import make_row
from suites.sweep.run import run_sweep
from suites.sweep.writer import ResultWriter
from suites.core.cell import Cell, Context


# --- devices -----------------------------------------------------------------------------------
def test_parse_devices_cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.parse_devices("cpu") == ["cpu"]
    assert devices.parse_devices("all") == ["cpu"]
    for bad in ("cuda", "cuda:0", "cuda:7"):
        with pytest.raises(devices.DeviceError, match="visible devices: cpu"):
            devices.parse_devices(bad)
    with pytest.raises(devices.DeviceError, match="unknown device 'tpu'"):
        devices.parse_devices("tpu")


def test_parse_devices_with_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.parse_devices("cuda") == ["cuda:0"]
    assert devices.parse_devices("all") == ["cpu", "cuda:0", "cuda:1"]
    assert devices.parse_devices("cuda:1,cpu,cuda:1") == ["cuda:1", "cpu"]
    with pytest.raises(devices.DeviceError, match=r"'cuda:7'.*cpu, cuda:0, cuda:1"):
        devices.parse_devices("cuda:7")


# --- model preparation, guards, the eager engine -----------------------------------------------------------------------------------
def test_is_oom_classification():
    assert guards.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory"))
    assert guards.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert guards.is_oom(MemoryError())
    assert guards.is_oom(guards.InsufficientMemory("x"))
    assert not guards.is_oom(ValueError("shape mismatch"))


def _cell(**kw) -> Cell:
    base = dict(suite="latency", model="lsnet_t", resolution=64, warmup=0.0, min_time=0.0, min_samples=2)
    return Cell(**{**base, **kw})


def test_input_is_random_in_dtype_and_layout():
    x = modelprep.make_input(_cell(batch_size=2, dtype="bfloat16", channels_last=True))
    assert x.dtype == torch.bfloat16 and x.shape == (2, 3, 64, 64)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x.float().std() > 0.5


def test_amp_autocasts_on_cpu_and_model_is_inference_form():
    cell = _cell(dtype="amp", channels_last=True)
    with engines.get("eager").prepare(cell, Context()) as step:
        y = step.run()
        model = step.model
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1000)
    assert 0 < step.parity_rel < 5e-2      # bf16 autocast against eager float32 on the same input
    assert not model.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # fused
    unfused = modelprep.build_model(_cell(fused=False))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfused.modules())


def test_cuda_graphs_skipped_on_cpu_and_outside_eager():
    assert "CUDA device" in engines.get("eager").skip_reason(_cell(cuda_graphs=True))
    assert "eager-engine option" in engines.get("compile").skip_reason(_cell(cuda_graphs=True, device="cuda:0"))
    tasks = sweep.plan(["latency"], ["lsnet_t"], ["cpu"], ["float32"], cuda_graphs=True)
    assert "CUDA device" in tasks[0].skip_reason


def test_input_larger_than_memory_is_an_oom_before_allocation():
    res = execute(_cell(batch_size=10**7, resolution=224), Context())["result"]
    assert res["status"] == "oom" and "available" in res["error"]


def test_threads_restored_after_every_cell():
    before = torch.get_num_threads()
    out = execute(_cell(threads=1 if before > 1 else 2), Context())
    assert out["result"]["status"] == "ok" and out["machine"]["threads"] == (1 if before > 1 else 2)
    assert torch.get_num_threads() == before


def test_cpu_allocation_limit_turns_huge_allocation_into_catchable_oom():
    before = resource.getrlimit(resource.RLIMIT_AS)
    import psutil
    too_big = int(psutil.virtual_memory().available * 1.5)
    with guards.cpu_allocation_limit(_cell()):
        with pytest.raises(RuntimeError) as info:
            torch.empty(too_big, dtype=torch.uint8)
    assert guards.is_oom(info.value)
    assert resource.getrlimit(resource.RLIMIT_AS) == before


# --- profile tables ----------------------------------------------------------------------------
def test_op_kind():
    assert profile.op_kind("aten::conv2d") == "conv"
    assert profile.op_kind("aten::mkldnn_convolution") == "conv"
    assert profile.op_kind("lsnet::ska_bn_add") == "ska"
    assert profile.op_kind("aten::_softmax") == "attention"
    assert profile.op_kind("aten::batch_norm") == "norm"
    assert profile.op_kind("aten::add_") == "elementwise"
    assert profile.op_kind("aten::addmm") == "other"


def test_operator_tables_charge_children_to_the_outermost_op():
    def ev(name, t, parent=None):
        return SimpleNamespace(name=name, self_cpu_time_total=t, cpu_parent=parent)
    step = ev("ProfilerStep#3", 5.0)
    ska = ev("lsnet::ska_bn_add", 10.0, step)
    inner_mul = ev("aten::mul_", 30.0, ska)          # inside SKA: counts as SKA
    conv = ev("aten::conv2d", 1.0, step)
    mk = ev("aten::mkldnn_convolution", 50.0, conv)
    add = ev("aten::add", 9.0, step)
    ops, kinds = profile.operator_tables([step, ska, inner_mul, conv, mk, add])
    share = {k["kind"]: k["share"] for k in kinds}
    assert share["ska"] == pytest.approx(40 / 100) and share["conv"] == pytest.approx(51 / 100)
    assert share["elementwise"] == pytest.approx(9 / 100) and share["other"] == 0
    assert sum(share.values()) == pytest.approx(1.0)
    assert {o["op"] for o in ops} == {"lsnet::ska_bn_add", "aten::mul_", "aten::conv2d", "aten::mkldnn_convolution",
                                      "aten::add"}


# --- executor ----------------------------------------------------------------------------------
def test_execute_turns_exceptions_into_rows():
    out = execute(_cell(model="no_such_model"), Context())
    res = out["result"]
    assert res["status"] == "error" and "no_such_model" in res["error"] and "\n" not in res["error"]
    assert out["machine"]["host"] and out["machine"]["device_name"]


def test_worker_timeout_and_crash_descriptions():
    res = LocalExecutor(timeout=0.01).run_cell(_cell(), Context())["result"]
    assert res["status"] == "error" and "timed out" in res["error"]
    assert describe_exit(-9, oom_killed=True)[0] == "oom"
    status, msg = describe_exit(-9, oom_killed=False)
    assert status == "error" and "no out-of-memory kill was recorded" in msg
    assert describe_exit(-9)[0] == "error"
    status, msg = describe_exit(-11)
    assert status == "error" and "SIGSEGV" in msg


def test_worker_runs_a_cell_with_its_machine_facts():
    out = LocalExecutor(isolation="process").run_cell(_cell(threads=1), Context())
    assert out["result"]["status"] == "ok" and out["result"]["latency_ms_p50"] > 0
    assert out["machine"]["threads"] == 1 and out["machine"]["host"]


def test_isolation_policy():
    auto = LocalExecutor()
    assert auto.needs_process(_cell(suite="memory"))
    assert not auto.needs_process(_cell(suite="latency"))
    assert auto.needs_process(_cell(suite="latency", device="cuda:0"))
    assert not LocalExecutor("inline").needs_process(_cell(suite="memory"))
    assert LocalExecutor("inline", timeout=5).needs_process(_cell())   # only a process can be stopped
    with pytest.raises(ValueError):
        LocalExecutor("sometimes")


# --- sweep planning ----------------------------------------------------------------------------
def test_plan_shapes():
    tasks = sweep.plan(["latency", "throughput", "flops", "memory"], ["lsnet_t", "lsnet_s"], ["cpu"], ["float32"],
                       engines_=["eager", "compile"], batch_sizes=None, max_batch=8, resolution=64)
    by = lambda s: [t for t in tasks if t.cells[0].suite == s]  # noqa: E731
    sizes = lambda s: [c.batch_size for t in by(s) for c in t.cells]  # noqa: E731
    assert sizes("latency") == [1, 1, 1, 1]
    assert [c.engine for t in by("latency") for c in t.cells] == ["eager", "compile"] * 2
    assert sizes("throughput") == [1, 2, 4, 8] * 4 and all(t.ladder for t in by("throughput"))
    assert [(t.cells[0].model, t.cells[0].device, t.cells[0].engine) for t in by("flops")] == \
        [("lsnet_t", "cpu", "eager"), ("lsnet_s", "cpu", "eager")]
    assert sizes("memory") == [1, 8, 32] * 4
    assert not any(t.skip_reason for t in tasks)
    fixed = sweep.plan(["throughput"], ["lsnet_t"], ["cpu"], ["float32"], batch_sizes=[2, 4])
    assert [c.batch_size for c in fixed[0].cells] == [2, 4] and not fixed[0].ladder


class _FakeExecutor(LocalExecutor):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def run_cell(self, cell, ctx):
        self.seen.append(cell.batch_size)
        res = {"status": "oom", "error": "x"} if cell.batch_size >= 4 else {"status": "ok", "throughput_img_s": 1.0}
        return {"result": res, "machine": {"host": "h", "device_name": "d", "threads": 1}}


def test_ladder_stops_after_oom(tmp_path):
    seen = []
    tasks = sweep.plan(["throughput"], ["lsnet_t"], ["cpu"], ["float32"], max_batch=32, resolution=64)
    rows = run_sweep(tasks, _FakeExecutor(seen), ResultWriter(tmp_path, "r"), Context(), progress=False)
    assert seen == [1, 2, 4]
    assert [r["status"] for r in rows] == ["ok", "ok", "oom", "skipped", "skipped", "skipped"]
    assert rows[3]["error"] == "batch 4 already ran out of memory" and rows[0]["host"] == "h"
    skipped = list(_FakeExecutor([]).run([Task(tasks[0].cells[:2], skip_reason="why")], Context()))
    assert [o["result"] for _, o in skipped] == [{"status": "skipped", "error": "why"}] * 2


# --- results schema ----------------------------------------------------------------------------
def test_rows_follow_the_schema_and_are_written_as_they_arrive(tmp_path):
    w = ResultWriter(tmp_path, "run1")
    cell = _cell()
    machine = {"host": "box", "device_name": "cpu0", "threads": 2}
    result = {"status": "ok", "latency_ms_p50": 1.5, "samples": [1.0, 2.0], "extra": {"a": 1}, "warnings": ["w1", "w2"]}
    w.add(make_row("run1", cell, {"result": result, "machine": machine}))
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == ROW_COLUMNS and len(rows) == 2
    (row,) = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert set(ROW_COLUMNS) <= set(row) and row["samples"] == [1.0, 2.0] and row["extra"] == {"a": 1}
    assert row["status"] == "ok" and row["error"] is None and row["threads"] == 2 and row["host"] == "box"
    assert row["engine"] == "eager" and row["family"] == "lsnet" and row["warnings"] == "w1; w2"
    assert Cell.from_dict(row["cell"]) == cell
    w.consolidate()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["columns"] == list(ROW_COLUMNS) and doc["rows"] == [row]
    bad = make_row("run1", cell, {"result": {"status": "weird"}, "machine": machine})
    assert bad["status"] == "error" and "weird" in bad["error"]


def test_a_second_writer_appends_and_never_truncates(tmp_path):
    machine = {"host": "box", "device_name": "cpu0", "threads": 1}
    for run_id in ("a", "b"):
        w = ResultWriter(tmp_path, run_id)
        w.add(make_row(run_id, _cell(), {"result": {"status": "ok"}, "machine": machine}))
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("a,") and lines[2].startswith("b,")


def test_suite_results_cannot_overwrite_identity_columns():
    from suites.core import registry
    registry.register(registry.Suite("liar", lambda cell, ctx: {"model": "other", "batch_size": 999,
                                                                "latency_ms_p50": 1.0}, __name__, "test"))
    try:
        out = execute(_cell(suite="liar"), Context())
    finally:
        registry.unregister("liar")
    row = make_row("r", _cell(suite="liar"), out)
    assert (row["model"], row["batch_size"], row["latency_ms_p50"]) == ("lsnet_t", 1, 1.0)
