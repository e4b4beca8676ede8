"""The report shows every measured configuration: batch sizes, engines, layouts and dtypes, the trust
columns (CI, stable, warnings), fair accuracy marks, engines, training, the ops roofline and operators."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import reports
from reports import style, tables
from reports.engine_tables import best_engine, engine_rankings, engine_speedups
from reports.load import combine, load_run
from reports.operators import conv_paths
from reports.report import Report
from reports.training import train_vs_inference
from suites.core import published
from suites.core.schema import ROW_COLUMNS
from suites.cli.console import summary_table

MODELS = {"lsnet_t": ("lsnet", 10.0), "repvit_m0_9": ("repvit", 8.0), "fastvit_t8": ("fastvit", 12.0),
          "lsnet_t_mixer_attn": ("mixer", 11.0)}
CONFIGS = [  # (engine, dtype, channels_last, speed factor)
    ("eager", "float32", False, 1.0), ("compile", "float32", False, 0.8), ("eager", "bfloat16", True, 0.7)]
BATCHES = (1, 8, 32)
FAIL = "CUDA out of memory (synthetic)"


def _row(**kw) -> dict:
    r = {c: None for c in ROW_COLUMNS}
    r.update(run_id="synth", host="bench-host", device="cpu", device_name="Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
             threads=2, resolution=224, status="ok", compile=False, fused=True, extra={})
    r.update(kw)
    return r


def _rows() -> list[dict]:
    rows = []
    for model, (fam, lat) in MODELS.items():
        for engine, dtype, cl, f in CONFIGS:
            ident = dict(model=model, family=fam, engine=engine, dtype=dtype, channels_last=cl,
                         compile=engine == "compile")
            for bs in BATCHES:
                p50 = lat * f * bs ** 0.8
                unstable = model == "repvit_m0_9" and bs == 8
                rows.append(_row(suite="latency", batch_size=bs, latency_ms_p50=p50, latency_ms_p90=p50 * 1.1,
                                 latency_ms_ci_low=p50 * 0.98, latency_ms_ci_high=p50 * 1.03, stable=not unstable,
                                 warnings="stall detected; spread 40%" if unstable else None,
                                 parity_rel=None if engine == "eager" else 2e-6, params_m=5.0, **ident))
                rows.append(_row(suite="throughput", batch_size=bs, throughput_img_s=1000 * bs / p50, stable=True,
                                 **ident))
                rows.append(_row(suite="memory", batch_size=bs, peak_mem_mb=50.0 + bs, **ident))
            if dtype == "float32" and engine == "eager":
                for bs in (8, 32):
                    rows.append(_row(suite="train", batch_size=bs, latency_ms_p50=3 * lat * bs ** 0.8,
                                     throughput_img_s=1000 * bs / (3 * lat * bs ** 0.8), peak_mem_mb=200.0 + bs,
                                     **ident))
                rows.append(_row(suite="profile", batch_size=1, **ident, extra={
                    "kinds": {"conv": {"share": 0.7}, "other": {"share": 0.3}},
                    "top_ops": [{"op": "aten::_slow_conv2d_forward" if model == "lsnet_t" else "aten::mkldnn_convolution",
                                 "kind": "conv", "calls": 10, "self_time_us": 700.0, "share": 0.7,
                                 "input_shapes": [[1, 64, 56, 56]]},
                                {"op": "aten::add", "kind": "elementwise", "calls": 5, "self_time_us": 300.0,
                                 "share": 0.3}]}))
        rows.append(_row(suite="flops", model=model, family=fam, batch_size=1, gmacs=0.3, params_m=5.0))
    for model in ("shvit_s1", "fasternet_t0", "starnet_s2"):
        rows.append(_row(suite="latency", model=model, batch_size=64, engine="eager", dtype="float32",
                         status="oom", error=FAIL))
    for backend, ms in (("official", 2.0), ("triton", 1.0)):
        rows.append(_row(suite="ops", model="lsnet_t", family="lsnet", engine="eager", dtype="float32", batch_size=8,
                         latency_ms_p50=ms, latency_ms_ci_low=ms * 0.9, latency_ms_ci_high=ms * 1.1, gbps=10 / ms,
                         pct_copy_bw=50 / ms, bytes_moved=1e7, extra={"shape": "stage1", "backend": backend,
                                                                      "mode": "fwd"}))
    return rows


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("synth")
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (d / "env.json").write_text(json.dumps({"host": "bench-host", "argv": ["lsnet-bench", "--suite", "latency"]}))
    return d, reports.render(d).read_text()


def _titles(text: str) -> list[str]:
    return re.findall(r"<title>(.*?)</title>", text, flags=re.S)


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end)]


def test_every_batch_size_engine_and_configuration_is_shown(synth):
    d, text = synth
    df = combine([load_run(d)])
    lat = df[(df["suite"] == "latency") & (df["status"] == "ok")]
    assert lat["config"].nunique() == len(CONFIGS)
    batch = _section(text, 'id="batch"', 'id="engines"')
    for fig in ("Latency p50 vs batch size", "Throughput vs batch size", "Peak memory vs batch size"):
        assert fig in batch, fig
    tips = _titles(batch)
    for cfg in lat["config"].unique():   # a panel per configuration, titled in words, and a summary table
        assert cfg in batch and f"<h3>{cfg}</h3>" in text, cfg
    for (model, bs), _ in lat.groupby(["model", "batch_size"]):   # latency above the smallest batch is not dropped
        assert sum(t.startswith(f"{model} · batch {int(bs)}\nlatency") for t in tips) == len(CONFIGS), (model, bs)
    assert "PyTorch eager · Intel Xeon Gold 6230 (2 threads) · float32 · NCHW" in text
    assert "torch.compile · Intel Xeon Gold 6230 (2 threads) · float32 · NCHW" in text
    assert "PyTorch eager · Intel Xeon Gold 6230 (2 threads) · bfloat16 · NHWC (channels_last)" in text


def test_uncertainty_and_trust_columns(synth):
    _, text = synth
    summary = _section(text, 'id="summary"', 'id="pareto"')
    assert "CI]" in summary and "(unstable)" in summary
    assert "stall detected; spread 40%" in _section(text, "Unstable timings", 'id="pareto"')
    # latency tips carry the interval; unstable rows are flagged in the hover text
    assert any("UNSTABLE: stall detected" in t for t in _titles(text))
    assert any(re.search(r"latency p50 \(ms\): [\d.]+ \[[\d.]+ \.\. [\d.]+\]", t) for t in _titles(text))


def test_fair_accuracy_marks(synth):
    d, text = synth
    assert published.lookup("repvit_m0_9").distilled and not published.lookup("lsnet_t").distilled
    acc = tables.accuracy(combine([load_run(d)])).set_index("model")
    assert acc.loc["fastvit_t8", "eval_px"] == 256 and not acc.loc["fastvit_t8", "distilled"]
    key = _section(text, "Top-1 source: <code>published", 'id="batch"')
    assert "†256px" in key and "(d)" in key and "lsnet_t_mixer_attn" not in key
    summary = _section(text, 'id="summary"', 'id="pareto"')
    assert "†256px" in summary and "× vs lsnet_t" in summary and 'class="lsnet' in summary and "★" in summary
    assert "lsnet_t_mixer_attn" in _section(text, 'id="ablations"', 'id="operators"')


def test_engines_training_ops_operators_failures(synth):
    d, text = synth
    df = combine([load_run(d)])
    sp = engine_speedups(df)
    c = sp[(sp["engine"] == "compile") & (sp["model"] == "lsnet_t") & (sp["batch_size"] == 1)].iloc[0]
    assert c["speedup_vs_eager"] == pytest.approx(1.25) and c["parity_rel"] == pytest.approx(2e-6)
    best = best_engine(sp)
    assert set(best.loc[best["setting"].str.contains("float32"), "engine"]) == {"compile"}
    assert set(best.loc[best["setting"].str.contains("bfloat16"), "engine"]) == {"eager"}  # the only one there
    engines = _section(text, 'id="engines"', 'id="ablations"')
    assert "1.25×" in engines and "2.0e-06" in engines and "rank shift" in engines
    tvi = train_vs_inference(df)
    assert set(tvi["batch_size"]) == {8, 32} and tvi["cost_ratio"].tolist() == pytest.approx([3.0] * len(tvi))
    assert "Training throughput vs batch size" in text and "Training peak memory vs batch size" in text
    ops = _section(text, 'id="ops"', 'id="accuracy"')
    assert "stage1" in ops and "2.00×" in ops and "triton" in ops
    paths = conv_paths(df).set_index("model")["path"]
    assert paths["lsnet_t"] == "slow" and paths["repvit_m0_9"] == "fast"
    operators = _section(text, 'id="operators"', 'id="training"')
    assert "aten::_slow_conv2d_forward" in operators and "[[1, 64, 56, 56]]" in operators
    fails = _section(text, 'id="failures"', 'id="environment"')
    assert fails.count(FAIL) == 1 and "fasternet_t0, shvit_s1, starnet_s2" in fails


def test_console_summary_merges_suites_and_footnotes_reasons():
    rows = _rows()
    text = summary_table(rows)
    lines = text.splitlines()
    lsnet = [ln for ln in lines if re.match(r"lsnet_t +infer ", ln)]
    # one line per model and configuration, suites merged; spread shown
    assert len(lsnet) == len(CONFIGS) * len(BATCHES)
    assert all("±" in ln or "[" in ln for ln in lsnet)
    assert len([ln for ln in lines if re.match(r"lsnet_t +train ", ln)]) == 2
    assert len([ln for ln in lines if re.match(r"lsnet_t +ops ", ln)]) == 2
    assert text.count(FAIL) == 1 and re.search(r"\[1\].*" + re.escape(FAIL), text)


def test_engine_rankings_show_how_the_engine_reorders_models():
    sp = pd.DataFrame([{"setting": "cpu · float32", "batch_size": 1, "model": m, "engine": e, "latency_ms_p50": t}
                       for m, e, t in [("a", "eager", 10.0), ("b", "eager", 12.0), ("c", "eager", 30.0),
                                       ("a", "onnxruntime", 4.0), ("b", "onnxruntime", 2.0), ("c", "onnxruntime", 9.0)]])
    r = engine_rankings(sp).set_index("model")
    assert list(r.index) == ["a", "b", "c"]                         # in eager's order
    assert r.loc["a", "rank · eager"] == 1 and r.loc["a", "rank · onnxruntime"] == 2
    assert r.loc["b", "rank · onnxruntime"] == 1 and r.loc["b", "rank shift"] == 1
    assert r.loc["c", "rank shift"] == 0 and r.loc["b", "p50 ms · onnxruntime"] == 2.0
    assert engine_rankings(sp.iloc[:0]).empty


def test_families_missing_from_the_table_get_distinct_colours_in_sorted_order(tmp_path):
    assert len(set(style.UNLISTED_COLORS)) == len(style.UNLISTED_COLORS)
    assert set(style.UNLISTED_COLORS).isdisjoint(style.FAMILY_COLORS.values())
    colors = style.family_colors(["zeta", "lsnet", "efficientformerv2", "alpha", "zeta"])
    assert {f: colors[f] for f in style.FAMILY_COLORS} == style.FAMILY_COLORS   # listed families keep theirs
    assert [colors[f] for f in ("alpha", "efficientformerv2", "zeta")] == list(style.UNLISTED_COLORS[:3])
    assert style.family_colors(["efficientformerv2", "zeta", "alpha"]) == colors   # the rows' order does not matter
    # the report takes the families from the rows: two unlisted ones are told apart in its figures
    rows = [_row(suite="latency", model=m, family=f, batch_size=bs, latency_ms_p50=p50 * bs, latency_ms_p90=p50 * bs,
                 engine="eager", dtype="float32", channels_last=False, stable=True)
            for m, f, p50 in (("lsnet_t", "lsnet", 10.0), ("efficientformerv2_s0", "efficientformerv2", 9.0),
                              ("newnet_a", "newnet", 8.0)) for bs in (1, 8)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = Report([load_run(tmp_path)])
    new = (report.colors["efficientformerv2"], report.colors["newnet"])
    assert new == style.UNLISTED_COLORS[:2] and report.colors["lsnet"] == style.FAMILY_COLORS["lsnet"]
    text = reports.render(tmp_path).read_text()
    assert all(f"fill: {c}" in text for c in new)


def test_one_batch_size_draws_no_batch_panel_and_reasons_group_by_model(tmp_path):
    """A run at batch 1 only has no "vs batch size" figure; skip reasons that differ only in the model are
    one failures row listing the models."""
    rows = [_row(suite="latency", model=m, family=f, engine="eager", dtype="float32", batch_size=1,
                 latency_ms_p50=lat, stable=True) for m, (f, lat) in MODELS.items()]
    rows += [_row(suite="accuracy", model=m, family="mixer", engine="eager", dtype="float32", batch_size=64,
                  status="skipped", error=f"no published ImageNet top-1 for {m!r} (models with one: lsnet_t)")
             for m in ("lsnet_t_mixer_attn", "lsnet_t_mixer_dwconv3")]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = Path(reports.render(tmp_path)).read_text()
    assert "Latency p50 vs batch size" not in text
    fails = tables.failures(combine([load_run(tmp_path)]))
    assert len(fails) == 1 and fails["count"][0] == 2
    assert fails["error"][0] == "no published ImageNet top-1 for '<model>' (models with one: lsnet_t)"
    assert fails["models"][0] == "lsnet_t_mixer_attn, lsnet_t_mixer_dwconv3"


def test_points_of_one_scatter_each_get_their_title_or_the_group_gets_them_all():
    import matplotlib.pyplot as plt
    from reports.plots import Titles, _title_each_use, to_svg
    fig, ax = plt.subplots()
    titles = Titles()
    titles.tag_each(ax.scatter([1, 2, 3], [3, 1, 2]), ["a<1", "b", "c"])
    svg = to_svg(fig, titles)
    assert re.findall(r'<use class="pt"[^>]*><title>(.*?)</title></use>', svg) == ["a&lt;1", "b", "c"]
    inline = '<svg><g id="g1"><path d="M 0 0"/></g><g id="g2"><use x="1"/></g></svg>'   # drawn without <use>
    assert _title_each_use(inline, "g1", ["x", "y"]) == (
        '<svg><g id="g1" class="pt"><title>x\ny</title><path d="M 0 0"/></g><g id="g2"><use x="1"/></g></svg>')
    with pytest.raises(ValueError, match="2 hover texts for a scatter of 3 points"):
        Titles().tag_each(plt.subplots()[1].scatter([1, 2, 3], [1, 2, 3]), ["a", "b"])
    plt.close("all")
