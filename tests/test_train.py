"""The train suite: end to end through the CLI (plain, distilled, a baseline, amp, a skipped pure-half
cell), the ladder's per-suite top batch, gradient checkpointing equals the plain backward, and one
float64 SGD step of LSNet-T gives the same update with every SKA backend."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lsnet
import run_bench
from suites.core import registry
from suites.sweep import plan as sweep
from suites import train

FAST = ["--resolution", "64", "--batch-sizes", "2", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3",
        "--no-progress", "--no-report"]
EXTRA_KEYS = {"optimizer", "lr", "amp", "amp_dtype", "grad_scaler", "grad_checkpointing", "drop_path", "loss",
              "ska_backend", "timer", "memory_method", "param_bytes", "grad_bytes", "optimizer_state_bytes",
              "buffer_bytes", "state_mb", "activations_mb", "final_loss"}


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["rows"]


def test_cli_end_to_end(tmp_path, capsys):
    """LSNet-T (sgd), its distilled form (two heads), a baseline, amp (bf16 on CPU) and a skipped float16."""
    out = tmp_path / "run"
    code = run_bench.main(["--suite", "train", "--models", "lsnet_t,lsnet_t_distill,starnet_s1",
                           "--dtype", "float32,float16", "--protocol", "sequential", "--out", str(out), *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train: largest batch that fits" in printed
    rows = {(r["model"], r["dtype"]): r for r in _rows(out)}
    assert len(rows) == 6
    for model in ("lsnet_t", "lsnet_t_distill", "starnet_s1"):
        r = rows[(model, "float32")]
        assert r["status"] == "ok", r["error"]
        assert r["suite"] == "train" and r["fused"] is True and r["n_samples"] >= 3
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        assert r["throughput_img_s"] == pytest.approx(2000.0 / r["latency_ms_p50"])
        assert r["peak_mem_mb"] > 0 and r["params_m"] > 0
        ex = r["extra"]
        assert EXTRA_KEYS <= set(ex)
        assert ex["param_bytes"] == ex["grad_bytes"] == ex["optimizer_state_bytes"]   # sgd momentum: one buffer
        assert ex["param_bytes"] == pytest.approx(r["params_m"] * 1e6 * 4)
        assert ex["activations_mb"] is not None and ex["optimizer"] == "sgd" and ex["amp"] is False
        skipped = rows[(model, "float16")]
        assert skipped["status"] == "skipped" and "train with --dtype amp" in skipped["error"]
    assert rows[("lsnet_t", "float32")]["extra"]["ska_backend"] == ["torch"]
    assert rows[("starnet_s1", "float32")]["extra"]["ska_backend"] == []
    assert all(r["protocol"] == "sequential" and r["ratio_to_ref"] is None for r in rows.values() if r["status"] == "ok")

    assert rows[("lsnet_t", "float32")]["extra"]["loss"] == "cross_entropy"
    assert rows[("lsnet_t_distill", "float32")]["extra"]["loss"] == "hard_distillation"


def test_cli_amp_adamw_checkpointing(tmp_path):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "train", "--models", "lsnet_t", "--dtype", "amp", "--optimizer", "adamw",
                           "--grad-checkpointing", "--isolation", "inline", "--out", str(out), *FAST]) == 0
    (r,) = _rows(out)
    assert r["status"] == "ok", r["error"]
    ex = r["extra"]
    assert ex["amp"] is True and ex["amp_dtype"] == "bfloat16" and ex["grad_scaler"] is False
    assert ex["optimizer"] == "adamw" and ex["grad_checkpointing"] is True
    assert ex["optimizer_state_bytes"] == 2 * ex["param_bytes"] + 4 * len(list(lsnet.create_model("lsnet_t").parameters()))
    assert r["peak_mem_mb"] is None and "isolated" not in ex["memory_method"]   # inline: RSS peak not measurable
    assert "peak_mem_mb" in r["warnings"]


def test_checkpointing_on_a_model_without_it_is_skipped(tmp_path):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "train", "--models", "starnet_s1", "--grad-checkpointing",
                           "--isolation", "inline", "--out", str(out), *FAST]) == 0
    (r,) = _rows(out)
    assert r["status"] == "skipped" and "set_grad_checkpointing" in r["error"]


@pytest.mark.parametrize("argv, needle", [(["--lr", "0"], "--lr must be > 0"),
                                          (["--drop-path", "1"], "--drop-path must be in [0, 1)"),
                                          (["--optimizer", "lamb"], "invalid choice")])
def test_bad_options(argv, needle, capsys):
    assert run_bench.main(["--suite", "train", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_ladder_uses_the_suite_max_batch():
    suite = registry.get("train")
    (task,) = sweep.plan(["train"], ["lsnet_t"], ["cpu"], ["float32"])
    assert task.ladder and [c.batch_size for c in task.cells] == sweep.powers_of_two(train.MAX_BATCH["cpu"])
    assert sweep.default_max_batch(suite, "cuda:0") == train.MAX_BATCH["cuda"]
    assert sweep.default_max_batch(registry.get("throughput"), "cpu") == sweep.DEFAULT_MAX_BATCH["cpu"]
    (task,) = sweep.plan(["train"], ["lsnet_t"], ["cpu"], ["float32"], max_batch=4)
    assert [c.batch_size for c in task.cells] == [1, 2, 4]
    with pytest.raises(ValueError, match="max_batch"):
        registry.Suite("bad", lambda c, x: {}, __name__, "bad", max_batch={"cpu": 0, "cuda": 1})


def test_largest_batches_from_rows():
    def row(b, status):
        return {"suite": "train", "model": "m", "engine": "eager", "device": "cpu", "dtype": "float32",
                "batch_size": b, "status": status, "cell": {"options": {"optimizer": "sgd"}}}
    rows = [row(1, "ok"), row(2, "ok"), row(4, "oom"), row(8, "skipped")]
    assert list(train.largest_batches(rows).values()) == [2]
    assert "m  eager  cpu  float32  2" in train.console_summary(rows)


RES = 96   # at 64 with batch 2 the last stage is 1x1: batch-statistics BN makes the step ill-conditioned


def _lsnet_t(backend: str) -> torch.nn.Module:
    """LSNet-T in float64 with the seeded default initialisation (trainable, unlike the test-logit rule)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = lsnet.create_model("lsnet_t", img_size=RES, num_classes=10).double().train()
    return lsnet.set_ska_backend(model, backend)


def test_grad_checkpointing_gives_the_same_gradients():
    model = _lsnet_t("torch")
    ckpt = copy.deepcopy(model).set_grad_checkpointing(True)
    x = torch.randn(2, 3, RES, RES, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    model(x).square().sum().backward()
    ckpt(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-12, atol=1e-12, msg=name)


def _sgd_update(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return [p.detach() - b for p, b in zip(model.parameters(), before)]


def test_one_step_same_update_on_every_ska_backend(monkeypatch):
    """float64 SGD step of LSNet-T: torch and triton (interpreter, when installed) equal the reference."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, RES, RES, dtype=torch.float64, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    ref = _sgd_update(_lsnet_t("reference"), x, y)
    backends = ["torch"]
    try:
        import triton  # noqa: F401
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        backends.append("triton")
    except ImportError:
        pass
    for backend in backends:
        got = _sgd_update(_lsnet_t(backend), x, y)
        scale = max(float(r.abs().max()) for r in ref)
        worst = max(float((a - b).abs().max()) for a, b in zip(got, ref))
        assert 0 < scale < 1e3 and worst <= 1e-11 * scale, (backend, worst, scale)


def test_interleaved_train_rows_are_paired_and_say_why_cpu_memory_is_missing(tmp_path):
    out = tmp_path / "run"
    assert run_bench.main(["--suite", "train", "--models", "lsnet_t,starnet_s1", "--out", str(out), *FAST]) == 0
    rows = {r["model"]: r for r in _rows(out)}
    assert rows["lsnet_t"]["protocol"] == "interleaved" and rows["lsnet_t"]["ratio_to_ref"] == 1.0
    st = rows["starnet_s1"]
    assert st["ref_model"] == "lsnet_t" and st["ratio_ci_low"] <= st["ratio_to_ref"] <= st["ratio_ci_high"]
    assert st["peak_mem_mb"] is None and "interleaved group share one process" in st["warnings"]
