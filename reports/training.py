"""The ``train`` suite: training step time, training images/s and peak memory per batch size, and the
training cost against the inference cost of the same model, configuration and batch size."""
from __future__ import annotations

import pandas as pd

from reports.tables import latency_points, ok_rows


def train_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Ok ``train`` rows with the step-time interval (``err_lo``/``err_hi``)."""
    return latency_points(df, suite="train") if (ok_rows(df)["suite"] == "train").any() else df.iloc[:0]


def train_vs_inference(df: pd.DataFrame) -> pd.DataFrame:
    """Per (config, model, batch): training step ms and img/s beside the inference latency and img/s of the
    same configuration and batch; ``cost_ratio`` = training step time / inference time (both per batch)."""
    ok = ok_rows(df)
    tr = ok[ok["suite"] == "train"]
    cols = ["config", "model", "batch_size", "train_step_ms", "train_img_s", "train_peak_mem_mb", "infer_ms",
            "infer_img_s", "cost_ratio"]
    if tr.empty:
        return pd.DataFrame(columns=cols)
    key = ["config", "model", "batch_size"]
    t = tr.groupby(key, as_index=False).agg(train_step_ms=("latency_ms_p50", "median"),
                                            train_img_s=("throughput_img_s", "max"),
                                            train_peak_mem_mb=("peak_mem_mb", "max"))
    lat = ok[ok["suite"] == "latency"].groupby(key, as_index=False).agg(infer_ms=("latency_ms_p50", "median"))
    thr = ok[ok["suite"] == "throughput"].groupby(key, as_index=False).agg(infer_img_s=("throughput_img_s", "max"))
    out = t.merge(lat, on=key, how="left").merge(thr, on=key, how="left")
    infer_ms = out["infer_ms"].where(out["infer_ms"].notna(), out["batch_size"] / out["infer_img_s"] * 1e3)
    train_ms = out["train_step_ms"].where(out["train_step_ms"].notna(), out["batch_size"] / out["train_img_s"] * 1e3)
    out["cost_ratio"] = train_ms / infer_ms
    return out[cols].sort_values(key, kind="stable").reset_index(drop=True)
