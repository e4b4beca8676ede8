"""From rows to per-model tables: performance per (device, dtype, model), accuracy per (model, source).

Rules (stated in the report): latency, peak memory and energy come from the smallest batch size measured
for that figure; throughput is the best over batch sizes. Params and MACs are per model (any row).
Accuracy is a property of the weights, so each (model, top-1 source) value joins every device; published
ImageNet top-1 from ``schema/data/published.csv`` is added for models the rows give none for, always
labelled ``published:imagenet-1k``.
"""
from __future__ import annotations

import numbers

import pandas as pd

from schema import published

PUBLISHED_SOURCE = "published:imagenet-1k"
INFERENCE_SUITES = ("latency", "throughput", "memory")   # the suites whose figures form a model's performance
PERF_COLS = ("latency_ms_p50", "latency_ms_p90", "throughput_img_s", "peak_mem_mb", "energy_j_per_img")


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["model"].notna()]


def _at_smallest_batch(g: pd.DataFrame, cols: list[str]) -> pd.Series:
    g = g.dropna(subset=[cols[0]])
    if g.empty:
        return pd.Series({c: None for c in cols} | {f"{cols[0]}_batch": None})
    r = g.sort_values(["batch_size", "run_label"], kind="stable").iloc[0]
    return pd.Series({c: r[c] for c in cols} | {f"{cols[0]}_batch": r["batch_size"]})


def performance(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (panel_device, engine, dtype, model) with the PERF_COLS (and their batch sizes), family,
    params, MACs. Only inference suites count; rows of different engines are never merged."""
    ok = ok_rows(df)
    perf = ok[ok["suite"].isin(INFERENCE_SUITES)].dropna(subset=list(PERF_COLS), how="all")
    out = []
    for (dev, engine, dtype, model), g in perf.groupby(["panel_device", "engine", "dtype", "model"], sort=True):
        best = g.dropna(subset=["throughput_img_s"])
        thr = best.loc[best["throughput_img_s"].idxmax()] if not best.empty else None
        rec = {"panel_device": dev, "engine": engine, "dtype": dtype, "model": model,
               "throughput_img_s": thr["throughput_img_s"] if thr is not None else None,
               "throughput_img_s_batch": thr["batch_size"] if thr is not None else None}
        rec |= _at_smallest_batch(g, ["latency_ms_p50", "latency_ms_p90"]).to_dict()
        rec |= _at_smallest_batch(g, ["peak_mem_mb"]).to_dict()
        rec |= _at_smallest_batch(g, ["energy_j_per_img"]).to_dict()
        out.append(rec)
    cols = ["panel_device", "engine", "dtype", "model", *PERF_COLS, "latency_ms_p50_batch", "throughput_img_s_batch",
            "peak_mem_mb_batch", "energy_j_per_img_batch"]
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
    """One row per (model, top1_source): top1, top5 and the citation/detail of the source."""
    ok = ok_rows(df).dropna(subset=["top1"])
    recs = []
    for _, r in ok.iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        recs.append({"model": r["model"], "top1_source": r["top1_source"] or "unlabelled", "top1": r["top1"],
                     "top5": ex.get("top5"), "detail": _detail(r["top1_source"] or "", ex)})
    acc = pd.DataFrame(recs, columns=["model", "top1_source", "top1", "top5", "detail"])
    acc = acc.drop_duplicates(subset=["model", "top1_source"], keep="last")
    if add_published:
        have = set(acc.loc[acc["top1_source"] == PUBLISHED_SOURCE, "model"])
        extra = []
        for m in sorted(set(ok_rows(df)["model"]) - have):
            pub = published.lookup(m)
            if pub is not None:
                extra.append({"model": m, "top1_source": PUBLISHED_SOURCE, "top1": pub.top1, "top5": pub.top5,
                              "detail": f"from the data file: {pub.cited}"})
        if extra:
            acc = pd.concat([acc, pd.DataFrame(extra)], ignore_index=True)
    return acc.sort_values(["top1_source", "model"], kind="stable").reset_index(drop=True)


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
        perf["panel_device"], perf["engine"], perf["dtype"] = "(no device measurements)", "", ""
    for src, g in acc.groupby("top1_source", sort=True):
        perf = perf.merge(g[["model", "top1"]].rename(columns={"top1": f"top1 [{src}]"}), on="model", how="left")
    return perf


def op_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Long table (panel_device, engine, dtype, model, batch_size, kind, share) from the profile suite's
    ``extra["kinds"]`` (``{kind: {"share": x, ...}}``), normalised to sum to 1 per row."""
    recs = []
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
            recs.append({"panel_device": r["panel_device"], "engine": r["engine"], "dtype": r["dtype"], "model": r["model"],
                         "batch_size": r["batch_size"], "kind": kind, "share": v / total})
    return pd.DataFrame(recs, columns=["panel_device", "engine", "dtype", "model", "batch_size", "kind", "share"])


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is not ok, with their error."""
    bad = df[df["status"] != "ok"]
    return bad[["run_label", "suite", "engine", "model", "panel_device", "dtype", "batch_size", "status", "error"]]
