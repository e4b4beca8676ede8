"""Operator insight from the profile suite: the top operators per model (with input shapes where the
profiler recorded them) and whether the convolutions ran the fast path (oneDNN/cuDNN) or a slow fallback."""
from __future__ import annotations

import re

import pandas as pd

from reports.tables import ok_rows

SLOW_CONV = re.compile(r"_slow_conv|slow_conv|thnn_conv|conv_depthwise2d", re.I)
FAST_CONV = re.compile(r"mkldnn_conv|onednn|cudnn_conv|miopen_conv|_convolution_mode|xnnpack", re.I)


def conv_path(op_names: list[str]) -> str:
    """``slow`` if any slow convolution kernel ran, else ``fast`` if a oneDNN/cuDNN kernel ran, else ``-``."""
    if any(SLOW_CONV.search(n) for n in op_names):
        return "slow"
    if any(FAST_CONV.search(n) for n in op_names):
        return "fast"
    return "-"


def _shapes(op: dict) -> str:
    v = op.get("input_shapes") or op.get("shapes") or op.get("input_shape")
    return "" if v is None else str(v)


def top_ops(df: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` operators with the most self time per (config, model, batch), from ``extra.top_ops``,
    with a ``path`` column (``slow``/``fast`` for convolution kernels) and the input shapes if recorded."""
    recs = []
    cols = ["config", "model", "batch_size", "rank", "op", "kind", "calls", "self_time_us", "share", "shapes", "path"]
    for _, r in ok_rows(df).iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        ops = ex.get("top_ops")
        if r["suite"] != "profile" or not isinstance(ops, list):
            continue
        ops = [o for o in ops if isinstance(o, dict) and o.get("op")]
        for i, o in enumerate(ops[:n], 1):
            name = str(o["op"])
            recs.append({"config": r["config"], "model": r["model"], "batch_size": r["batch_size"], "rank": i,
                         "op": name, "kind": o.get("kind"), "calls": o.get("calls"),
                         "self_time_us": o.get("self_time_us"), "share": o.get("share"), "shapes": _shapes(o),
                         "path": "slow" if SLOW_CONV.search(name) else ("fast" if FAST_CONV.search(name) else "")})
    return pd.DataFrame(recs, columns=cols)


def conv_paths(df: pd.DataFrame) -> pd.DataFrame:
    """Per (config, model, batch): which convolution path ran (over every recorded operator) and the
    slow kernels' names and share of time."""
    recs = []
    for _, r in ok_rows(df).iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        ops = ex.get("top_ops")
        if r["suite"] != "profile" or not isinstance(ops, list):
            continue
        ops = [o for o in ops if isinstance(o, dict) and o.get("op")]
        slow = [o for o in ops if SLOW_CONV.search(str(o["op"]))]
        recs.append({"config": r["config"], "model": r["model"], "batch_size": r["batch_size"],
                     "path": conv_path([str(o["op"]) for o in ops]),
                     "slow_ops": ", ".join(sorted({str(o["op"]) for o in slow})),
                     "slow_share": sum(float(o.get("share") or 0) for o in slow) if slow else None})
    return pd.DataFrame(recs, columns=["config", "model", "batch_size", "path", "slow_ops", "slow_share"])
