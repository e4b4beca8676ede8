"""Comparisons with confidence: the ratio of two latencies with an interval built from each row's
interval of the median; one is called faster only when the interval excludes 1."""
from __future__ import annotations

import pandas as pd

KEY = ["suite", "engine", "device_name", "dtype", "channels_last", "compile", "fused", "batch_size", "resolution"]


def ratio_interval(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    """(b/a at the medians, low, high): the extremes of b/a over both rows' intervals of the median
    (p50 itself where a row has no interval)."""
    def bounds(r: pd.Series) -> tuple[float, float]:
        lo, hi = r.get("latency_ms_ci_low"), r.get("latency_ms_ci_high")
        p50 = r["latency_ms_p50"]
        return (p50 if lo is None or pd.isna(lo) else lo), (p50 if hi is None or pd.isna(hi) else hi)
    (alo, ahi), (blo, bhi) = bounds(a), bounds(b)
    return b["latency_ms_p50"] / a["latency_ms_p50"], blo / ahi, bhi / alo


def verdict(low: float, high: float) -> str:
    if high < 1:
        return "B faster"
    if low > 1:
        return "B slower"
    return "no difference shown (intervals overlap)"


def compare(a: pd.DataFrame, b: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> pd.DataFrame:
    """Latency rows of ``a`` and ``b`` matched on the configuration (and the model when both hold
    it): the ratio B/A, its interval and the verdict."""
    def ok(df: pd.DataFrame) -> pd.DataFrame:
        df = df[(df["status"] == "ok") & df["latency_ms_p50"].notna() & (df["suite"] == "latency")]
        return df.drop_duplicates(subset=KEY + ["model"], keep="last")
    a, b = ok(a), ok(b)
    same_models = set(a["model"]) & set(b["model"])
    key = KEY + (["model"] if same_models else [])
    merged = a.merge(b, on=key, suffixes=("_a", "_b"))
    out = []
    for _, r in merged.iterrows():
        ra = pd.Series({k.removesuffix("_a"): v for k, v in r.items() if k.endswith("_a")})
        rb = pd.Series({k.removesuffix("_b"): v for k, v in r.items() if k.endswith("_b")})
        mid, lo, hi = ratio_interval(ra, rb)
        out.append({**{k: r[k] for k in key}, a_name: ra["latency_ms_p50"], b_name: rb["latency_ms_p50"],
                    "ratio": mid, "low": lo, "high": hi, "verdict": verdict(lo, hi)})
    return pd.DataFrame(out)


def format_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "no latency rows to compare (the runs share no configuration)"
    lines = []
    for _, r in df.iterrows():
        what = " ".join(str(r[k]) for k in ("model", "engine", "dtype") if k in r) + f" bs{r['batch_size']}"
        lines.append(f"{what}: {r['ratio']:.3f}x [{r['low']:.3f}, {r['high']:.3f}]  {r['verdict']}")
    return "\n".join(lines)

