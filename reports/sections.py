"""The data of each section of the report, one function per section (``templates/report.html.j2`` lays
them out): tables as escaped HTML, figures as inline SVG, None for a section without rows."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
from markupsafe import Markup

from reports import drift as drift_rows
from reports import plots, tables
from reports.engine_tables import best_engine, engine_rankings, engine_speedups
from reports.fronts import front_models
from reports.htmltable import html_table
from reports.labels import accuracy_marks, evaluated_elsewhere, latency_text, point_tip, speedup
from reports.load import Run
from reports.operators import conv_paths, top_ops
from reports.report import Report
from reports.roofline import roofline as roofline_rows
from reports.style import family_of, is_ablation
from reports.training import train_rows, train_vs_inference

DEVICE_FREE_SUITES = ("accuracy", "flops")   # their numbers do not depend on the configuration
X_METRICS = ("latency_ms_p50", "throughput_img_s", "peak_mem_mb")


class Figure(NamedTuple):
    title: str
    svg: Markup


class ParetoSource(NamedTuple):
    """One top-1 source's Pareto figures and the key of their numbered points."""
    source: str
    figs: list[Figure]
    key: Markup


@dataclass(frozen=True)
class Header:
    hosts: list[str]
    configs: list[str]
    partial: list[str]


@dataclass(frozen=True)
class Summary:
    reference: str
    tables: list[tuple[str, Markup]]
    unstable: Markup | None


@dataclass(frozen=True)
class Drift:
    fig: Markup
    caption: str
    table: Markup


@dataclass(frozen=True)
class Engines:
    best: Markup
    ranks: Markup
    all: Markup


@dataclass(frozen=True)
class Ablations:
    table: Markup
    fig: Markup | None


@dataclass(frozen=True)
class Operators:
    fig: Markup | None
    conv_paths: Markup | None
    top_ops: Markup | None


@dataclass(frozen=True)
class Training:
    figs: list[Figure]
    table: Markup


@dataclass(frozen=True)
class RunEntry:
    label: str
    path: str
    command: str | None
    env_table: Markup


def run_label(run: Run) -> str:
    """``host (run id)``: how the report names a results folder."""
    host = run.rows["host"].dropna().unique() if len(run.rows) else []
    return f"{', '.join(map(str, host)) or 'unknown host'} (run {run.run_id})"


def header(report: Report) -> Header:
    """The hosts, the configurations measured (every task's) and why any folder is partial."""
    df = report.all_df
    return Header(hosts=sorted(set(df["host"].dropna())),
                  configs=sorted(set(df.loc[~df["suite"].isin(DEVICE_FREE_SUITES), "config"].dropna())),
                  partial=[f"{run_label(r)}: {why}" for r in report.runs if (why := r.partial)])


def _summary_row_class(r: pd.Series) -> str:
    return (("lsnet " if family_of(r["model"], r.get("family")) == "lsnet" else "")
            + ("unstable" if r.get("stable") is False else ""))


def summary(report: Report) -> Summary:
    """A table per configuration (every top-1 source, the costs, the speed-up over the reference, the
    default front) and the unstable timings."""
    summ = tables.summary(report.df, report.acc)
    summ = pd.concat([summ, tables.relative(summ, report.reference)], axis=1) if "latency_ms_p50" in summ \
        else summ.assign(speedup=float("nan"))
    front = report.front_members()
    summ["front"] = [("★ (d)" if front[(c, m)] else "★") if (c, m) in front else ""
                     for c, m in zip(summ["config"], summ["model"])]
    summ["#"] = summ["model"].map(report.numbers)
    top_cols = sorted(c for c in summ.columns if c.startswith("top1 ["))
    acc = report.acc.set_index(["model", "top1_source"])

    def top(col: str):
        src = col[len("top1 ["):-1]

        def text(r: pd.Series) -> str:
            v = r[col]
            if v != v or v is None:
                return "—"
            a = acc.loc[(r["model"], src)] if (r["model"], src) in acc.index else pd.Series(dtype=object)
            resolution = None if src.startswith("proxy") else report.resolution.get(r["model"])
            return f"{v:.2f}" + accuracy_marks(a, resolution)
        return text
    cols = ["#", "model", "family", "params_m", "gmacs", *top_cols, "latency_ms_p50", "speedup", "throughput_img_s",
            "peak_mem_mb", "energy_j_per_img", "parity_rel", "front"]
    batch_of = {"latency_ms_p50": "latency_ms_p50_batch", "throughput_img_s": "throughput_img_s_batch",
                "peak_mem_mb": "peak_mem_mb_batch", "energy_j_per_img": "energy_j_per_img_batch"}
    heads = {"speedup": f"× vs {report.reference}", "front": "Pareto", "#": "#"}
    render = {c: top(c) for c in top_cols} | {"latency_ms_p50": latency_text, "speedup": speedup("speedup")}
    out = []
    for cfg, g in summ.groupby("config", sort=True):
        g = g.sort_values(["model"], kind="stable").astype(object)
        keep = [c for c in cols if c in g.columns and (c in ("model", "#") or g[c].notna().any())]
        out.append((cfg, html_table(g, keep, batch_of, render, _summary_row_class, heads)))
    unstable = report.perf[report.perf["stable"] == False]  # noqa: E712
    return Summary(report.reference, out,
                   html_table(unstable.astype(object), ["config", "model", "warnings"]) if len(unstable) else None)


def _pareto_points(report: Report, d: pd.DataFrame) -> pd.DataFrame:
    """``d`` with what a Pareto figure draws besides the values: ``eval_mismatch`` (†), the hover ``tip``
    and ``stable`` (None where unknown)."""
    d = d.copy()
    d["eval_mismatch"] = [evaluated_elsewhere(px, r) and not str(s).startswith("proxy")
                          for px, r, s in zip(d["eval_px"], d["model"].map(report.resolution), d["top1_source"])]
    d["tip"] = [point_tip(r, report.commands) for _, r in d.iterrows()]
    if "stable" not in d:
        d["stable"] = None
    return d


def _pareto_key(report: Report, source: str, a: pd.DataFrame, fronts: dict[str, set[str]]) -> Markup:
    """The key of the numbered points: number, model (`` *``: on a latency front), top-1, distilled,
    evaluation resolution and the costs on whose fronts the model is."""
    key = a.assign(**{"#": a["model"].map(report.numbers)}).sort_values("#")
    models = a["model"].reindex(key.index)
    on_lat = fronts.get("latency_ms_p50", set())
    key["model"] = [m + (" *" if m in on_lat else "") for m in key["model"]]
    key["fronts"] = [", ".join(plots.PARETO_X[x].split(" (")[0] for x, s in fronts.items() if mo in s)
                     for mo in models]
    key["eval_note"] = [accuracy_marks(r, None if source.startswith("proxy") else report.resolution.get(mo)).strip()
                        for (_, r), mo in zip(key.iterrows(), models)]
    return html_table(key.astype(object), ["#", "model", "top1", "distilled", "eval_px", "eval_note", "fronts"],
                      headers={"fronts": "Pareto-optimal in", "eval_note": "note"})


def pareto(report: Report) -> list[ParetoSource]:
    """Per top-1 source: top-1 against each cost (a panel per configuration; MACs in one panel) and the key."""
    out = []
    for source, a in report.acc.groupby("top1_source", sort=True):
        a = a[~a["model"].map(is_ablation)][["model", "top1", "top1_source", "distilled", "eval_px"]]
        d = report.perf[report.perf["dtype"] != "int8"].merge(a, on="model")   # int8 points: reports.int8's fronts
        figs, fronts = [], {}
        if not d.empty:
            d = _pareto_points(report, d)
            d["panel"] = d["config"]
            panels = sorted(d["panel"].unique())
            for x in X_METRICS:
                if d[x].notna().any():
                    figs.append(Figure(f"Top-1 vs {plots.PARETO_X[x]}", Markup(plots.pareto_figure(
                        d, x, source, panels, report.numbers, report.colors))))
                    fronts[x] = front_models(d, x)
        m = report.facts.merge(a, on="model")
        if m["gmacs"].notna().any():
            m = _pareto_points(report, m.assign(config="all devices"))
            m["panel"] = "all devices (MACs are device-independent)"
            figs.insert(min(2, len(figs)), Figure("Top-1 vs GMACs", Markup(plots.pareto_figure(
                m, "gmacs", source, [m["panel"].iloc[0]], report.numbers, report.colors))))
            fronts["gmacs"] = front_models(m, "gmacs")
        if figs:
            out.append(ParetoSource(source, figs, _pareto_key(report, source, a, fronts)))
    return out


def batch(report: Report) -> list[Figure]:
    """Latency, throughput and peak memory against batch size (a panel per configuration); a figure only
    where some model was measured at two batch sizes or more (a single batch size is no curve)."""
    ok = tables.ok_rows(report.df)
    ok = tables.spread(ok[ok["suite"].isin(tables.INFERENCE_SUITES)])
    ok["panel"] = ok["config"]
    figs = []
    for y, label, suite in (("latency_ms_p50", "latency p50 (ms)", "latency"),
                            ("throughput_img_s", "throughput (images/s)", "throughput"),
                            ("peak_mem_mb", "peak memory (MB)", "memory")):
        d = ok[ok["suite"] == suite].dropna(subset=[y, "batch_size"])
        if y != "latency_ms_p50":
            d = d.drop(columns=["err_lo", "err_hi"])
        if not d.empty and (d.groupby(["panel", "model"])["batch_size"].nunique() > 1).any():
            figs.append(Figure(f"{label.split(' (')[0].capitalize()} vs batch size",
                               Markup(plots.batch_figure(d, y, label, report.colors))))
    return figs


def drift(report: Report) -> Drift | None:
    """The reference's round medians over each interleaved run (see :mod:`reports.drift`), or None."""
    rounds = drift_rows.reference_rounds(report.df)
    spreads = drift_rows.spread(rounds)
    if spreads.empty:
        return None
    refs = sorted(set(tables.ok_rows(report.df)["ref_model"].dropna().astype(str)))
    return Drift(Markup(plots.drift_figure(rounds)), drift_rows.caption(spreads, " / ".join(refs) or None),
                 html_table(spreads.round(3).astype(object), headers={
                     "run_label": "run", "group": "group", "n_rounds": "rounds", "median_ms": "median (ms)",
                     "max_over_min": "max/min", "p90_over_p10": "p90/p10"}))


def _engine_table(sp: pd.DataFrame) -> Markup:
    cols = ["setting", "model", "batch_size", "engine", "latency_ms_p50", "speedup_vs_eager", "parity_rel"]
    render, heads = {}, {}
    if sp["ratio_to_ref"].notna().any():   # the paired speed-up over each engine's own reference
        cols.insert(6, "ratio_to_ref")
        render["ratio_to_ref"] = tables.ratio_text
        heads["ratio_to_ref"] = f"× vs {' / '.join(sorted(set(sp['ref_model'].dropna().astype(str))))} (paired)"
    return html_table(sp.astype(object), cols, render=render, headers=heads)


def engines(report: Report) -> Engines | None:
    """Each engine against eager: the best engine per model, the rankings per engine and every engine."""
    sp = engine_speedups(report.df)
    if sp.empty:
        return None
    return Engines(best=_engine_table(best_engine(sp)), ranks=html_table(engine_rankings(sp).astype(object)),
                   all=_engine_table(sp))


def ablations(report: Report) -> Ablations | None:
    """The ``lsnet_t_mixer_*`` ablations beside LSNet-T (table and latency against batch size), or None."""
    ref = report.reference if report.reference.startswith("lsnet_t") else "lsnet_t"
    ab = tables.ablations(report.perf, report.acc, ref)
    if ab.empty:
        return None
    cols = [c for c in ["config", "model", "params_m", "gmacs", "latency_ms_p50", "speedup_vs_base", "throughput_img_s",
                        "peak_mem_mb", *[c for c in ab.columns if c.startswith("top1 [")], "front"] if c in ab.columns]
    df = report.df
    pts = tables.latency_points(df[df["model"].map(is_ablation) | (df["model"] == "lsnet_t")])
    fig = Markup(plots.batch_figure(pts.assign(panel=pts["config"]), "latency_ms_p50", "latency p50 (ms)",
                                    report.colors)) if not pts.empty else None
    return Ablations(html_table(ab.astype(object), cols, render={"speedup_vs_base": speedup("speedup_vs_base")}), fig)


def _slow_row(r: pd.Series) -> str:
    return "slow" if r["path"] == "slow" else ""


def operators(report: Report) -> Operators:
    """The per-kind operator time shares, the convolution path and the top operators by self time."""
    shares = tables.op_shares(report.df)
    paths = conv_paths(report.df)
    tops = top_ops(report.df)
    return Operators(
        fig=Markup(plots.op_share_figure(shares.assign(panel=shares["config"]))) if not shares.empty else None,
        conv_paths=html_table(paths.astype(object), row_class=_slow_row) if not paths.empty else None,
        top_ops=html_table(tops.astype(object), ["config", "model", "batch_size", "rank", "op", "kind", "calls",
                                                 "self_time_us", "share", "shapes", "path"], row_class=_slow_row)
        if not tops.empty else None)


def training(report: Report) -> Training | None:
    """Training throughput, peak memory and step time against batch size, and training against inference."""
    tr = train_rows(report.df)
    if tr.empty:
        return None
    tr["panel"] = tr["config"]
    points = tr.drop(columns=["err_lo", "err_hi"])
    figs = [Figure("Training throughput vs batch size", Markup(plots.batch_figure(
        points, "throughput_img_s", "training throughput (images/s)", report.colors)))]
    if tr["peak_mem_mb"].notna().any():
        figs.append(Figure("Training peak memory vs batch size", Markup(plots.batch_figure(
            points, "peak_mem_mb", "training peak memory (MB)", report.colors))))
    figs.append(Figure("Training step time vs batch size", Markup(plots.batch_figure(
        tr, "latency_ms_p50", "training step p50 (ms)", report.colors))))
    return Training(figs, html_table(train_vs_inference(report.df).astype(object)))


def roofline(report: Report) -> Markup | None:
    """The SKA op alone per shape and backend: GB/s, share of copy bandwidth, speed against official."""
    roof = roofline_rows(report.df)
    return html_table(roof.astype(object), ["config", "shape", "backend", "mode", "batch_size", "latency_ms_p50",
                                            "gbps", "pct_copy_bw", "vs_official"]) if not roof.empty else None


def accuracy(report: Report) -> Markup:
    """Every (model, top-1 source) with its detail, distilled flag and evaluation resolution."""
    return html_table(report.acc.astype(object), ["model", "top1_source", "top1", "top5", "distilled", "eval_px",
                                                  "detail"])


def failures(report: Report) -> Markup | None:
    """The failed or skipped cells, one row per distinct reason."""
    fails = tables.failures(report.all_df)     # every task's
    return html_table(fails.astype(object)) if len(fails) else None


def _env_table(env: dict[str, Any]) -> Markup:
    rows = [(k, v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in env.items()]
    df = pd.DataFrame(rows, columns=["key", "value"]).astype(object)
    return html_table(df, cls="env") if rows else Markup("<p>No env.json in this folder.</p>")


def runs(report: Report) -> list[RunEntry]:
    """Each results folder: its label, path, command and env.json."""
    return [RunEntry(run_label(r), str(r.path), r.command, _env_table(r.env)) for r in report.runs]
