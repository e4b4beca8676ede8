"""The ``ops`` suite as a roofline table: the SKA op alone per shape, backend and mode, its achieved
bandwidth against the device's copy bandwidth, and its speed against the ``official`` backend."""
from __future__ import annotations

import pandas as pd

from reports.tables import ok_rows, spread


def roofline(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok ``ops`` row: config, shape, backend, mode, batch, p50 with its interval, GB/s,
    % of copy bandwidth and ``vs_official`` (official p50 / this p50 at the same config, shape, mode, batch)."""
    ok = ok_rows(df)
    d = spread(ok[ok["suite"] == "ops"])
    cols = ["config", "shape", "backend", "mode", "batch_size", "latency_ms_p50", "err_lo", "err_hi", "gbps",
            "pct_copy_bw", "vs_official", "stable"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    for k in ("shape", "backend", "mode"):
        d[k] = [str((e if isinstance(e, dict) else {}).get(k, "")) for e in d["extra"]]
    key = ["config", "shape", "mode", "batch_size"]
    off = d[d["backend"] == "official"].groupby(key)["latency_ms_p50"].median()
    ref = [off.get(tuple(r)) for r in d[key].itertuples(index=False)]
    d["vs_official"] = pd.to_numeric(pd.Series(ref, index=d.index), errors="coerce") / d["latency_ms_p50"]
    return d[cols].sort_values(["config", "shape", "mode", "backend"], kind="stable").reset_index(drop=True)
