"""The engine dimension: each engine's latency beside eager's on the same device, dtype, layout and batch,
its speed-up and its parity, and the best engine per model."""
from __future__ import annotations

import pandas as pd

from reports.config import describe
from reports.tables import latency_points, ratio_text

SETTING = ["host", "device", "device_name", "threads", "dtype", "channels_last", "resolution"]


def _setting(r: dict) -> str:
    """The configuration in words without the engine (what two engines must share to be compared)."""
    return describe({**r, "engine": "eager", "compile": False}).split(" · ", 1)[1]


def engine_speedups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, model, batch, engine): p50 with its interval, speed-up over eager in the same
    setting and batch (NaN without an eager row), parity_rel, and the paired ratio to the engine's reference
    (``ref_model``, ``ratio_to_ref`` with ``ratio_ci_low``/``ratio_ci_high``; NaN for sequential rows; rows of
    several runs: the median ratio and the widest interval). Empty when only one engine was measured."""
    d = latency_points(df)
    cols = ["setting", "model", "batch_size", "engine", "latency_ms_p50", "err_lo", "err_hi", "speedup_vs_eager",
            "parity_rel", "stable", "ref_model", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high"]
    if d.empty or d["engine"].nunique() < 2:
        return pd.DataFrame(columns=cols)
    d = d.assign(setting=[(_setting(r) + (f" · {r['host']}" if d["host"].nunique() > 1 else ""))
                          for r in d.to_dict("records")])
    d = d.groupby(["setting", "model", "batch_size", "engine"], as_index=False).agg(
        latency_ms_p50=("latency_ms_p50", "median"), err_lo=("err_lo", "min"), err_hi=("err_hi", "max"),
        parity_rel=("parity_rel", "max"), stable=("stable", lambda s: False if (s == False).any() else None),  # noqa: E712
        ref_model=("ref_model", "first"), ratio_to_ref=("ratio_to_ref", "median"),
        ratio_ci_low=("ratio_ci_low", "min"), ratio_ci_high=("ratio_ci_high", "max"))
    eager = d[d["engine"] == "eager"].set_index(["setting", "model", "batch_size"])["latency_ms_p50"]
    ref = [eager.get((s, m, b)) for s, m, b in zip(d["setting"], d["model"], d["batch_size"])]
    d["speedup_vs_eager"] = pd.to_numeric(pd.Series(ref, index=d.index), errors="coerce") / d["latency_ms_p50"]
    return d[cols].sort_values(["setting", "model", "batch_size", "engine"], kind="stable").reset_index(drop=True)


def best_engine(speedups: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, model, batch): the engine with the lowest p50, its speed-up over eager and parity."""
    if speedups.empty:
        return speedups
    idx = speedups.groupby(["setting", "model", "batch_size"])["latency_ms_p50"].idxmin()
    return speedups.loc[idx].reset_index(drop=True)


def engine_rankings(speedups: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, batch, model): each engine's p50 and the model's rank among the models that
    engine ran in that setting and batch (1 = fastest), and the largest rank change across engines
    (how much the engine changes the ranking), and where the rows carry paired ratios, each engine's
    speed-up over its reference with the interval (``× vs REF · ENGINE``, see :func:`reports.tables.ratio_text`).
    Empty when only one engine was measured."""
    if speedups.empty:
        return pd.DataFrame()
    d = speedups.assign(rank=speedups.groupby(["setting", "batch_size", "engine"])["latency_ms_p50"]
                        .rank(method="min").astype("Int64"))
    p50 = d.pivot_table(index=["setting", "batch_size", "model"], columns="engine", values="latency_ms_p50",
                        aggfunc="first")
    rank = d.pivot_table(index=["setting", "batch_size", "model"], columns="engine", values="rank", aggfunc="first")
    parts = [p50.round(3).add_prefix("p50 ms · "), rank.add_prefix("rank · ")]
    if "ratio_to_ref" in d.columns and d["ratio_to_ref"].notna().any():
        ref = " / ".join(sorted(set(d["ref_model"].dropna().astype(str)))) or "reference"
        d = d.assign(vs_ref=[ratio_text(r) for r in d.to_dict("records")])
        parts.append(d.pivot_table(index=["setting", "batch_size", "model"], columns="engine", values="vs_ref",
                                   aggfunc="first").add_prefix(f"× vs {ref} · "))
    out = pd.concat(parts, axis=1)
    out["rank shift"] = (rank.max(axis=1) - rank.min(axis=1)).astype("Int64")
    first = "rank · eager" if "rank · eager" in out.columns else out.columns[len(p50.columns)]
    return out.reset_index().sort_values(["setting", "batch_size", first], kind="stable").reset_index(drop=True)
