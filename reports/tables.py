"""From rows to per-model tables: performance per (configuration, model), accuracy per (model, source).

Rules (stated in the report): latency, peak memory and energy come from the smallest batch size measured
for that figure (every batch size is in the batch-size figures); throughput is the best over batch sizes.
Params and MACs are per model (any row). Accuracy is a property of the weights, so each (model, top-1
source) value joins every configuration; published ImageNet top-1 from ``suites/core/data/published.csv`` is
added for models the rows give none for, labelled ``published:imagenet-1k`` with whether it is distilled
and the resolution it was evaluated at. Rows of different suites or engines are never merged into one number.
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from reports.fronts import on_front
from reports.pareto import pair_group
from reports.style import is_ablation
from suites.core import published
from suites.core.schema import reason_template, resolution_text

PUBLISHED_SOURCE = "published:imagenet-1k"
INFERENCE_SUITES = ("latency", "throughput", "memory")   # the suites whose figures form a model's performance
PERF_COLS = ("latency_ms_p50", "latency_ms_p90", "throughput_img_s", "peak_mem_mb", "energy_j_per_img")
RATIO_COLS = ("ratio_to_ref", "ratio_ci_low", "ratio_ci_high", "ref_model", "pair_group")
KEY = ["config", "panel_device", "engine", "dtype", "model"]


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with status ok and a model."""
    return df[(df["status"] == "ok") & df["model"].notna()]


def spread(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``err_lo``/``err_hi`` (the latency interval drawn and used by the front) and ``spread_kind``:
    the CI of the median where recorded, else p50..p90 (the rows carry no p10)."""
    df = df.copy()
    has_ci = df["latency_ms_ci_low"].notna() & df["latency_ms_ci_high"].notna()
    df["err_lo"] = np.where(has_ci, df["latency_ms_ci_low"], df["latency_ms_p50"])
    df["err_hi"] = np.where(has_ci, df["latency_ms_ci_high"], df["latency_ms_p90"])
    df["spread_kind"] = np.where(has_ci, "CI", np.where(df["latency_ms_p90"].notna(), "p50..p90", ""))
    return df


def latency_points(df: pd.DataFrame, suite: str = "latency") -> pd.DataFrame:
    """Every ok latency row of ``suite`` with its interval (see :func:`spread`), one per (config, model, batch)."""
    d = ok_rows(df)
    d = d[(d["suite"] == suite) & d["latency_ms_p50"].notna()]
    return spread(d)


def _first(g: pd.DataFrame, col: str) -> pd.Series | None:
    g = g.dropna(subset=[col])
    return None if g.empty else g.sort_values(["batch_size", "run_label"], kind="stable").iloc[0]


def performance(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, model): PERF_COLS with their batch sizes, the latency interval, stability,
    warnings and parity, family, params, MACs. Only inference suites count."""
    ok = ok_rows(df)
    perf = spread(ok[ok["suite"].isin(INFERENCE_SUITES)].dropna(subset=list(PERF_COLS), how="all"))
    perf["pair_group"] = pair_group(perf)
    out = []
    for key, g in perf.groupby(KEY, sort=True):
        rec = dict(zip(KEY, key))
        thr = g.dropna(subset=["throughput_img_s"])
        best = thr.loc[thr["throughput_img_s"].idxmax()] if not thr.empty else None
        rec["throughput_img_s"] = best["throughput_img_s"] if best is not None else None
        rec["throughput_img_s_batch"] = best["batch_size"] if best is not None else None
        rec |= {f"thr_{c}": best[c] if best is not None else None for c in RATIO_COLS}
        lat = _first(g[g["suite"] == "latency"], "latency_ms_p50")
        if lat is None:
            lat = _first(g, "latency_ms_p50")
        for c in ("latency_ms_p50", "latency_ms_p90", "err_lo", "err_hi", "spread_kind", *RATIO_COLS):
            rec[c] = lat[c] if lat is not None else None
        rec["latency_ms_p50_batch"] = lat["batch_size"] if lat is not None else None
        for c in ("peak_mem_mb", "energy_j_per_img"):
            r = _first(g, c)
            rec[c], rec[f"{c}_batch"] = (r[c], r["batch_size"]) if r is not None else (None, None)
        par = g["parity_rel"].dropna()
        rec["parity_rel"] = par.max() if len(par) else None
        rec["stable"] = False if (g["stable"] == False).any() else (True if (g["stable"] == True).any() else None)  # noqa: E712
        warns = [w for ws in g["warnings"].dropna() for w in str(ws).split("; ") if w]
        rec["warnings"] = "; ".join(dict.fromkeys(warns)) or None
        rec["command_run"] = g["run_label"].iloc[0]
        out.append(rec)
    cols = [*KEY, *PERF_COLS, "err_lo", "err_hi", "spread_kind", "latency_ms_p50_batch", "throughput_img_s_batch",
            "peak_mem_mb_batch", "energy_j_per_img_batch", "parity_rel", "stable", "warnings", "command_run",
            *RATIO_COLS, *(f"thr_{c}" for c in RATIO_COLS)]
    res = pd.DataFrame(out, columns=cols)
    return res.merge(model_facts(df), on="model", how="left")


def model_facts(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: family, params_m and gmacs (first value found; rows that are not accuracy rows first)."""
    ok = ok_rows(df).copy()
    ok["_acc"] = ok["suite"] == "accuracy"
    ok = ok.sort_values("_acc", kind="stable")
    facts = ok.groupby("model", sort=True).agg(family=("family", "first"), params_m=("params_m", "first"),
                                               gmacs=("gmacs", "first"))
    return facts.reset_index()


def accuracy(df: pd.DataFrame, add_published: bool = True) -> pd.DataFrame:
    """One row per (model, top1_source): top1, top5, the citation/detail, ``distilled`` (published tags
    with ``dist``; None when unknown) and ``eval_px`` (the resolution the figure was evaluated at)."""
    ok = ok_rows(df).dropna(subset=["top1"])
    recs = []
    for _, r in ok.iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        src = r["top1_source"] or "unlabelled"
        pub = published.lookup(r["model"]) if src.startswith("published") else None
        recs.append({"model": r["model"], "top1_source": src, "top1": r["top1"], "top5": ex.get("top5"),
                     "detail": _detail(src, ex), "distilled": pub.distilled if pub else (None if src.startswith(
                         "published") else False),
                     "eval_px": pub.eval_img_size if pub else _px(r["resolution"])})
    cols = ["model", "top1_source", "top1", "top5", "detail", "distilled", "eval_px"]
    acc = pd.DataFrame(recs, columns=cols)
    acc = acc.drop_duplicates(subset=["model", "top1_source"], keep="last")
    if add_published:
        have = set(acc.loc[acc["top1_source"] == PUBLISHED_SOURCE, "model"])
        extra = []
        for m in sorted(set(ok_rows(df)["model"]) - have):
            pub = published.lookup(m)
            if pub is not None:
                extra.append({"model": m, "top1_source": PUBLISHED_SOURCE, "top1": pub.top1, "top5": pub.top5,
                              "detail": f"from the data file: {pub.cited}", "distilled": pub.distilled,
                              "eval_px": pub.eval_img_size})
        if extra:
            acc = pd.concat([acc, pd.DataFrame(extra, columns=cols)], ignore_index=True)
    return acc.sort_values(["top1_source", "model"], kind="stable").reset_index(drop=True)


def _px(resolution) -> int | str | None:
    """A measured resolution as ``eval_px``: the side of a square input, else its ``HxW`` text."""
    try:
        text = resolution_text(resolution)
    except ValueError:
        return None
    return int(text) if text is not None and "x" not in text else text


def default_source(acc: pd.DataFrame) -> str | None:
    """The top-1 source of the default front: the published figures, else the first source; None without any."""
    sources = list(acc["top1_source"].unique())
    return PUBLISHED_SOURCE if PUBLISHED_SOURCE in sources else next(iter(sources), None)


def _detail(source: str, ex: dict) -> str:
    if "source" in ex:
        return str(ex["source"])
    parts = []
    if "n_images" in ex:
        parts.append(f"{ex['n_images']} images")
    if ex.get("n_unreadable"):
        parts.append(f"{ex['n_unreadable']} unreadable (skipped)")
    if isinstance(ex.get("budget"), dict):
        b = ex["budget"]
        text = f"budget {b.get('steps')} steps"
        if b.get("batch_size") is not None:
            text += f" x batch {b['batch_size']}"
        if isinstance(b.get("train_s"), numbers.Number):
            text += f", {b['train_s']:.0f} s training"
        parts.append(text)
    if "seed" in ex:
        parts.append(f"seed {ex['seed']}")
    if "checkpoint" in ex:
        parts.append(f"checkpoint {ex['checkpoint']}")
    return ", ".join(parts)


def summary(df: pd.DataFrame, acc: pd.DataFrame) -> pd.DataFrame:
    """Performance rows joined with every accuracy source as its own ``top1 [source]`` column."""
    perf = performance(df)
    if perf.empty:  # accuracy-only run: one table of models
        perf = model_facts(df)
        perf["panel_device"] = perf["config"] = "(no device measurements)"
        perf["engine"], perf["dtype"] = "", ""
    for src, g in acc.groupby("top1_source", sort=True):
        perf = perf.merge(g[["model", "top1"]].rename(columns={"top1": f"top1 [{src}]"}), on="model", how="left")
    return perf


def relative(perf: pd.DataFrame, reference: str, col: str = "speedup") -> pd.DataFrame:
    """Speed-up of each row over ``reference`` in the same configuration: ``col`` with its interval
    ``col_lo``/``col_hi`` and ``col_paired``.

    Paired where the row has a ratio to ``reference`` (interleaved rounds: speed-up = 1 / ratio_to_ref,
    interval [1 / ratio_ci_high, 1 / ratio_ci_low]; the latency row's, else the best throughput row's).
    Else unpaired: reference latency / latency, its interval from both rows' CIs of the median (none
    without CIs), or the throughput quotient where latency is missing; NaN where the reference was not
    measured there."""
    out = pd.DataFrame(np.nan, index=perf.index, columns=[col, f"{col}_lo", f"{col}_hi"])
    out[f"{col}_paired"] = False

    def num(v):
        return pd.to_numeric(v, errors="coerce")
    for _, g in perf.groupby("config"):
        ref = g[g["model"] == reference]
        if ref.empty:
            continue
        r = ref.iloc[0]
        by_lat = num(r["latency_ms_p50"]) / num(g["latency_ms_p50"])
        by_thr = num(g["throughput_img_s"]) / num(r["throughput_img_s"])
        ci = (g["spread_kind"] == "CI") & (r["spread_kind"] == "CI") & by_lat.notna()
        out.loc[g.index, col] = by_lat.where(by_lat.notna(), by_thr)
        out.loc[g.index, f"{col}_lo"] = (num(r.get("err_lo")) / num(g["err_hi"])).where(ci)
        out.loc[g.index, f"{col}_hi"] = (num(r.get("err_hi")) / num(g["err_lo"])).where(ci)
    for prefix in ("thr_", ""):   # the latency row's ratio wins over the throughput row's
        cols = [f"{prefix}{c}" for c in ("ratio_to_ref", "ratio_ci_low", "ratio_ci_high", "ref_model")]
        if not set(cols) <= set(perf.columns):
            continue
        v, lo, hi = (num(perf[c]) for c in cols[:3])
        has = (perf[cols[3]] == reference) & v.notna() & lo.notna() & hi.notna() & (lo > 0)
        out.loc[has, col], out.loc[has, f"{col}_lo"], out.loc[has, f"{col}_hi"] = 1 / v[has], 1 / hi[has], 1 / lo[has]
        out.loc[has, f"{col}_paired"] = True
    return out


def speedup_text(v: float, lo: float, hi: float, paired: bool) -> str:
    """``1.23× [1.18, 1.27] faster``: faster or slower only where the interval excludes 1; ``(unpaired)``
    where the figure is a quotient of two medians rather than a paired ratio."""
    if v is None or v != v:
        return "—"
    text = f"{v:.2f}×"
    if lo == lo and hi == hi and lo is not None and hi is not None:
        text += f" [{lo:.2f}, {hi:.2f}]" + (" faster" if lo > 1 else " slower" if hi < 1 else "")
    return text + ("" if paired else " (unpaired)")


def ratio_text(r: pd.Series | dict, prefix: str = "") -> str:
    """A row's paired ratio as a speed-up over its reference (see :func:`speedup_text`); — without one."""
    v, lo, hi = (pd.to_numeric(r.get(f"{prefix}{c}"), errors="coerce") for c in ("ratio_to_ref", "ratio_ci_low",
                                                                                 "ratio_ci_high"))
    if not (v > 0 and lo > 0 and hi > 0):
        return "—"
    return speedup_text(1 / v, 1 / hi, 1 / lo, True)


def op_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Long table (config, panel_device, engine, dtype, model, batch_size, kind, share) from the profile
    suite's ``extra["kinds"]`` (``{kind: {"share": x, ...}}``), normalised to sum to 1 per row."""
    recs = []
    cols = ["config", "panel_device", "engine", "dtype", "model", "batch_size", "kind", "share"]
    for _, r in ok_rows(df).iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        share = ex.get("kinds")
        if r["suite"] != "profile" or not isinstance(share, dict):
            continue
        vals = {}
        for kind, v in share.items():
            v = v.get("share") if isinstance(v, dict) else None
            if isinstance(v, numbers.Number) and not isinstance(v, bool) and v == v and v >= 0:
                vals[str(kind)] = float(v)
        total = sum(vals.values())
        if total <= 0:
            continue
        for kind, v in vals.items():
            recs.append({c: r[c] for c in cols[:6]} | {"kind": kind, "share": v / total})
    return pd.DataFrame(recs, columns=cols)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is not ok, grouped by (status, reason): one row per distinct reason (reasons that
    differ only in the model are one, the model written ``<model>``) with the count, the suites and the
    models (sorted), the batch sizes and the configurations."""
    bad = df[df["status"] != "ok"].copy()
    cols = ["status", "error", "count", "suites", "models", "batch_sizes", "configs"]
    if bad.empty:
        return pd.DataFrame(columns=cols)
    bad["error"] = [reason_template(str(e), str(m or "")) if isinstance(e, str) else "(no reason recorded)"
                    for e, m in zip(bad["error"], bad["model"])]

    def join(v: pd.Series) -> str:
        vals = sorted({int(x) if isinstance(x, float) and x == x else x for x in v.dropna()}, key=str)
        return ", ".join(map(str, vals))
    out = [{"status": s, "error": e, "count": len(g), "suites": join(g["suite"]), "models": join(g["model"]),
            "batch_sizes": join(g["batch_size"]), "configs": join(g["config"])}
           for (s, e), g in bad.groupby(["status", "error"], sort=True)]
    return pd.DataFrame(out, columns=cols).sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def ablations(perf: pd.DataFrame, acc: pd.DataFrame, base: str = "lsnet_t") -> pd.DataFrame:
    """The ``lsnet_t_mixer_*`` ablations beside ``base`` per configuration: cost, speed-up over ``base``,
    every non-published top-1 (published figures do not exist for ablations) and ``front``: the sources
    on whose (top-1, latency) front the model is, among ``base`` and the ablations (`` *`` after its name)."""
    d = perf[perf["model"].map(is_ablation) | (perf["model"] == base)].copy()
    if not d["model"].map(is_ablation).any():
        return d.iloc[:0]
    d = pd.concat([d, relative(d, base, "speedup_vs_base")], axis=1)
    d["front"] = ""
    for src, g in acc[~acc["top1_source"].str.startswith("published")].groupby("top1_source"):
        col = f"top1 [{src}]"
        d = d.merge(g[["model", "top1"]].rename(columns={"top1": col}), on="model", how="left")
        d.loc[on_front(d, "latency_ms_p50", "config", top1=col), "front"] += f"{src} "
    d["model"] = [m + (" *" if f else "") for m, f in zip(d["model"], d["front"])]
    d["front"] = d["front"].str.strip()
    return d.sort_values(["config", "model"], kind="stable").reset_index(drop=True)
