"""The SKA ops benchmark: shapes, roofline arithmetic, and an end-to-end CPU run at tiny sizes."""
from __future__ import annotations

import csv
import json

import pytest

from suites import ska_bench
from suites.ska_bench import Shape, flops, lsnet_shapes, tensor_bytes


def test_lsnet_stage_shapes():
    shapes = {s.name: s for s in lsnet_shapes(256)}
    # stages with an LSConv (depth >= 2) among stages 1-3; LSNet-T stage 1 is empty, S stage 1 has depth 1
    assert sorted(shapes) == ["lsnet_b.stage1", "lsnet_b.stage2", "lsnet_b.stage3", "lsnet_s.stage2",
                              "lsnet_s.stage3", "lsnet_t.stage2", "lsnet_t.stage3"]
    assert shapes["lsnet_b.stage1"] == Shape("lsnet_b.stage1", 256, 128, 16, 28, 28, 3)  # the target
    assert (shapes["lsnet_s.stage3"].c, shapes["lsnet_s.stage3"].cw, shapes["lsnet_s.stage3"].h) == (320, 40, 7)


def test_roofline_counts():
    s = Shape("b1", 256, 128, 16, 28, 28, 3)
    x = 256 * 128 * 28 * 28
    w = 256 * 16 * 9 * 28 * 28
    assert tensor_bytes(s, "fwd", 4) == (2 * x + w) * 4 == 321_126_400
    assert tensor_bytes(s, "fwd", 2) == (2 * x + w) * 2
    assert tensor_bytes(s, "fwd_bwd", 4) == (2 * x + w + 3 * x + 2 * w) * 4
    assert flops(s, "fwd") == 18 * x
    assert flops(s, "fwd_bwd") == 54 * x


def test_cpu_run_writes_rows(tmp_path):
    rows = ska_bench.main(["--device", "cpu", "--batch", "1", "--shapes", "lsnet_t.stage3", "--min-time", "0.01",
                           "--copy-mb", "8", "--channels-last", "both", "--threads", "1", "--out", str(tmp_path)])
    with open(tmp_path / "ska_bench.csv") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == ska_bench.COLUMNS
    assert len(table) == len(rows) == 1 + 2 * len(ska_bench.MODES) * len(ska_bench.BACKENDS)
    copy = table[0]
    assert copy["backend"] == "copy" and float(copy["gbps"]) > 0
    by_key = {(r["channels_last"], r["mode"], r["backend"]): r for r in table[1:]}
    for cl in ("False", "True"):
        for mode in ska_bench.MODES:
            for backend in ("reference", "torch"):
                r = by_key[(cl, mode, backend)]
                assert r["status"] == "ok", r
                ms, gbps = float(r["ms_p50"]), float(r["gbps"])
                assert ms > 0 and float(r["ms_p10"]) <= ms <= float(r["ms_p90"])
                assert gbps == pytest.approx(int(r["bytes"]) / (ms * 1e-3) / 1e9, rel=1e-2, abs=2e-3)
                assert float(r["pct_copy_bw"]) == pytest.approx(100 * gbps / float(copy["gbps"]), rel=1e-2, abs=0.06)
            for backend in ("triton", "official"):  # not benchmarked in the CPU interpreter
                assert by_key[(cl, mode, backend)]["status"] == "skipped"
    r = by_key[("False", "fwd", "torch")]
    assert int(r["bytes"]) == 49 * (2 * 256 + 9 * 32) * 4 and int(r["flops"]) == 18 * 256 * 49
    env = json.loads((tmp_path / "ska_bench.json").read_text())["env"]
    assert env["device"] == "cpu" and env["copy_gbps"] > 0 and env["threads"] == 1


def test_threads_restored(tmp_path):
    import torch
    before = torch.get_num_threads()
    ska_bench.main(["--device", "cpu", "--batch", "1", "--shapes", "lsnet_t.stage2", "--min-time", "0.01",
                    "--copy-mb", "4", "--modes", "fwd", "--backends", "torch", "--threads", "1",
                    "--out", str(tmp_path)])
    assert torch.get_num_threads() == before


def test_unknown_shape_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown shapes"):
        ska_bench.main(["--device", "cpu", "--shapes", "lsnet_x.stage9", "--out", str(tmp_path)])
