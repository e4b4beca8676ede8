"""The report's "int8 against float32" section: per engine, device, model and batch size, what static
post-training quantisation buys (speed-up) and what it costs (top-1 agreement with float32, the relative
logit error, and where the accuracy suite measured it, the int8 top-1 beside float32's), with Pareto
figures on which int8 points have their own marker.

The speed-up is float32 time / int8 time. Where both rows were measured interleaved in one group (same run,
suite and device: the same rounds), it is the median of the per-round paired ratios over the rounds both took part
in, with the ~95% interval of that median the sweep gives its own ratios ("paired"); otherwise the ratio of the two medians, without an interval. Rows of
different suites or engines are never merged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from markupsafe import Markup

from reports.htmltable import html_table
from suites.core.measurement import ratio_of

TIMED = {"latency": ("latency_ms_p50", "min"), "throughput": ("throughput_img_s", "max")}
MIN_PAIRED_ROUNDS = 3
INT8_MARKER, FLOAT_MARKER = "s", "o"


@dataclass(frozen=True)
class Int8:
    """The section: the pairs table, the accuracy table, the figures, and notes."""
    table: Markup
    accuracy: Markup | None
    figs: list[tuple[str, Markup]]
    notes: list[str]


def _extra(r: pd.Series) -> dict[str, Any]:
    e = r.get("extra")
    return e if isinstance(e, dict) else {}


def _round_ms(r: pd.Series) -> list[float | None]:
    """The row's per-round medians (None for a round that lost every sample to stalls)."""
    return [float(v) if v is not None and v == v else None for v in (_extra(r).get("round_medians_ms") or [])]


def paired_ratio(base: list[float | None], other: list[float | None]) -> tuple[float, float, float] | None:
    """(median, low, high) of the per-round ratios base/other over the rounds both took part in, with the
    ~95% interval of that median (:func:`suites.core.measurement.ratio_of`, the sweep's own pairing); None
    below :data:`MIN_PAIRED_ROUNDS` such rounds."""
    r = ratio_of(base, other)
    return None if r is None or r.n_rounds < MIN_PAIRED_ROUNDS else (r.value, r.low, r.high)


def _float_ops(extra: dict[str, Any]) -> str:
    facts = extra.get("int8") or {}
    ops = facts.get("float_ops")
    if ops is None and isinstance(facts.get("runtime_precisions"), dict):
        ops = facts["runtime_precisions"].get("f32")
    if not ops:
        return "none" if ops is not None else "—"
    return ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:6])


def pairs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, engine, device, model, batch size, run) with both a float32 and an int8 ok row."""
    need = {"dtype", "suite", "status", "model"}
    if df.empty or not need <= set(df.columns):
        return pd.DataFrame()
    ok = df[(df["status"] == "ok") & df["suite"].isin(list(TIMED)) & df["dtype"].isin(["float32", "int8"])]
    out = []
    keys = ["suite", "engine", "panel_device", "model", "batch_size", "run_label"]
    for key, g in ok.groupby(keys, sort=True):
        f, q = g[g["dtype"] == "float32"], g[g["dtype"] == "int8"]
        if f.empty or q.empty:
            continue
        f, q = f.iloc[0], q.iloc[0]
        col, sense = TIMED[key[0]]
        if pd.isna(f.get(col)) or pd.isna(q.get(col)) or not q[col] or not f[col]:
            continue
        rec = dict(zip(keys, key))
        rec["family"] = q.get("family")
        rec["float32"], rec["int8"] = f[col], q[col]
        paired = None
        if f.get("protocol") == "interleaved" and q.get("protocol") == "interleaved":
            paired = paired_ratio(_round_ms(f), _round_ms(q))      # ms per call: float/int8 = speed-up
        if paired is not None:
            rec["speedup"], rec["ci_low"], rec["ci_high"] = paired
            rec["paired"] = "paired rounds"
        else:
            rec["speedup"] = f[col] / q[col] if sense == "min" else q[col] / f[col]
            rec["ci_low"] = rec["ci_high"] = None
            rec["paired"] = "medians"
        e = _extra(q)
        facts = e.get("int8") or {}
        rec["agreement"] = q.get("int8_agreement") if pd.notna(q.get("int8_agreement")) else facts.get("agreement")
        rec["logit_rel"] = q.get("parity_rel")
        rec["weights"] = facts.get("weights", "—")
        calib = facts.get("calibration") or {}
        rec["calibration"] = f"{calib.get('source', '?')} × {calib.get('images', '?')}" if calib else "—"
        rec["vnni"] = {True: "yes", False: "no"}.get((facts.get("cpu") or {}).get("vnni"), "—")
        rec["float_ops"] = _float_ops(e)
        out.append(rec)
    return pd.DataFrame(out)


def accuracy_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The accuracy suite's int8 rows: int8 top-1 beside float32's, per engine, model and source; ``parity``
    says whether the int8 form passed its agreement rule (an error row that failed it keeps its top-1)."""
    if df.empty or "dtype" not in df.columns or "top1" not in df.columns:
        return pd.DataFrame()
    a = df[(df["suite"] == "accuracy") & (df["dtype"] == "int8") & df["status"].isin(["ok", "error"])].copy()
    a["top1"] = pd.to_numeric(a["top1"], errors="coerce")
    a = a.dropna(subset=["top1"])
    if a.empty:
        return pd.DataFrame()
    a["top1_float32"] = pd.to_numeric(a.get("top1_float32"), errors="coerce")
    a["top1_delta"] = a["top1"] - a["top1_float32"]
    a["parity"] = ["ok" if s == "ok" else "failed" for s in a["status"]]
    return a[["engine", "model", "top1_source", "top1", "top1_float32", "top1_delta", "int8_agreement",
              "parity_rel", "parity"]].sort_values(["top1_source", "engine", "model"])


def _fmt(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t["speed-up"] = [f"{s:.2f}×" + (f" [{lo:.2f}, {hi:.2f}]" if lo == lo and lo is not None else "")
                     for s, lo, hi in zip(t["speedup"], t["ci_low"].astype(float), t["ci_high"].astype(float))]
    t["verdict"] = ["faster" if lo == lo and lo > 1 else "slower" if hi == hi and hi < 1 else
                    ("not separated" if lo == lo else "unpaired")
                    for lo, hi in zip(t["ci_low"].astype(float), t["ci_high"].astype(float))]
    t["agreement"] = [f"{a:.1f}%" if a == a and a is not None else "—" for a in t["agreement"].astype(float)]
    t["logit_rel"] = [f"{v:.3f}" if v == v else "—" for v in t["logit_rel"].astype(float)]
    return t


def _figures(p: pd.DataFrame, acc: pd.DataFrame, colors: dict[str, str]) -> list[tuple[str, Markup]]:
    """Top-1 vs latency per engine and device (smallest batch): float32 circles, int8 squares, each top-1 its
    own (int8 top-1 where the accuracy suite measured it); one front over both precisions (dashed: the
    front without int8)."""
    from reports import plots
    from reports.fronts import COST_SENSES
    from reports.pareto import pareto_mask
    from reports.style import family_of
    lat = p[p["suite"] == "latency"] if not p.empty else p
    if lat.empty or acc.empty:
        return []
    figs = []
    for source, a in acc.groupby("top1_source", sort=True):
        panels = []
        for (engine, device), g in lat.groupby(["engine", "panel_device"], sort=True):
            g = g[g["batch_size"] == g["batch_size"].min()]
            m = g.merge(a[a["engine"] == engine][["model", "top1", "top1_float32"]], on="model")
            if m.empty:
                continue
            pts = pd.concat([m.assign(dtype="float32", top1v=m["top1_float32"], ms=m["float32"]),
                             m.assign(dtype="int8", top1v=m["top1"], ms=m["int8"])], ignore_index=True)
            panels.append((f"{engine} · {device} · bs{int(g['batch_size'].min())}", pts))
        if not panels:
            continue
        titles = plots.Titles()
        fig, axes = plots._grid(len(panels))
        for ax, (title, pts) in zip(axes, panels):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(plots.PARETO_X["latency_ms_p50"].replace("smallest batch", "batch shown"))
            ax.set_ylabel(f"top-1 (%) [{source}]")
            ax.grid(True, alpha=0.3)
            pts = pts.dropna(subset=["ms", "top1v"]).reset_index(drop=True)
            objectives = {"top1v": "max", "ms": COST_SENSES["latency_ms_p50"]}
            on = pareto_mask(pts, objectives) if len(pts) else pd.Series(dtype=bool)
            only_float = pts[pts["dtype"] == "float32"]
            on_f = pareto_mask(only_float, objectives) if len(only_float) else pd.Series(dtype=bool)
            front = pts[on].sort_values("ms")
            ax.plot(front["ms"], front["top1v"], "-", color="0.3", lw=1.2, zorder=1)
            ff = only_float[on_f].sort_values("ms")
            ax.plot(ff["ms"], ff["top1v"], "--", color="0.6", lw=1.0, zorder=1)
            for i, r in pts.iterrows():
                marker = INT8_MARKER if r["dtype"] == "int8" else FLOAT_MARKER
                tip = f"{r['model']} {r['dtype']}: {r['ms']:.3f} ms, top-1 {r['top1v']:.2f}%"
                color = colors.get(family_of(r["model"], r.get("family")), "0.4")
                plots._point(ax, titles, r["ms"], r["top1v"], color, marker, False,
                             110 if on[i] else 50, "black" if on[i] else "white", tip, 1.6 if on[i] else 0.6)
                ax.annotate(r["model"] + (" int8" if r["dtype"] == "int8" else ""), (r["ms"], r["top1v"]),
                            fontsize=7, xytext=(4, 3), textcoords="offset points")
        import matplotlib.pyplot as plt
        handles = [plt.Line2D([], [], marker=FLOAT_MARKER, ls="", color="0.4", label="float32"),
                   plt.Line2D([], [], marker=INT8_MARKER, ls="", color="0.4", label="int8"),
                   plt.Line2D([], [], ls="-", color="0.3", label="front (both precisions)"),
                   plt.Line2D([], [], ls="--", color="0.6", label="front (float32 only)")]
        fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.01), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        figs.append((f"Top-1 vs latency, float32 and int8 [{source}]", Markup(plots.to_svg(fig, titles))))
    return figs


def section(df: pd.DataFrame, colors: dict[str, str] | None = None) -> Int8 | None:
    """The section's data, or None when no int8 row was measured."""
    if df.empty or "dtype" not in df.columns or not (df["dtype"] == "int8").any():
        return None
    p = pairs(df)
    acc = accuracy_rows(df)
    notes = []
    if p.empty:
        notes.append("no float32 row beside an int8 row of the same suite, engine, device, model, batch and run: "
                     "measure --dtype float32,int8 together for speed-ups")
        table = Markup("<p class='muted'>no pairs</p>")
    else:
        t = _fmt(p)
        table = html_table(t.astype(object), ["suite", "engine", "panel_device", "model", "batch_size", "float32",
                                              "int8", "speed-up", "verdict", "paired", "agreement", "logit_rel",
                                              "weights", "calibration", "vnni", "float_ops"],
                           headers={"panel_device": "device", "float32": "float32 (ms or img/s)",
                                    "int8": "int8 (ms or img/s)", "paired": "ratio from",
                                    "agreement": "top-1 agreement", "logit_rel": "logit error (rel)",
                                    "vnni": "VNNI", "float_ops": "ops left in float"},
                           render={c: (lambda r, c=c: f"{r[c]:.4g}") for c in ("float32", "int8")})
        if (p["weights"].astype(str).str.startswith("random")).any():
            notes.append("rows with random weights: their top-1 agreement is shown but not judged (nearly tied "
                         "logits); the accuracy rows below are the deployed figure")
    acc_table = None
    if not acc.empty:
        acc_table = html_table(acc.rename(columns={"top1": "top1_int8"}).astype(object),
                               ["top1_source", "engine", "model", "top1_int8", "top1_float32", "top1_delta",
                                "int8_agreement", "parity_rel", "parity"],
                               headers={"top1_int8": "int8 top-1 (%)", "top1_float32": "float32 top-1 (%)",
                                        "top1_delta": "Δ top-1 (points)", "int8_agreement": "top-1 agreement (%)",
                                        "parity_rel": "logit error (rel)"})
    if not acc.empty and (acc["parity"] == "failed").any():
        notes.append("int8 accuracy rows marked failed broke the agreement rule (their error says which); their "
                     "top-1 was measured through the int8 model all the same and is left out of the figures")
    figures = _figures(p, acc[acc["parity"] == "ok"] if not acc.empty else acc, colors or {})
    return Int8(table, acc_table, figures, notes)
