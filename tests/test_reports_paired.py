"""Reports of the interleaved protocol: paired ratios (``ratio_to_ref`` with its interval) in the speed-up
columns, the Pareto fronts, the ablation and engine tables, the machine-drift plot, and ``compare``."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import reports
from reports import drift, tables
from suites.cli import main as cli
from reports.compare import CROSS_RUN, compare
from reports.engine_tables import engine_rankings, engine_speedups
from reports.load import combine, load_run
from reports.pareto import PAIRED, pair_group, pareto_mask
from reports.render import Report
from suites.core.schema import ROW_COLUMNS

OBJ = {"top1": "max", "latency_ms_p50": "min"}
IV = {"latency_ms_p50": ("err_lo", "err_hi")}
LAT_PAIRED = {"latency_ms_p50": PAIRED["latency_ms_p50"]}

# the machine drifts by 30% over the run; every cell's round medians follow it, so the raw intervals are wide
DRIFT = [1.0, 1.1, 1.3, 1.2, 1.05, 1.0]
RATIOS = {"lsnet_t": (1.0, 1.0, 1.0), "starnet_s2": (1.04, 1.03, 1.05), "fastvit_t8": (1.01, 0.99, 1.03),
          "repvit_m0_9": (0.8, 0.79, 0.81), "lsnet_t_mixer_attn": (1.10, 1.08, 1.12)}
ENGINES = {"eager": 10.0, "onnxruntime": 6.0}
T0 = 1_700_000_000.0


def _row(**kw) -> dict:
    r = {c: None for c in ROW_COLUMNS}
    r.update(run_id="ilv", host="bench-host", device="cpu", device_name="Bench CPU", threads=4, resolution=224,
             status="ok", compile=False, fused=True, channels_last=False, dtype="float32", batch_size=1, extra={})
    r.update(kw)
    return r


def _rows(run_id: str = "ilv", paired: bool = True) -> list[dict]:
    rows = []
    for e, (engine, base) in enumerate(ENGINES.items()):
        for i, (model, (r, lo, hi)) in enumerate(RATIOS.items()):
            med = [base * r * d for d in DRIFT]
            starts = [T0 + 30 * e + 60 * k + 2 * i for k in range(len(DRIFT))]
            pair = dict(protocol="interleaved", ref_model="lsnet_t", ratio_to_ref=r, ratio_ci_low=lo,
                        ratio_ci_high=hi) if paired else dict(protocol="sequential")
            extra = {"round_medians_ms": med, "round_starts_unix_s": starts, "n_rounds": len(med)} if paired else {}
            ident = dict(run_id=run_id, model=model, engine=engine, params_m=5.0, **pair)
            rows.append(_row(suite="latency", latency_ms_p50=statistics.median(med), latency_ms_p90=max(med),
                             latency_ms_ci_low=min(med), latency_ms_ci_high=max(med), stable=True, extra=extra,
                             **ident))
            rows.append(_row(suite="throughput", batch_size=8, throughput_img_s=8000 / (base * r * 1.1), stable=True,
                             extra={**extra, "round_medians_ms": [8 * m for m in med]} if paired else {}, **ident))
    return rows


def _folder(d: Path, rows: list[dict]) -> Path:
    d.mkdir(parents=True)
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {"host": "bench-host", "argv": ["lsnet-bench", "--protocol", "interleaved"]}
    (d / "env.json").write_text(json.dumps(env))
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """The same cells measured interleaved (paired ratios, round medians) and sequentially (neither)."""
    base = tmp_path_factory.mktemp("paired")
    out = {}
    for name, paired in (("interleaved", True), ("sequential", False)):
        d = _folder(base / name, _rows(run_id=name, paired=paired))
        out[name] = (d, reports.render(d).read_text())
    return out


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end)]


# --- Pareto fronts -------------------------------------------------------------------------------------


def _pair_rows(**cols) -> pd.DataFrame:
    base = {"suite": "latency", "engine": "eager", "device": "cpu", "dtype": "float32", "batch_size": 1,
            "run_id": "r1", "ref_model": "lsnet_t", "top1": 75.0}
    df = pd.DataFrame([{**base, **{k: v[i] for k, v in cols.items()}} for i in range(len(next(iter(cols.values()))))])
    return df.assign(pair_group=pair_group(df))


def test_paired_ratio_intervals_order_points_whose_raw_intervals_overlap():
    df = _pair_rows(latency_ms_p50=[10.0, 10.3], err_lo=[9.5, 9.7], err_hi=[10.8, 11.0],
                    ratio_ci_low=[1.0, 1.02], ratio_ci_high=[1.0, 1.04])
    assert pareto_mask(df, OBJ, IV).tolist() == [True, True]                # raw intervals overlap: not ordered
    assert pareto_mask(df, OBJ, IV, LAT_PAIRED).tolist() == [True, False]   # paired: 1.0 < 1.02, one dominates
    # another run (or a row without a ratio) is not in the same pairing group: the raw rule again
    other = df.assign(run_id=["r1", "r2"])
    assert pareto_mask(other.assign(pair_group=pair_group(other)), OBJ, IV, LAT_PAIRED).tolist() == [True, True]
    one = df.assign(ratio_ci_low=[1.0, np.nan])
    assert pareto_mask(one.assign(pair_group=pair_group(one)), OBJ, IV, LAT_PAIRED).tolist() == [True, True]


def test_a_ratio_interval_that_includes_one_orders_nothing():
    df = _pair_rows(latency_ms_p50=[10.0, 10.5], err_lo=[9.9, 10.4], err_hi=[10.1, 10.6],
                    ratio_ci_low=[1.0, 0.98], ratio_ci_high=[1.0, 1.03])
    assert pareto_mask(df, OBJ, IV).tolist() == [True, False]               # raw intervals are apart
    assert pareto_mask(df, OBJ, IV, LAT_PAIRED).tolist() == [True, True]    # the ratio's interval includes 1
    # touching intervals do not order either (A dominates B only when A's high end is below B's low end)
    touch = df.assign(ratio_ci_low=[1.0, 1.0], ratio_ci_high=[1.0, 1.1])
    assert pareto_mask(touch, {"latency_ms_p50": "min"}, IV, LAT_PAIRED).tolist() == [True, True]


def test_paired_throughput_objective_uses_the_time_ratio():
    # throughput is maximised; the ratio is a time ratio, lower is better for both objectives
    df = _pair_rows(throughput_img_s=[100.0, 98.0], ratio_ci_low=[1.0, 1.01], ratio_ci_high=[1.0, 1.03])
    df = df.rename(columns={"pair_group": "thr_pair_group", "ratio_ci_low": "thr_ratio_ci_low",
                            "ratio_ci_high": "thr_ratio_ci_high"})
    df = df.assign(thr_lo=[90.0, 88.0], thr_hi=[110.0, 108.0])
    obj, iv = {"top1": "max", "throughput_img_s": "max"}, {"throughput_img_s": ("thr_lo", "thr_hi")}
    assert pareto_mask(df, obj, iv).tolist() == [True, True]
    assert pareto_mask(df, obj, iv, PAIRED).tolist() == [True, False]
    # without ratio columns in the table, ``paired`` changes nothing
    plain = df.drop(columns=["thr_pair_group", "thr_ratio_ci_low", "thr_ratio_ci_high"])
    assert pareto_mask(plain, obj, iv, PAIRED).tolist() == pareto_mask(plain, obj, iv).tolist()


def test_pair_group_needs_the_same_suite_engine_device_dtype_batch_run_and_reference():
    df = _pair_rows(ratio_ci_low=[1.0] * 8, ratio_ci_high=[1.0] * 8,
                    suite=["latency", "throughput"] + ["latency"] * 6,
                    engine=["eager"] * 2 + ["onnxruntime"] + ["eager"] * 5,
                    batch_size=[1] * 3 + [8] + [1] * 4, dtype=["float32"] * 4 + ["bfloat16"] + ["float32"] * 3,
                    run_id=["r1"] * 5 + ["r2"] + ["r1"] * 2, ref_model=["lsnet_t"] * 6 + ["repvit_m0_9", "lsnet_t"])
    g = pair_group(df)
    assert g.iloc[:7].nunique() == 7 and g.iloc[7] == g.iloc[0]
    assert pair_group(df.assign(ratio_ci_high=np.nan)).isna().all()


def test_report_fronts_use_the_paired_ratios(runs):
    # starnet_s2: less accurate than lsnet_t and slower by its paired ratio [1.03, 1.05], though the raw
    # latency intervals (which carry the run's drift) overlap
    fronts = {}
    for name, (d, _) in runs.items():
        members = Report([load_run(d)]).front_members()
        fronts[name] = {m for (c, m) in members if c.startswith("PyTorch eager")}
    assert "starnet_s2" not in fronts["interleaved"] and "starnet_s2" in fronts["sequential"]
    assert {"lsnet_t", "fastvit_t8"} <= fronts["interleaved"]   # fastvit_t8: ratio [0.99, 1.03], not ordered


# --- speed-up columns --------------------------------------------------------------------------------


def test_relative_uses_the_paired_ratio_and_marks_the_fallback_unpaired():
    perf = pd.DataFrame([
        {"config": "c", "model": "lsnet_t", "latency_ms_p50": 10.0, "err_lo": 9.0, "err_hi": 13.0, "spread_kind": "CI",
         "throughput_img_s": 100.0, "ratio_to_ref": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0,
         "ref_model": "lsnet_t"},
        {"config": "c", "model": "a", "latency_ms_p50": 8.0, "err_lo": 7.5, "err_hi": 10.5, "spread_kind": "CI",
         "throughput_img_s": 125.0, "ratio_to_ref": 0.8, "ratio_ci_low": 0.79, "ratio_ci_high": 0.81,
         "ref_model": "lsnet_t"},
        {"config": "c", "model": "b", "latency_ms_p50": 8.0, "err_lo": 7.5, "err_hi": 10.5, "spread_kind": "CI",
         "throughput_img_s": 125.0},
        {"config": "c", "model": "c", "latency_ms_p50": 5.0, "err_lo": 4.9, "err_hi": 5.1, "spread_kind": "CI"},
        {"config": "c", "model": "d", "latency_ms_p50": 8.0, "err_lo": 8.0, "err_hi": 9.0, "spread_kind": "p50..p90"},
        {"config": "c", "model": "e", "latency_ms_p50": 8.0, "ratio_to_ref": 0.8, "ratio_ci_low": 0.79,
         "ratio_ci_high": 0.81, "ref_model": "repvit_m0_9"}])   # a ratio against another reference
    rel = tables.relative(perf, "lsnet_t").set_index(perf["model"])
    assert rel.loc["a", "speedup"] == pytest.approx(1.25) and rel.loc["a", "speedup_paired"]
    assert (rel.loc["a", "speedup_lo"], rel.loc["a", "speedup_hi"]) == pytest.approx((1 / 0.81, 1 / 0.79))
    assert rel.loc["b", "speedup"] == pytest.approx(1.25) and not rel.loc["b", "speedup_paired"]
    assert (rel.loc["b", "speedup_lo"], rel.loc["b", "speedup_hi"]) == pytest.approx((9.0 / 10.5, 13.0 / 7.5))
    assert not rel.loc["e", "speedup_paired"] and rel.loc["e", "speedup"] == pytest.approx(1.25)
    text = {m: tables.speedup_text(*rel.loc[m]) for m in rel.index}
    assert text["lsnet_t"] == "1.00× [1.00, 1.00]"
    assert text["a"] == "1.25× [1.23, 1.27] faster"
    assert text["b"] == "1.25× [0.86, 1.73] (unpaired)"           # its interval includes 1: no call
    assert text["c"] == "2.00× [1.76, 2.65] faster (unpaired)"
    assert text["d"] == "1.25× (unpaired)"                        # p50..p90 is no interval of the median
    assert tables.speedup_text(0.9, 0.85, 0.95, True) == "0.90× [0.85, 0.95] slower"


def test_summary_shows_paired_speedups_with_intervals(runs):
    paired = _section(runs["interleaved"][1], 'id="summary"', 'id="pareto"')
    seq = _section(runs["sequential"][1], 'id="summary"', 'id="pareto"')
    assert "1.25× [1.23, 1.27] faster" in paired and "0.96× [0.95, 0.97] slower" in paired
    assert re.search(r"0\.99× \[0\.97, 1\.01\]<", paired)       # fastvit_t8: no call, not unpaired
    assert "(unpaired)</td>" not in paired
    # the same medians, sequentially: the raw intervals carry the drift and do not exclude 1
    assert "1.25× [0.96, 1.62] (unpaired)</td>" in seq
    assert not re.search(r"(faster|slower)( \(unpaired\))?</td>", seq)


def test_ablation_and_engine_tables_show_ratios_with_intervals(runs):
    d, text = runs["interleaved"]
    df = combine([load_run(d)])
    ab = tables.ablations(tables.performance(df), tables.accuracy(df)).set_index("model")
    row = ab.loc[ab.index.str.startswith("lsnet_t_mixer_attn")].iloc[0]
    assert row["speedup_vs_base"] == pytest.approx(1 / 1.10) and row["speedup_vs_base_paired"]
    assert (row["speedup_vs_base_lo"], row["speedup_vs_base_hi"]) == pytest.approx((1 / 1.12, 1 / 1.08))
    assert "0.91× [0.89, 0.93] slower" in _section(text, 'id="ablations"', 'id="operators"')
    sp = engine_speedups(df)
    r = sp[(sp["model"] == "repvit_m0_9") & (sp["engine"] == "onnxruntime")].iloc[0]
    assert (r["ratio_to_ref"], r["ratio_ci_low"], r["ratio_ci_high"], r["ref_model"]) == (0.8, 0.79, 0.81, "lsnet_t")
    ranks = engine_rankings(sp).set_index("model")
    assert ranks.loc["repvit_m0_9", "× vs lsnet_t · eager"] == "1.25× [1.23, 1.27] faster"
    assert ranks.loc["fastvit_t8", "× vs lsnet_t · onnxruntime"] == "0.99× [0.97, 1.01]"
    engines = _section(text, 'id="engines"', 'id="ablations"')
    assert "× vs lsnet_t (paired)" in engines and "× vs lsnet_t · onnxruntime" in engines
    assert "0.96× [0.95, 0.97] slower" in engines
    # sequential rows carry no ratio: no ratio columns
    seq = engine_rankings(engine_speedups(combine([load_run(runs["sequential"][0])])))
    assert not any(c.startswith("× vs") for c in seq.columns)
    assert "(paired)" not in _section(runs["sequential"][1], 'id="engines"', 'id="ablations"')


# --- machine drift -----------------------------------------------------------------------------------


def test_drift_rounds_of_the_reference_rows(tmp_path):
    df = combine([load_run(_folder(tmp_path / "i", _rows()))])
    rounds = drift.reference_rounds(df)
    assert set(rounds["group"]) == {f"{s} · {e} · float32 · bs{b}" for s, b in (("latency", 1), ("throughput", 8))
                                    for e in ENGINES}
    lat = rounds[rounds["group"] == "latency · onnxruntime · float32 · bs1"]
    assert lat["t_s"].tolist() == [30.0 + 60 * k for k in range(len(DRIFT))]   # since the run's first round
    assert lat["ms"].tolist() == pytest.approx([6.0 * d for d in DRIFT])
    sp = drift.spread(rounds).set_index("group").loc["latency · eager · float32 · bs1"]
    ms = np.array(DRIFT) * 10
    assert sp["max_over_min"] == pytest.approx(1.3)
    assert sp["p90_over_p10"] == pytest.approx(np.percentile(ms, 90) / np.percentile(ms, 10))
    assert drift.reference_rounds(combine([load_run(_folder(tmp_path / "s", _rows(paired=False)))])).empty


def test_drift_plot_in_the_report_only_with_reference_round_medians(runs):
    text = runs["interleaved"][1]
    sec = _section(text, 'id="drift"', 'id="engines"')
    assert "Machine drift" in sec and "<svg" in sec and 'href="#drift"' in text
    assert "1.300× (max/min)" in sec and "cancels" in sec and "time since the run's first round (s)" in sec
    assert "latency · eager · float32 · bs1 · round 3" in sec   # hover text of a point
    # each round's marker carries its own title (one scatter per group, a <title> inside each <use>)
    marks = re.findall(r'<use class="pt"[^>]*><title>latency · eager · float32 · bs1 · round (\d+)\n', sec)
    assert marks == [str(k + 1) for k in range(len(DRIFT))]
    seq = runs["sequential"][1]
    assert 'id="drift"' not in seq and 'href="#drift"' not in seq


# --- compare -----------------------------------------------------------------------------------------


def test_compare_within_one_run_uses_the_paired_ratios(runs, capsys):
    d = runs["interleaved"][0]
    assert cli(["compare", str(d), "--models", "lsnet_t,starnet_s2"]) == 0
    out = capsys.readouterr().out
    assert CROSS_RUN not in out
    assert "eager float32 bs1: 1.040x [1.030, 1.050]  B slower  (paired rounds)" in out
    # the same rows without ratios: the latency intervals (with the drift) overlap, no difference called
    seq = runs["sequential"][0]
    assert cli(["compare", str(seq), "--models", "lsnet_t,starnet_s2"]) == 0
    out = capsys.readouterr().out
    assert "no difference shown" in out and "paired rounds" not in out


def test_compare_across_runs_says_there_are_no_paired_rounds(runs, capsys):
    a, b = runs["interleaved"][0], runs["sequential"][0]
    assert cli(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == CROSS_RUN == ("runs A and B were measured in different runs: no paired rounds; the interval uses "
                                   "the spread between runs")
    assert not any("paired rounds)" in ln for ln in out[1:])
    assert cli(["compare", str(a), str(a)]) == 0
    assert CROSS_RUN not in capsys.readouterr().out


def test_compare_pairs_only_rows_of_one_run_and_one_reference():
    ra, rb = (pd.DataFrame(_rows(run_id=r)) for r in ("x", "y"))
    star = lambda df: df[df["model"] == "starnet_s2"].assign(model="*")   # noqa: E731
    ref = lambda df: df[df["model"] == "lsnet_t"].assign(model="*")       # noqa: E731
    same = compare(ref(ra), star(ra)).iloc[0]
    assert same["basis"] == "paired" and (same["ratio"], same["low"], same["high"]) == pytest.approx((1.04, 1.03, 1.05))
    assert same["verdict"] == "B slower"
    cross = compare(ref(ra), star(rb)).iloc[0]   # another run: the rows' latency intervals
    assert cross["basis"] == "latency intervals" and cross["low"] < 1 < cross["high"]
    assert cross["verdict"].startswith("no difference")
    other_ref = star(ra).assign(ref_model="repvit_m0_9")
    assert compare(ref(ra), other_ref).iloc[0]["basis"] == "latency intervals"
    # neither is the reference: the quotient of the two ratios, interval from both
    rep = compare(ra[ra["model"] == "repvit_m0_9"].assign(model="*"), star(ra)).iloc[0]
    assert (rep["ratio"], rep["low"], rep["high"]) == pytest.approx((1.04 / 0.8, 1.03 / 0.81, 1.05 / 0.79))
