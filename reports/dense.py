"""The dense-prediction section: what a backbone costs at detection and segmentation resolutions (the
``features`` and ``segment`` rows) beside the downstream figures its papers publish.

Measured: per task, resolution, configuration, model and batch size, latency p50 (the latency suite's row,
else any inference row's), peak memory (the memory suite), throughput, and the MACs and parameters the flops
suite counted for that task at that resolution, with the feature shapes (``extra.feature_shapes``).
Published (``suites/core/data/published_dense.csv``, via :func:`suites.core.published.load_dense`): COCO box and
mask AP of RetinaNet and Mask R-CNN go with the ``features`` rows (those detectors put their own neck and heads
on the backbone's maps), ADE20K mIoU of the Semantic FPN with the ``segment`` rows. Every published value is
labelled ``published`` and its source is listed; it was obtained at the paper's input size and schedule, not
measured here. Tasks are never mixed: each task has its own table and figures, and classifier rows are not in
this section at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
from markupsafe import Markup

from reports import plots
from reports.htmltable import html_table
from reports.labels import ms
from reports.style import color_of, family_of
from reports.tables import INFERENCE_SUITES
from suites.core import published
from suites.core.schema import resolution_pixels

# the published metrics each measured task's table and figures show (AP50/AP75 stay in the published table)
MAIN_METRICS = {"features": (("retinanet", "box_ap"), ("mask_rcnn", "box_ap"), ("mask_rcnn", "mask_ap")),
                "segment": (("semantic_fpn", "miou"),)}
X_METRICS = {"latency_ms_p50": "measured latency p50 (ms, smallest batch)",
             "peak_mem_mb": "measured peak memory (MB, smallest batch)"}
KEY = ["task", "resolution", "config", "model"]


class DenseFigure(NamedTuple):
    title: str
    svg: Markup


@dataclass(frozen=True)
class DenseTask:
    """One task's part of the section: its cost table (with the published columns) and its figures."""
    task: str
    resolutions: list[str]
    table: Markup
    figs: list[DenseFigure]
    best: Markup | None = None      # eager against the fastest engine per model and batch
    train: Markup | None = None     # training steps of the task (train --task segment)


@dataclass(frozen=True)
class Dense:
    tasks: list[DenseTask]
    published: Markup | None


def metric_column(recipe: str, metric: str) -> str:
    """The table column of a published figure: ``published: RetinaNet COCO box AP``."""
    row = next((r for r in published.load_dense() if r.recipe == recipe and r.metric == metric), None)
    label = row.label.split(" (")[0] if row else f"{recipe} {metric}"
    return f"published: {label}"


def _published_value(model: str, recipe: str, metric: str) -> tuple[float | None, str | None]:
    """(value, citation) of the first published figure of ``model`` for ``recipe``/``metric`` (the data file's
    order: its shortest schedule first where several are given), or (None, None)."""
    rows = [r for r in published.dense_lookup(model) if r.recipe == recipe and r.metric == metric]
    return (rows[0].value, rows[0].cited) if rows else (None, None)


def _feature_shapes(ex: Any) -> str | None:
    shapes = ex.get("feature_shapes") if isinstance(ex, dict) else None
    if not isinstance(shapes, list) or not shapes:
        return None
    return ", ".join("x".join(str(v) for v in s) for s in shapes if isinstance(s, list))


def costs(dense: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, resolution, configuration, model, batch size) of the ok inference rows of ``dense``
    (features/segment rows): latency p50 and its interval, peak memory, throughput, the flops suite's GMACs and
    params for the same (model, task, resolution), the feature shapes and the published main metrics."""
    cols = [*KEY, "batch_size", "family", "engine", "panel_device", "threads", "dtype", "latency_ms_p50", "latency_ms_ci_low", "latency_ms_ci_high",
            "peak_mem_mb", "forward_peak_mb", "throughput_img_s", "gmacs", "params_m", "feature_shapes", "stable"]
    ok = dense[(dense["status"] == "ok") & dense["model"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    counts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for _, r in ok[ok["suite"] == "flops"].iterrows():
        counts.setdefault((r["model"], r["task"], r["resolution"]), {
            "gmacs": r["gmacs"], "params_m": r["params_m"], "feature_shapes": _feature_shapes(r["extra"])})
    inf = ok[ok["suite"].isin(INFERENCE_SUITES)]
    recs = []
    for key, g in inf.groupby([*KEY, "batch_size"], sort=True):
        rec = dict(zip([*KEY, "batch_size"], key))
        lat = g[g["suite"] == "latency"].dropna(subset=["latency_ms_p50"])
        lat = lat if not lat.empty else g.dropna(subset=["latency_ms_p50"])
        first = lat.iloc[0] if not lat.empty else None
        rec["latency_ms_p50"] = first["latency_ms_p50"] if first is not None else None
        rec["latency_ms_ci_low"] = first["latency_ms_ci_low"] if first is not None else None
        rec["latency_ms_ci_high"] = first["latency_ms_ci_high"] if first is not None else None
        mem, thr = g["peak_mem_mb"].dropna(), g["throughput_img_s"].dropna()
        rec["peak_mem_mb"] = mem.iloc[0] if len(mem) else None
        fwd = [ex.get("forward_peak_mb") for ex in g.loc[g["suite"] == "memory", "extra"] if isinstance(ex, dict)]
        rec["forward_peak_mb"] = next((v for v in fwd if isinstance(v, int | float)), None)
        rec["throughput_img_s"] = thr.max() if len(thr) else None
        for col in ("family", "engine", "panel_device", "threads", "dtype"):
            rec[col] = g[col].iloc[0]
        rec["stable"] = False if (g["stable"] == False).any() else None  # noqa: E712
        c = counts.get((rec["model"], rec["task"], rec["resolution"]), {})
        shapes = next((s for s in map(_feature_shapes, g["extra"]) if s), None)
        rec |= {"gmacs": c.get("gmacs"), "params_m": c.get("params_m") if c.get("params_m") == c.get("params_m")
                else None, "feature_shapes": shapes or c.get("feature_shapes")}
        if rec["params_m"] is None:
            p = g["params_m"].dropna()
            rec["params_m"] = p.iloc[0] if len(p) else None
        recs.append(rec)
    # models only counted (flops alone) still get a line: their MACs at that resolution
    have = {(r["model"], r["task"], r["resolution"]) for r in recs}
    for (model, task, res), c in counts.items():
        if (model, task, res) not in have:
            fam = ok.loc[ok["model"] == model, "family"]
            recs.append({"task": task, "resolution": res, "config": "(counted only: flops suite)", "model": model,
                         "batch_size": None, "family": fam.iloc[0] if len(fam) else None, "engine": None, **c})
    out = pd.DataFrame(recs, columns=cols)
    for task, metrics in MAIN_METRICS.items():
        for recipe, metric in metrics:
            out[metric_column(recipe, metric)] = [
                _published_value(m, recipe, metric)[0] if t == task else None for m, t in zip(out["model"], out["task"])]
    return out


SETTING = ["task", "resolution", "panel_device", "threads", "dtype", "model", "batch_size"]


def best_engines(c: pd.DataFrame) -> pd.DataFrame:
    """Per (task, resolution, device, threads, dtype, model, batch): eager's latency p50 and peak memory beside
    the fastest engine measured there (by p50), its peak memory and its speed-up over eager, and the GMACs."""
    cols = [*SETTING, "eager_ms", "eager_mem_mb", "best_engine", "best_ms", "best_mem_mb", "best_fwd_mem_mb", "speedup",
            "gmacs"]
    d = c.dropna(subset=["latency_ms_p50", "engine"])
    recs = []
    for key, g in d.groupby(SETTING, sort=True, dropna=False):
        rec = dict(zip(SETTING, key))
        eager = g[g["engine"] == "eager"]
        best = g.loc[pd.to_numeric(g["latency_ms_p50"]).idxmin()]
        e = eager.iloc[0] if len(eager) else None
        rec |= {"eager_ms": e["latency_ms_p50"] if e is not None else None,
                "eager_mem_mb": e["peak_mem_mb"] if e is not None else None,
                "best_engine": best["engine"], "best_ms": best["latency_ms_p50"], "best_mem_mb": best["peak_mem_mb"],
                "best_fwd_mem_mb": best["forward_peak_mb"],
                "speedup": e["latency_ms_p50"] / best["latency_ms_p50"] if e is not None else None,
                "gmacs": g["gmacs"].dropna().iloc[0] if g["gmacs"].notna().any() else None}
        recs.append(rec)
    return pd.DataFrame(recs, columns=cols)


def _num(col: str, fmt: Any) -> Any:
    """A render function: ``fmt`` of the row's ``col``, — when missing."""
    return lambda r: "—" if r.get(col) is None or r.get(col) != r.get(col) else fmt(float(r[col]))


def _latency_text(r: pd.Series) -> str:
    v = r.get("latency_ms_p50")
    if v is None or v != v:
        return "—"
    lo, hi = r.get("latency_ms_ci_low"), r.get("latency_ms_ci_high")
    text = ms(v) + (f" [{ms(lo)}–{ms(hi)} CI]" if lo == lo and hi == hi and lo is not None and hi is not None else "")
    return text + (" (unstable)" if r.get("stable") is False else "")


def _points(c: pd.DataFrame, task: str, recipe: str, metric: str, x: str) -> pd.DataFrame:
    """The figure's points: the smallest measured batch per (configuration, model) with ``x`` and the figure."""
    col = metric_column(recipe, metric)
    d = c[(c["task"] == task) & c[x].notna() & c[col].notna()].sort_values("batch_size", kind="stable")
    d = d.drop_duplicates(subset=["config", "model"], keep="first").copy()
    d["value"] = d[col]
    d["cited"] = [_published_value(m, recipe, metric)[1] for m in d["model"]]
    return d


def figure(c: pd.DataFrame, task: str, x: str, colors: dict[str, str]) -> str | None:
    """Published figures (y) against measured ``x`` of one task: a panel per (published metric, configuration);
    None when no model has both."""
    panels = []
    for recipe, metric in MAIN_METRICS.get(task, ()):
        d = _points(c, task, recipe, metric, x)
        for cfg, g in d.groupby("config", sort=True):
            panels.append((metric_column(recipe, metric), cfg, g))
    if not panels:
        return None
    titles = plots.Titles()
    fig, axes = plots._grid(len(panels))
    markers = plots.model_markers(list(c["model"].dropna()))
    for ax, (label, cfg, g) in zip(axes, panels):
        ax.set_title(f"{label.removeprefix('published: ')} (published)\nvs {cfg}", fontsize=9)
        ax.set_xlabel(X_METRICS[x])
        ax.set_ylabel(f"{label} (%)")
        ax.grid(True, which="both", alpha=0.3)
        for _, r in g.iterrows():
            tip = (f"{r['model']} · {r['task']} at {r['resolution']} px · batch {int(r['batch_size'])}\n"
                   f"{label}: {r['value']:.1f} (published; {r['cited']})\n{X_METRICS[x]}: {r[x]:.4g}\n"
                   f"measured: {cfg}")
            plots._point(ax, titles, r[x], r["value"], color_of(r["model"], r.get("family"), colors),
                         markers.get(r["model"], "o"), r.get("stable") is False, 70, "white", tip, 0.6)
            ax.annotate(r["model"], (r[x], r["value"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        plots._log_if_wide(ax, g[x], "x")
    shown = sorted({family_of(m, f) for _, _, g in panels for m, f in zip(g["model"], g["family"])})
    handles = [plots.plt.Line2D([], [], marker="o", ls="", color=colors.get(f, "0.4"), label=f) for f in shown]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), bbox_to_anchor=(0.5, -0.01),
               frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return plots.to_svg(fig, titles)


def published_table(models: set[str]) -> pd.DataFrame:
    """Every published dense figure of ``models`` (all its metrics, schedules and sources)."""
    recs = [{"model": r.model, "paper name": r.paper_name, "goes with task": r.task or "—",
             "recipe": published.DENSE_RECIPES.get(r.recipe, r.recipe), "dataset": r.dataset, "metric": r.metric,
             "published value": r.value, "schedule": r.schedule, "input size (paper)": r.input_size,
             "source": r.source} for r in published.load_dense() if r.model in models]
    return pd.DataFrame(recs)


def section(dense: pd.DataFrame, colors: dict[str, str]) -> Dense | None:
    """The section of the features/segment rows ``dense`` (None without any)."""
    if dense is None or dense.empty:
        return None
    c = costs(dense)
    parts = []
    for task in sorted(set(dense["task"].dropna())):
        t = c[c["task"] == task].copy()
        res = sorted(set(dense.loc[dense["task"] == task, "resolution"].dropna()), key=lambda v: resolution_pixels(v) or 0)
        pub_cols = [metric_column(rc, m) for rc, m in MAIN_METRICS.get(task, ())]
        cols = ["resolution", "config", "model", "batch_size", "latency_ms_p50", "peak_mem_mb", "forward_peak_mb",
                "throughput_img_s",
                "gmacs", "params_m", "feature_shapes", *pub_cols]
        keep = [col for col in cols if col in t.columns and (col in ("model", "config") or t[col].notna().any())]
        heads = {"resolution": "resolution (HxW)", "feature_shapes": "output shapes per image (CxHxW)",
                 "forward_peak_mb": "peak mem over the forwards (MB)",
                 "gmacs": "GMACs per image"}
        table = html_table(t.sort_values(["resolution", "config", "model", "batch_size"], kind="stable").astype(object),
                           keep, render={"latency_ms_p50": _latency_text,
                                         "forward_peak_mb": _num("forward_peak_mb", "{:,.1f}".format)},
                           headers=heads) if len(t) else \
            Markup("<p>No ok rows for this task.</p>")
        b = best_engines(t)
        best = html_table(b.astype(object), [col for col in b.columns if col not in ("task", "dtype") and (
            col in ("model", "best_engine") or b[col].notna().any())], headers={
            "panel_device": "device", "eager_ms": "eager p50 (ms)", "eager_mem_mb": "eager peak mem (MB)",
            "best_engine": "fastest engine", "best_ms": "its p50 (ms)", "best_mem_mb": "its peak mem (MB)",
            "best_fwd_mem_mb": "its peak over the forwards (MB)",
            "speedup": "speed-up vs eager (unpaired)", "gmacs": "GMACs per image", "resolution": "resolution (HxW)"},
            render={c: _num(c, f) for c, f in (("eager_ms", ms), ("best_ms", ms), ("eager_mem_mb", "{:,.1f}".format),
                                                ("best_mem_mb", "{:,.1f}".format), ("best_fwd_mem_mb", "{:,.1f}".format))}
            ) if len(b) else None
        figs = []
        for x in X_METRICS:
            svg = figure(c, task, x, colors)
            if svg:
                figs.append(DenseFigure(f"{task}: published downstream figures vs {X_METRICS[x]}", Markup(svg)))
        tr = dense[(dense["task"] == task) & (dense["suite"] == "train") & (dense["status"] == "ok")]
        train = html_table(tr.sort_values(["resolution", "config", "model", "batch_size"], kind="stable").astype(object),
                           ["resolution", "config", "model", "batch_size", "latency_ms_p50", "throughput_img_s",
                            "peak_mem_mb"], headers={"latency_ms_p50": "train step p50 (ms)",
                                                     "throughput_img_s": "train img/s", "peak_mem_mb": "train peak mem (MB)",
                                                     "resolution": "resolution (HxW)"}) if len(tr) else None
        parts.append(DenseTask(task, [str(r) for r in res], table, figs, best, train))
    pub = published_table(set(dense["model"].dropna()))
    return Dense(parts, html_table(pub.astype(object)) if len(pub) else None)
