"""Harness machinery on CPU: devices, runtime (dtype, layout, autocast, OOM handling), profile
tables, executor isolation, sweep planning and the results schema."""
from __future__ import annotations

import csv
import json
import resource
from types import SimpleNamespace

import pytest
import torch

from suites import devices, executor, profile, results, runtime, sweep
from suites.cell import ROW_COLUMNS, Cell


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


# --- runtime -----------------------------------------------------------------------------------
def test_is_oom_classification():
    assert runtime.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory"))
    assert runtime.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert runtime.is_oom(MemoryError())
    assert runtime.is_oom(runtime.InsufficientMemory("x"))
    assert not runtime.is_oom(ValueError("shape mismatch"))


def _cell(**kw) -> Cell:
    base = dict(suite="latency", model="lsnet_t", resolution=64, warmup=0.0, min_time=0.0, min_samples=2)
    return Cell(**{**base, **kw})


def test_input_is_random_in_dtype_and_layout():
    x = runtime.make_input(_cell(batch_size=2, dtype="bfloat16", channels_last=True))
    assert x.dtype == torch.bfloat16 and x.shape == (2, 3, 64, 64)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x.float().std() > 0.5


def test_amp_autocasts_on_cpu_and_model_is_inference_form():
    cell = _cell(dtype="amp", channels_last=True)
    with runtime.inference_context(cell):
        prep = runtime.prepare(cell)
        y = prep.step()
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1000)
    assert not prep.model.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prep.model.modules())   # fused
    unfused = runtime.build_model(_cell(fused=False))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfused.modules())


def test_cuda_graphs_rejected_on_cpu():
    with pytest.raises(ValueError, match="CUDA device"):
        runtime.prepare(_cell(cuda_graphs=True))


def test_input_larger_than_memory_is_an_oom_before_allocation():
    res = executor.execute(_cell(batch_size=10**7, resolution=224))
    assert res["status"] == "oom" and "available" in res["error"]


def test_cpu_allocation_limit_turns_huge_allocation_into_catchable_oom():
    before = resource.getrlimit(resource.RLIMIT_AS)
    import psutil
    too_big = int(psutil.virtual_memory().available * 1.5)
    with runtime.cpu_allocation_limit(_cell()):
        with pytest.raises(RuntimeError) as info:
            torch.empty(too_big, dtype=torch.uint8)
    assert runtime.is_oom(info.value)
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
    res = executor.execute(_cell(model="no_such_model"))
    assert res["status"] == "error" and "no_such_model" in res["error"] and "\n" not in res["error"]


def test_worker_timeout_and_crash_descriptions():
    res = executor.execute_in_worker(_cell(), timeout=0.01)
    assert res["status"] == "error" and "timed out" in res["error"]
    assert executor._describe_exit(-9)[0] == "oom"
    status, msg = executor._describe_exit(-11)
    assert status == "error" and "SIGSEGV" in msg


def test_isolation_policy():
    assert executor.needs_process(_cell(suite="memory"))
    assert not executor.needs_process(_cell(suite="latency"))
    assert executor.needs_process(_cell(suite="latency", device="cuda:0"))
    assert not executor.needs_process(_cell(suite="memory"), "inline")
    with pytest.raises(ValueError):
        executor.needs_process(_cell(), "sometimes")


# --- sweep planning ----------------------------------------------------------------------------
def test_plan_shapes():
    cells = sweep.plan(["latency", "throughput", "flops", "memory"], ["lsnet_t", "lsnet_s"], ["cpu"], ["float32"],
                       batch_sizes=None, max_batch=8, resolution=64)
    by = lambda s: [c for c in cells if c.suite == s]  # noqa: E731
    assert [c.batch_size for c in by("latency")] == [1, 1]
    assert [c.batch_size for c in by("throughput")] == [1, 2, 4, 8] * 2
    assert all(c.options[sweep.AUTO_SWEEP_KEY] for c in by("throughput"))
    assert [(c.model, c.device) for c in by("flops")] == [("lsnet_t", "cpu"), ("lsnet_s", "cpu")]
    assert [c.batch_size for c in by("memory")] == [1, 8, 32] * 2
    graphs = sweep.plan(["latency"], ["lsnet_t"], ["cpu"], ["float32"], cuda_graphs=True)
    assert graphs[0].options[sweep.SKIP_KEY]


def test_auto_sweep_stops_after_oom(tmp_path, monkeypatch):
    seen = []

    def fake_run(cell, isolation="auto", timeout=None):
        seen.append(cell.batch_size)
        return {"status": "oom", "error": "x"} if cell.batch_size >= 4 else {"status": "ok", "throughput_img_s": 1.0}
    monkeypatch.setattr(sweep, "run_cell", fake_run)
    cells = sweep.plan(["throughput"], ["lsnet_t"], ["cpu"], ["float32"], max_batch=32, resolution=64)
    rows = sweep.run_sweep(cells, results.ResultWriter(tmp_path, "r"), progress=False)
    assert seen == [1, 2, 4]
    assert [r["status"] for r in rows] == ["ok", "ok", "oom", "skipped", "skipped", "skipped"]


# --- results schema ----------------------------------------------------------------------------
def test_rows_follow_the_schema_and_are_written_as_they_arrive(tmp_path):
    w = results.ResultWriter(tmp_path, "run1")
    cell = _cell()
    w.add(results.make_row("run1", cell, {"status": "ok", "latency_ms_p50": 1.5, "samples": [1.0, 2.0],
                                          "extra": {"a": 1}}, family="lsnet", device_name="cpu0", threads=2))
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == ROW_COLUMNS and len(rows) == 2
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["columns"] == list(ROW_COLUMNS)
    row = doc["rows"][0]
    assert set(ROW_COLUMNS) <= set(row) and row["samples"] == [1.0, 2.0] and row["extra"] == {"a": 1}
    assert row["status"] == "ok" and row["error"] is None and row["threads"] == 2
    bad = results.make_row("run1", cell, {"status": "weird"})
    assert bad["status"] == "error" and "weird" in bad["error"]
