"""The harness seams: a new suite is one module plus one registration line (proved end to end through
the CLI, in-process and in a worker process); cells are small hashable values that round-trip
through JSON; the ops suite measures the SKA op through the same cells and rows."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

import run_bench
from suites.core.schema import ROW_COLUMNS
from suites import ops
from suites.core import registry
from suites.core.cell import Cell

FAST = ["--resolution", "64", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3", "--no-progress", "--no-report"]

TOY = '''
"""A toy suite: the model's parameter count times a factor, as a latency."""
from dataclasses import dataclass, field

from suites.core import zoo
from suites.core.counting import count_params
from suites.core.registry import Suite, register


@dataclass(frozen=True)
class Options:
    toy_factor: int = field(default=2, metadata={"help": "toy: the factor"})

    def validate(self):
        if self.toy_factor < 1:
            raise ValueError(f"--toy-factor must be >= 1, got {self.toy_factor}")


def run(cell, ctx):
    n = count_params(zoo.create(cell.model, img_size=cell.resolution))
    return {"latency_ms_p50": n * cell.opts.toy_factor / 1e6, "extra": {"isolated": ctx.isolated}}


SUITE = register(Suite("toy", run, __name__, "a toy", options=Options))
'''


@pytest.fixture
def toy_suite(tmp_path, monkeypatch):
    (tmp_path / "toy_suite_mod.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))   # worker processes import it too
    import toy_suite_mod  # noqa: F401
    yield
    registry.unregister("toy")
    sys.modules.pop("toy_suite_mod", None)


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_a_new_suite_is_one_module_and_one_registration(toy_suite, tmp_path, isolation, capsys):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "toy", "--models", "lsnet_t,starnet_s1", "--toy-factor", "3",
                           "--isolation", isolation, "--out", str(out), *FAST]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == ["lsnet_t", "starnet_s1"] and all(r["status"] == "ok" for r in rows)
    assert rows[0]["latency_ms_p50"] == pytest.approx(3 * 11.409832, rel=1e-3)
    assert rows[0]["extra"]["isolated"] is (isolation == "process")
    assert rows[0]["cell"]["options"] == {"toy_factor": 3}
    assert run_bench.main(["--suite", "toy", "--toy-factor", "0", "--out", str(tmp_path / "bad"), *FAST]) == 2
    assert "--toy-factor must be >= 1" in capsys.readouterr().err


def test_cells_are_hashable_and_round_trip():
    opts = ops.Options(op_backends="torch", op_modes="fwd", op_stages="stage2")
    cell = Cell("ops", "lsnet_t", engine="eager", batch_size=4, options=opts)
    assert Cell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell
    assert len({cell, Cell.from_dict(cell.to_dict())}) == 1
    assert Cell("latency", "lsnet_t").opts == registry.NoOptions()
    assert Cell("latency", "lsnet_t", engine="compile").compile


def test_option_flags_are_one_per_name_and_typed():
    flags = {f.field: f for f in registry.option_flags()}
    assert flags["num_classes"].type is int and flags["crop_ratio"].type is float
    assert flags["data"].suites == ("accuracy",) and flags["op_backends"].suites == ("ops",)


def test_ops_stage_shapes_and_roofline():
    shapes = {s.name: s for s in ops.lsnet_shapes(256)}
    assert sorted(shapes) == ["lsnet_b.stage1", "lsnet_b.stage2", "lsnet_b.stage3", "lsnet_s.stage2",
                              "lsnet_s.stage3", "lsnet_t.stage2", "lsnet_t.stage3"]
    assert shapes["lsnet_b.stage1"] == ops.Shape("lsnet_b.stage1", 256, 128, 16, 28, 28, 3)
    s = shapes["lsnet_b.stage1"]
    x, w = 256 * 128 * 28 * 28, 256 * 16 * 9 * 28 * 28
    assert ops.tensor_bytes(s, "fwd", 4) == (2 * x + w) * 4 == 321_126_400
    assert ops.tensor_bytes(s, "fwd_bwd", 4) == (2 * x + w + 3 * x + 2 * w) * 4
    assert ops.flops(s, "fwd") == 18 * x and ops.flops(s, "fwd_bwd") == 54 * x
    cells = ops.expand(Cell("ops", "lsnet_t_distill", batch_size=2, options=ops.Options()))
    assert len(cells) == 2 * len(ops.MODES) * len(ops.BACKENDS)
    assert {c.opts.op_stages for c in cells} == {"stage2", "stage3"}
    assert ops.expand(Cell("ops", "starnet_s1", options=ops.Options())) == []


def test_ops_suite_through_the_cli(tmp_path):
    out = tmp_path / "ops"
    assert run_bench.main(["--suite", "ops", "--models", "lsnet_t", "--batch-sizes", "1", "--op-stages", "stage3",
                           "--copy-mb", "8", "--channels-last", "--threads", "1", "--out", str(out), *FAST]) == 0
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == ROW_COLUMNS
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == len(ops.MODES) * len(ops.BACKENDS)
    by = {(r["extra"]["mode"], r["extra"]["backend"]): r for r in rows}
    for mode in ops.MODES:
        for backend in ("reference", "torch"):
            r = by[(mode, backend)]
            assert r["status"] == "ok" and r["suite"] == "ops" and r["threads"] == 1, r
            assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"]
            assert r["gbps"] == pytest.approx(r["bytes_moved"] / (r["latency_ms_p50"] * 1e-3) / 1e9)
            assert r["pct_copy_bw"] == pytest.approx(100 * r["gbps"] / r["extra"]["copy_gbps"])
        for backend in ("triton", "official"):
            assert by[(mode, backend)]["status"] == "skipped" and by[(mode, backend)]["error"]
    r = by[("fwd", "torch")]
    assert r["bytes_moved"] == 4 * (2 * 256 + 9 * 32) * 4 and r["extra"]["flops"] == 18 * 256 * 4   # 2x2 at 64 px
