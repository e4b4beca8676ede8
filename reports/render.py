"""One self-contained HTML report (inline SVG plots, inline CSS, no scripts) from one or more results folders."""
from __future__ import annotations

import html
import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from reports import plots, tables
from reports.load import Run, combine, load_run

RULES = ("Latency (p50/p90), peak memory and energy are at the smallest batch size measured for each (shown as @bs); "
         "throughput is the best over the batch sizes measured. Params and MACs are per model. Each top-1 column is one "
         "source; published values are ImageNet-1k figures from the papers/timm, not measured here.")

_FMT = {"params_m": "{:.2f}", "gmacs": "{:.3f}", "latency_ms_p50": "{:.3f}", "latency_ms_p90": "{:.3f}",
        "throughput_img_s": "{:,.1f}", "peak_mem_mb": "{:,.1f}", "energy_j_per_img": "{:.4f}", "top1": "{:.2f}",
        "top5": "{:.2f}", "share": "{:.1%}"}
_HEADERS = {"model": "model", "family": "family", "dtype": "dtype", "params_m": "params (M)", "gmacs": "GMACs",
            "latency_ms_p50": "latency p50 (ms)", "latency_ms_p90": "latency p90 (ms)",
            "throughput_img_s": "throughput (img/s)", "peak_mem_mb": "peak mem (MB)",
            "energy_j_per_img": "energy (J/img)", "top1_source": "top-1 source", "top1": "top-1 (%)",
            "top5": "top-5 (%)", "detail": "detail"}


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    fmt = _FMT.get(col) or (_FMT["top1"] if col.startswith("top1 [") else None)
    if fmt and isinstance(v, int | float):
        return fmt.format(v)
    return str(v)


def html_table(df: pd.DataFrame, columns: list[str] | None = None, batch_of: dict[str, str] | None = None) -> Markup:
    """An escaped HTML table; ``batch_of`` maps a column to the column holding its batch size (shown as @bs)."""
    columns = columns or list(df.columns)
    batch_of = batch_of or {}
    head = "".join(f'<th class="{"t" if df[c].dtype == object and not c.startswith("top1 [") else ""}">'
                   f"{html.escape(_HEADERS.get(c, c))}</th>" for c in columns)
    body = []
    for _, r in df.iterrows():
        tds = []
        for c in columns:
            text = _cell(c, r[c])
            b = r.get(batch_of.get(c)) if c in batch_of else None
            if text != "—" and b is not None and b == b:
                text += f" @bs{int(b)}"
            cls = "t" if df[c].dtype == object and not c.startswith("top1 [") else ""
            tds.append(f'<td class="{cls}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _env_table(env: dict[str, Any]) -> Markup:
    rows = [(k, v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in env.items()]
    df = pd.DataFrame(rows, columns=["key", "value"]).astype(object)
    return html_table(df) if rows else Markup("<p>No env.json in this folder.</p>")


def _panel(df: pd.DataFrame) -> pd.Series:
    return df["panel_device"].astype(str) + " · " + df["dtype"].astype(str)


def _pareto_figures(perf: pd.DataFrame, facts: pd.DataFrame, acc: pd.DataFrame) -> list[tuple[str, list]]:
    out = []
    pal = plots.family_palette(list(facts["family"].fillna("other")))
    for source, a in acc.groupby("top1_source", sort=True):
        a = a[["model", "top1"]]
        figs = []
        d = perf.merge(a, on="model")
        if not d.empty:
            d["panel"] = _panel(d)
            panels = sorted(d["panel"].unique())
            for x in ("latency_ms_p50", "throughput_img_s", "peak_mem_mb"):
                if d[x].notna().any() and d["top1"].notna().any():
                    figs.append((f"Top-1 vs {plots.PARETO_X[x][0]}", plots.pareto_figure(d, x, source, panels, pal)))
        m = facts.merge(a, on="model")
        if m["gmacs"].notna().any():
            m["panel"] = "all devices (MACs are device-independent)"
            figs.insert(2 if len(figs) >= 2 else len(figs),
                        ("Top-1 vs GMACs", plots.pareto_figure(m, "gmacs", source, [m["panel"].iloc[0]], pal)))
        if figs:
            out.append((source, figs))
    return out


def _batch_figures(df: pd.DataFrame) -> list[tuple[str, Markup]]:
    ok = tables.ok_rows(df).copy()
    ok["panel"] = _panel(ok)
    figs = []
    for y, label in (("throughput_img_s", "throughput (images/s)"), ("peak_mem_mb", "peak memory (MB)")):
        d = ok.dropna(subset=[y, "batch_size"])
        if not d.empty and (d.groupby(["panel", "model"])["batch_size"].nunique() > 1).any():
            figs.append((f"{label.split(' (')[0].capitalize()} vs batch size", Markup(plots.batch_figure(d, y, label))))
    return figs


def build_html(runs: list[Run], title: str | None = None) -> str:
    """The report for ``runs`` (rows merged; devices seen in several runs are labelled by run id)."""
    df = combine(runs)
    acc = tables.accuracy(df)
    perf = tables.performance(df)
    facts = tables.model_facts(df)
    summ = tables.summary(df, acc)
    top_cols = sorted(c for c in summ.columns if c.startswith("top1 ["))
    cols = ["model", "family", "dtype", "params_m", "gmacs", "latency_ms_p50", "latency_ms_p90", "throughput_img_s",
            "peak_mem_mb", "energy_j_per_img", *top_cols]
    batch_of = {"latency_ms_p50": "latency_ms_p50_batch", "latency_ms_p90": "latency_ms_p50_batch",
                "throughput_img_s": "throughput_img_s_batch", "peak_mem_mb": "peak_mem_mb_batch",
                "energy_j_per_img": "energy_j_per_img_batch"}
    summary_tables = []
    for dev, g in summ.groupby("panel_device", sort=True):
        g = g.sort_values(["dtype", "model"], kind="stable").astype(object)
        keep = [c for c in cols if c in g.columns and (c in ("model", "dtype") or g[c].notna().any())]
        summary_tables.append((dev, html_table(g, keep, batch_of)))
    shares = tables.op_shares(df)
    op_fig = None
    if not shares.empty:
        shares["panel"] = _panel(shares)
        op_fig = Markup(plots.op_share_figure(shares))
    pareto = [(s, [(t, Markup(svg)) for t, svg in figs]) for s, figs in _pareto_figures(perf, facts, acc)]
    fails = tables.failures(df)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             loader=jinja2.FunctionLoader(
                                 lambda name: resources.files("reports").joinpath("templates", name).read_text("utf-8")))
    if title is None:
        title = "lsnet-bench report: " + ", ".join(r.run_id for r in runs)
    return env.get_template("report.html.j2").render(
        title=title, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), rules=RULES,
        summary_tables=summary_tables, pareto=pareto, batch_figs=_batch_figures(df), op_fig=op_fig,
        accuracy_table=html_table(acc.astype(object), ["model", "top1_source", "top1", "top5", "detail"]),
        failures=html_table(fails.astype(object)) if len(fails) else None,
        runs=[{"label": r.run_id, "path": str(r.path), "command": r.command, "env_table": _env_table(r.env)} for r in runs])


def render(run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/report.html`` from that folder's results; returns its path."""
    out = Path(run_dir) / "report.html"
    out.write_text(build_html([load_run(run_dir)]), encoding="utf-8")
    return out


def render_many(run_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None) -> Path:
    """Merge several results folders into one report (default: ``report.html`` in the first folder,
    or, for several, ``report.html`` in the current directory)."""
    if not run_dirs:
        raise ValueError("no results folders given; pass at least one folder written by a run")
    runs = [load_run(d) for d in run_dirs]
    path = Path(out) if out else (Path(run_dirs[0]) / "report.html" if len(run_dirs) == 1 else Path("report.html"))
    if path.is_dir():
        path = path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(runs), encoding="utf-8")
    return path
