"""The interleaved protocol against a simulated machine whose speed drifts (an injected clock).

Each model costs a fixed number of milliseconds at speed 1; the machine multiplies every call's cost
by its speed at that moment (a step, a ramp, two-speed flips). The sequential protocol (each cell
alone, one after another) then reports ratios that are the drift's, not the models'; the
interleaved rounds give the true ratios, with intervals that contain them. The group runner is
checked end to end with a toy suite: ratios, the out-of-memory ladder, chunks, failing cells.
"""
from __future__ import annotations

import contextlib
import random
import sys
import types

import pytest
import torch

from suites.core import guards, timing
from suites import interleave
from suites.core.cell import Cell, Context
from suites.interleave import run_group, run_rounds, sequential
from suites.core.measurement import Measurement, median_ci, paired_ratio
from suites.core.registry import Suite, register, unregister


class Machine:
    """Simulated time: a call of ``cost`` ms takes ``cost * speed(t)`` ms."""

    def __init__(self, speed):
        self.t, self.speed = 0.0, speed

    def clock(self) -> float:
        return self.t

    def work(self, cost_ms: float) -> None:
        self.t += cost_ms * self.speed(self.t) / 1000.0


class SimTimer:
    def __init__(self, machine: Machine):
        self.m = machine

    def sync(self) -> None:
        pass

    def start(self) -> float:
        return self.m.t

    def stop(self, token: float) -> float:
        return (self.m.t - token) * 1000.0


def bench(machine: Machine, cost_ms: float, batched: bool = False) -> timing.Bench:
    return timing.Bench(lambda: machine.work(cost_ms), SimTimer(machine), lambda m: {}, batched=batched)


def step(at: float, before: float = 1.0, after: float = 1.5):
    return lambda t: before if t < at else after


def ramp(per_s: float):
    return lambda t: 1.0 + per_s * t


def flips(period: float, slow: float = 1.6):
    return lambda t: slow if int(t / period) % 2 else 1.0


def _sequential(machine: Machine, costs: dict[str, float]) -> dict[str, Measurement]:
    """Today's protocol: each cell warmed and timed alone, one after another."""
    out = {}
    for name, cost in costs.items():
        out[name] = timing.measure_alone(bench(machine, cost), warmup=0.5, min_time=1.0, min_samples=30,
                                         clock=machine.clock)
    return out


def _interleaved(machine: Machine, costs: dict[str, float], *, seed: int = 0, **kw) -> dict[str, Measurement]:
    benches = {k: bench(machine, c) for k, c in costs.items()}
    args = dict(burst=0.1, min_time=1.0, max_time=3.0, precision=0.02) | kw
    meas, failed = run_rounds(benches, {k: c / 1000 for k, c in costs.items()}, dict.fromkeys(costs, "a"),
                              clock=machine.clock, rng=random.Random(seed), **args)
    assert not failed
    return meas


def _seq_ratio(m: dict[str, Measurement], a: str, b: str) -> float:
    return m[b].median / m[a].median


@pytest.mark.parametrize("speed,costs,true,sequential_fails", [
    (step(at=2.0), {"a": 10.0, "b": 10.0}, 1.0, True),               # the machine slows by 1.5x mid-run
    (ramp(per_s=0.15), {"a": 10.0, "b": 12.0}, 1.2, True),           # it slows steadily
    (flips(period=0.7), {"a": 10.0, "b": 10.0, "c": 11.0}, 1.1, False),   # it flips between two speeds
])
def test_interleaved_ratios_are_the_models_not_the_drift(speed, costs, true, sequential_fails):
    last = list(costs)[-1]
    inter = _interleaved(Machine(speed), costs, min_time=2.0, max_time=4.0)
    r = paired_ratio(inter[last], inter["a"])
    assert r.low <= true <= r.high and abs(r.value / true - 1) < 0.03 and r.half_width < 0.05, r
    if sequential_fails:     # the sequential protocol measures the drift: its ratio is off and its intervals miss
        seq = _sequential(Machine(speed), costs)
        (lo_a, hi_a), (lo_b, hi_b) = seq["a"].interval(), seq[last].interval()
        assert not lo_b / hi_a <= true <= hi_b / lo_a
        assert abs(_seq_ratio(seq, "a", last) / true - 1) > 0.1


def test_the_flips_fool_the_sequential_protocol_but_not_the_rounds():
    costs = {"a": 10.0, "b": 10.0}
    seq = _sequential(Machine(flips(period=1.4)), costs)         # a lands in fast phases, b in slow ones
    assert abs(_seq_ratio(seq, "a", "b") - 1) > 0.2
    inter = _interleaved(Machine(flips(period=1.4)), costs)
    r = paired_ratio(inter["b"], inter["a"])
    assert r.low <= 1.0 <= r.high


def test_latency_interval_of_the_rounds_covers_the_drift():
    """A cell's own interval comes from its round medians, so a slower phase widens it honestly."""
    inter = _interleaved(Machine(step(at=2.0, after=1.3)), {"a": 10.0, "b": 10.0}, min_time=2.0)
    lo, hi = inter["a"].interval()
    assert lo <= 10.5 and hi >= 12.5          # spans both phases (10 ms and 13 ms)
    burst_only = Measurement([inter["a"].rounds[0]])
    assert burst_only.interval()[1] < 10.5    # one burst's samples alone describe one phase


def test_rounds_stop_at_the_precision_target_before_the_budget():
    m = Machine(lambda t: 1.0)
    meas = _interleaved(m, {"a": 10.0, "b": 20.0}, precision=0.05, max_time=30.0)
    assert len(meas["a"].rounds) == interleave.MIN_ROUNDS           # no noise: the minimum suffices
    assert m.t < 5.0


def test_rounds_stop_at_the_budget_when_the_target_is_not_reached():
    noisy = random.Random(1)
    m = Machine(lambda t: 1.0 + noisy.random())
    meas = _interleaved(m, {"a": 10.0, "b": 10.0}, precision=0.001, max_time=2.0)
    spent = sum(sum(r) for r in meas["a"].rounds) / 1000
    assert 2.0 <= spent < 2.0 + 0.2 and len(meas["a"].rounds) > interleave.MIN_ROUNDS


def test_a_large_group_stops_at_its_group_budget_once_every_cell_has_min_time():
    noisy = random.Random(2)
    m = Machine(lambda t: 1.0 + noisy.random())
    costs = {k: 10.0 for k in "abcd"}
    meas = _interleaved(m, costs, precision=0.001, min_time=0.5, max_time=100.0, group_time=6.0)
    assert 6.0 <= m.t < 6.6
    assert all(sum(sum(r) for r in x.rounds) / 1000 >= 0.5 for x in meas.values())
    short = _interleaved(Machine(lambda t: 1.0 + noisy.random()), costs, precision=0.001, min_time=1.0,
                         max_time=100.0, group_time=2.0)      # min_time outranks the group budget
    assert all(sum(sum(r) for r in x.rounds) / 1000 >= 1.0 for x in short.values())


def test_max_time_never_stops_a_cell_below_its_minimum_samples():
    """A cell far slower than its budget (one 400 ms call per burst, --max-time 0.3 s) still gets
    --min-samples samples (up to the rounds an interval needs)."""
    m = Machine(lambda t: 1.0)
    for min_samples, expected in ((3, 3), (50, interleave.MIN_ROUNDS)):
        meas, _ = run_rounds({"a": bench(m, 400.0)}, {"a": 0.4}, {}, burst=0.02, min_time=0.0, max_time=0.3,
                             precision=0.5, min_samples=min_samples, clock=m.clock, rng=random.Random(0))
        assert len(meas["a"].samples) == expected


def test_each_round_visits_every_cell_in_a_fresh_order():
    m = Machine(lambda t: 1.0)
    order: list[str] = []
    benches = {k: timing.Bench(lambda k=k: (order.append(k), m.work(150.0)), SimTimer(m), lambda x: {})
               for k in "abcd"}
    run_rounds(benches, dict.fromkeys("abcd", 0.1), {}, burst=0.1, min_time=0.0, max_time=10.0, precision=0.5,
               clock=m.clock, rng=random.Random(3))
    rounds = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1


def test_batched_cells_take_one_sample_per_burst():
    m = Machine(lambda t: 1.0)
    b = {"a": bench(m, 2.0, batched=True)}
    meas, _ = run_rounds(b, {"a": 0.002}, {}, burst=0.1, min_time=0.5, max_time=0.5, precision=0.5,
                         clock=m.clock, rng=random.Random(0))
    assert all(len(r) == 1 for r in meas["a"].rounds) and meas["a"].calls_per_sample == 50
    assert meas["a"].median == pytest.approx(2.0)


def test_stalls_are_removed_and_counted_in_rounds():
    m = Machine(lambda t: 1.0)
    calls = iter(range(10_000))
    b = {"a": timing.Bench(lambda: m.work(500.0 if next(calls) == 40 else 5.0), SimTimer(m), lambda x: {})}
    meas, _ = run_rounds(b, {"a": 0.005}, {}, burst=0.05, min_time=1.0, max_time=1.0, precision=0.5,
                         clock=m.clock, rng=random.Random(0))
    assert meas["a"].n_stalls == 1 and max(meas["a"].samples) == pytest.approx(5.0)


def test_a_failing_cell_leaves_the_group_and_the_rest_go_on():
    m = Machine(lambda t: 1.0)
    calls = iter(range(10_000))

    def flaky() -> None:
        if next(calls) == 7:
            raise RuntimeError("boom")
        m.work(5.0)
    benches = {"a": bench(m, 5.0), "bad": timing.Bench(flaky, SimTimer(m), lambda x: {})}
    meas, failed = run_rounds(benches, {"a": 0.005, "bad": 0.005}, {}, burst=0.02, min_time=0.5, max_time=0.5,
                              precision=0.5, clock=m.clock, rng=random.Random(0))
    assert set(meas) == {"a"} and isinstance(failed["bad"], RuntimeError)


def test_paired_ratio_uses_rounds_both_took_part_in():
    a = Measurement([[10.0], [20.0], [10.0], [20.0], [10.0], [20.0]])
    b = Measurement([[11.0], [22.0], [11.0], [22.0], [11.0], [22.0]])
    r = paired_ratio(b, a)
    assert r.value == pytest.approx(1.1) and r.low == pytest.approx(1.1) and r.high == pytest.approx(1.1)
    assert median_ci([10.0, 20.0] * 3) == (10.0, 20.0)       # unpaired, the same data spans the drift


def test_merge_keeps_rounds_and_stalls():
    a = Measurement([[1.0, 2.0]], n_stalls=1, notes=["x"])
    b = Measurement([[3.0]], n_stalls=2, notes=["x", "y"])
    m = a.merge(b)
    assert m.rounds == [[1.0, 2.0], [3.0]] and m.n_stalls == 3 and m.notes == ["x", "y"]
    assert Measurement.from_dict(m.to_dict()).rounds == m.rounds


# --- the group runner, end to end with a toy suite on the simulated machine ---------------------------

MACHINE = Machine(lambda t: 1.0)
COSTS = {"a": 10.0, "b": 20.0, "c": 15.0}


@contextlib.contextmanager
def toy_bench(cell: Cell, ctx: Context):
    if cell.model == "skipme":
        raise timing.Skip("not for this one")
    if cell.model == "broken":
        raise RuntimeError("cannot build")
    if cell.model == "big" and cell.batch_size >= 4:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
    cost = COSTS.get(cell.model, 10.0) * cell.batch_size
    yield timing.Bench(lambda: MACHINE.work(cost), SimTimer(MACHINE),
                       lambda m: {**timing.trusted(m), "extra": {"prepared": True}})


@pytest.fixture
def toy_timed(monkeypatch):
    MACHINE.t = 0.0
    mod = types.ModuleType("toy_timed_mod")
    sys.modules["toy_timed_mod"] = mod
    register(Suite("toy_timed", sequential(toy_bench), "toy_timed_mod", "a timed toy", timed=True, bench=toy_bench))
    monkeypatch.setattr(timing, "warm_up", lambda fn, timer, seconds, **kw: (fn(), (1, 0.01))[1])
    yield
    unregister("toy_timed")
    sys.modules.pop("toy_timed_mod", None)


def _cells(models, batches=(1,), **kw):
    return [Cell("toy_timed", m, batch_size=b, reference="a", burst=0.05, min_time=0.5, max_time=1.0,
                 precision=0.05, **kw) for m in models for b in batches]


def test_group_rows_carry_paired_ratios_against_the_reference(toy_timed):
    rows = dict(run_group(_cells(["a", "b", "c", "skipme", "broken"]), Context(), clock=MACHINE.clock))
    by = {c.model: r for c, r in rows.items()}
    assert by["a"]["ratio_to_ref"] == 1.0 and by["a"]["ref_model"] == "a"
    assert by["b"]["ratio_to_ref"] == pytest.approx(2.0) and by["c"]["ratio_to_ref"] == pytest.approx(1.5)
    assert by["b"]["protocol"] == "interleaved" and by["b"]["stable"]
    assert by["b"]["extra"]["n_rounds"] >= interleave.MIN_ROUNDS and by["b"]["extra"]["prepared"]
    assert by["skipme"]["status"] == "skipped" and by["broken"]["status"] == "error"
    assert "cannot build" in by["broken"]["error"]


def test_ladder_interleaves_each_batch_and_stops_a_model_at_its_oom(toy_timed):
    rows = list(run_group(_cells(["a", "big"], batches=(1, 2, 4, 8)), Context(), ladder=True, clock=MACHINE.clock))
    status = {(c.model, c.batch_size): r["status"] for c, r in rows}
    assert status[("big", 4)] == "oom" and status[("big", 8)] == "skipped"
    assert all(status[("a", b)] == "ok" for b in (1, 2, 4, 8))
    big2 = next(r for c, r in rows if (c.model, c.batch_size) == ("big", 2))
    assert big2["ratio_to_ref"] == pytest.approx(1.0)          # against a at the same batch


def _count_prepared(prepared: list[int]) -> None:
    """The toy suite again, its benches counted in ``prepared`` while they are open."""
    @contextlib.contextmanager
    def counting(cell, ctx):
        prepared.append(1)
        try:
            with toy_bench(cell, ctx) as b:
                yield b
        finally:
            prepared.pop()
    register(Suite("toy_timed", sequential(counting), "toy_timed_mod", "a timed toy", timed=True, bench=counting))


def test_a_group_too_big_for_memory_runs_in_chunks_each_with_the_reference(toy_timed, monkeypatch):
    prepared: list[int] = []
    total = 100
    monkeypatch.setattr(guards, "total_memory", lambda device: total)
    monkeypatch.setattr(guards, "available_memory", lambda device: total - 40 * len(prepared))
    _count_prepared(prepared)
    rows = list(run_group(_cells(["a", "b", "c"]), Context(), clock=MACHINE.clock))
    assert sorted(c.model for c, _ in rows) == ["a", "b", "c"]           # one row each, the reference's once
    by = {c.model: r for c, r in rows}
    assert by["b"]["ratio_to_ref"] == pytest.approx(2.0) and by["c"]["ratio_to_ref"] == pytest.approx(1.5)
    assert by["b"]["extra"]["group_cells"] == 2                          # chunks of the reference and one more


def test_a_chunk_keeps_room_for_its_largest_forward(toy_timed, monkeypatch):
    """Plenty free by the fixed floor, but b's forward needs 45 of the 80 left: c waits for the next chunk."""
    from suites.core import procmem
    prepared: list[int] = []
    monkeypatch.setattr(guards, "total_memory", lambda device: 100)
    monkeypatch.setattr(guards, "available_memory", lambda device: 100 - 10 * len(prepared))

    @contextlib.contextmanager
    def fake_transient(device):
        yield procmem.Transient(45 if len(prepared) == 2 else 5)       # measured around b's warm-up
    monkeypatch.setattr(procmem, "transient", fake_transient)
    _count_prepared(prepared)
    by = {c.model: r for c, r in run_group(_cells(["a", "b", "c"]), Context(), clock=MACHINE.clock)}
    assert by["b"]["extra"]["group_cells"] == 2 and by["c"]["extra"]["group_cells"] == 2
    assert by["c"]["ratio_to_ref"] == pytest.approx(1.5)
    monkeypatch.setattr(procmem, "transient", lambda device: contextlib.nullcontext(procmem.Transient(5)))
    by = {c.model: r for c, r in run_group(_cells(["a", "b", "c"]), Context(), clock=MACHINE.clock)}
    assert by["c"]["extra"]["group_cells"] == 3                          # small forwards: one chunk


def test_transient_need_is_the_peak_above_what_the_block_keeps():
    from suites.core import procmem
    with procmem.transient("cpu") as need:
        big = torch.ones(64 * 2**20 // 4)          # 64 MiB touched, then freed
        big.add_(1)
        del big
    if procmem.hwm_bytes() is None:
        pytest.skip("no VmHWM on this OS")
    assert need.bytes is not None and need.bytes > 48 * 2**20


# --- the command line -------------------------------------------------------------------------------

FAST = ["--resolution", "64", "--warmup", "0", "--min-time", "0", "--max-time", "0.3", "--burst", "0.02",
        "--threads", "1", "--no-progress", "--no-report"]


@pytest.mark.parametrize("flags,message", [
    (["--repeats", "2"], "--repeats re-measures"),
    (["--reference", "repvit_m0_9"], "--reference repvit_m0_9 is not among the measured models"),
    (["--precision", "1.5"], "--precision is a relative half-width"),
    (["--max-time", "0.5", "--min-time", "1"], "--max-time 0.5 is below --min-time 1"),
    (["--burst", "0"], "--burst must be > 0"),
    (["--protocol", "interleaved", "--executor", "ray"], "cannot interleave"),
])
def test_bad_protocol_flags_exit_2_before_any_cell(tmp_path, capsys, flags, message):
    import run_bench
    argv = ["--suite", "latency", "--models", "lsnet_t,starnet_s1", "--out", str(tmp_path / "r"), *flags]
    assert run_bench.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.csv").exists()


def test_sequential_rows_say_they_are_not_paired_and_interleaved_rows_are(tmp_path, capsys):
    import json

    import run_bench
    for protocol in ("sequential", "interleaved"):
        out = tmp_path / protocol
        assert run_bench.main(["--suite", "latency", "--models", "lsnet_t,starnet_s1", "--protocol", protocol,
                               "--out", str(out), *FAST]) == 0
        rows = {json.loads(line)["model"]: json.loads(line) for line in (out / "results.jsonl").open()}
        assert {r["protocol"] for r in rows.values()} == {protocol}
        if protocol == "sequential":
            assert all(r["ratio_to_ref"] is None for r in rows.values())
        else:
            s = rows["starnet_s1"]
            assert s["ref_model"] == "lsnet_t" and s["ratio_ci_low"] <= s["ratio_to_ref"] <= s["ratio_ci_high"]
            env = json.loads((out / "env.json").read_text())
            drift = env["sessions"][-1]["drift"]
            assert drift[0]["reference"] == "lsnet_t" and drift[0]["rounds"] == rows["lsnet_t"]["extra"]["n_rounds"]
            printed = capsys.readouterr().out
            assert "machine drift (latency eager cpu float32 bs1)" in printed and "time / ref" in printed


def test_drift_within_long_rounds_is_corrected_from_the_neighbouring_bursts():
    """Eight cells make a round 0.8 s long; the machine's speed swings +-30% with a 2 s period, so a
    cell's burst and its reference's land in different phases. Correcting each burst by the other
    cells' bursts nearest in time narrows the ratio's interval, and it still holds the truth."""
    import math
    from suites.core.measurement import drift_corrected, ratio_of, round_values
    costs = {"a": 10.0, **{k: 10.0 for k in "bcdefg"}, "h": 11.0}
    wave = Machine(lambda t: 1.0 + 0.3 * math.sin(2 * math.pi * t / 2.0))
    meas = _interleaved(wave, costs, min_time=3.0, max_time=3.0, precision=0.001)
    raw = ratio_of(round_values(meas["h"]), round_values(meas["a"]))
    fixed_values = drift_corrected(meas)
    fixed = ratio_of(fixed_values["h"], fixed_values["a"])
    assert fixed.low <= 1.1 <= fixed.high and abs(fixed.value / 1.1 - 1) < 0.03
    assert fixed.half_width < 0.6 * raw.half_width, (raw, fixed)
