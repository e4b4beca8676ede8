"""Comparisons with confidence: the ratio of two latencies with an interval; one is called faster only
when the interval excludes 1.

Two rows of one run with paired ratios to the same reference (interleaved rounds) are compared by those:
B/A = ratio_B / ratio_A, interval [low_B / high_A, high_B / low_A] (exact when A is the reference). Rows of
different runs share no rounds: their interval is built from each row's interval of the median, which for
interleaved rows spans the round medians and so already includes the machine's drift within its run."""
from __future__ import annotations

import pandas as pd

from suites.core.schema import DEFAULT_TASK

CROSS_RUN = ("runs A and B were measured in different runs: no paired rounds; the interval uses the spread "
             "between runs")
KEY = ["suite", "engine", "device_name", "dtype", "channels_last", "compile", "fused", "batch_size", "resolution",
       "task"]


def ratio_interval(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    """(b/a at the medians, low, high): the extremes of b/a over both rows' intervals of the median
    (p50 itself where a row has no interval)."""
    def bounds(r: pd.Series) -> tuple[float, float]:
        lo, hi = r.get("latency_ms_ci_low"), r.get("latency_ms_ci_high")
        p50 = r["latency_ms_p50"]
        return (p50 if lo is None or pd.isna(lo) else lo), (p50 if hi is None or pd.isna(hi) else hi)
    (alo, ahi), (blo, bhi) = bounds(a), bounds(b)
    return b["latency_ms_p50"] / a["latency_ms_p50"], blo / ahi, bhi / alo


def paired_interval(a: pd.Series, b: pd.Series) -> tuple[float, float, float] | None:
    """(b/a, low, high) from both rows' paired ratios to one reference in one run; None where they have none."""
    def ratio(r: pd.Series) -> tuple[float, float, float] | None:
        v = tuple(pd.to_numeric(r.get(c), errors="coerce") for c in ("ratio_to_ref", "ratio_ci_low", "ratio_ci_high"))
        return v if all(x > 0 for x in v) else None
    ra, rb = ratio(a), ratio(b)
    if ra is None or rb is None or pd.isna(a.get("run_id")) or a.get("run_id") != b.get("run_id") \
            or pd.isna(a.get("ref_model")) or a.get("ref_model") != b.get("ref_model"):
        return None
    return rb[0] / ra[0], rb[1] / ra[2], rb[2] / ra[1]


def verdict(low: float, high: float) -> str:
    if high < 1:
        return "B faster"
    if low > 1:
        return "B slower"
    return "no difference shown (intervals overlap)"


def compare(a: pd.DataFrame, b: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> pd.DataFrame:
    """Latency rows of ``a`` and ``b`` matched on the configuration (and the model when both hold
    it): the ratio B/A, its interval, ``basis`` (``paired`` or ``latency intervals``) and the verdict."""
    def ok(df: pd.DataFrame) -> pd.DataFrame:
        df = df[(df["status"] == "ok") & df["latency_ms_p50"].notna() & (df["suite"] == "latency")]
        task = df["task"].fillna(DEFAULT_TASK) if "task" in df else DEFAULT_TASK   # rows of before tasks: classify
        df = df.assign(task=task)
        return df.drop_duplicates(subset=KEY + ["model"], keep="last")
    a, b = ok(a), ok(b)
    same_models = set(a["model"]) & set(b["model"])
    key = KEY + (["model"] if same_models else [])
    merged = a.merge(b, on=key, suffixes=("_a", "_b"))
    out = []
    for _, r in merged.iterrows():
        ra = pd.Series({k.removesuffix("_a"): v for k, v in r.items() if k.endswith("_a")})
        rb = pd.Series({k.removesuffix("_b"): v for k, v in r.items() if k.endswith("_b")})
        paired = paired_interval(ra, rb)
        mid, lo, hi = paired or ratio_interval(ra, rb)
        out.append({**{k: r[k] for k in key}, a_name: ra["latency_ms_p50"], b_name: rb["latency_ms_p50"],
                    "ratio": mid, "low": lo, "high": hi, "basis": "paired" if paired else "latency intervals",
                    "verdict": verdict(lo, hi)})
    return pd.DataFrame(out)


def format_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "no latency rows to compare (the runs share no configuration)"
    lines = []
    for _, r in df.iterrows():
        what = " ".join(str(r[k]) for k in ("model", "engine", "dtype") if k in r) + f" bs{r['batch_size']}"
        basis = "  (paired rounds)" if r.get("basis") == "paired" else ""
        lines.append(f"{what}: {r['ratio']:.3f}x [{r['low']:.3f}, {r['high']:.3f}]  {r['verdict']}{basis}")
    return "\n".join(lines)

