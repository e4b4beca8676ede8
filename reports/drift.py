"""Machine drift over an interleaved run: the reference model's median time per call in each round.

In the interleaved protocol every cell of a comparison group is measured once per round, round after
round, in one process; ``extra`` of a timed row keeps ``round_medians_ms`` and ``round_starts_unix_s``.
The reference row of each group (``model == ref_model``) shows how the machine itself drifted over the
run (clocks, heat, neighbours). The ratios are paired per round, so this drift cancels in them; the
cells' own latency intervals, taken over the round medians, include it.
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from reports.tables import ok_rows

COLUMNS = ["run_label", "group", "round", "t_s", "ms"]


def _numbers(v) -> list[float] | None:
    if not isinstance(v, list) or not v:
        return None
    if not all(isinstance(x, numbers.Number) and not isinstance(x, bool) and x == x for x in v):
        return None
    return [float(x) for x in v]


def _starts(ex) -> list[float] | None:
    return _numbers(ex.get("round_starts_unix_s")) if isinstance(ex, dict) else None


def reference_rounds(df: pd.DataFrame) -> pd.DataFrame:
    """One row per round of each group's reference row: ``run_label``, ``group`` (suite · engine · dtype ·
    batch, with the device where a run has several), ``round``, ``t_s`` (seconds since the run's first
    round, over all its rows) and ``ms`` (the reference's median ms per call in that round)."""
    if df.empty or "extra" not in df.columns:
        return pd.DataFrame(columns=COLUMNS)
    run = df["run_label"] if "run_label" in df.columns else df["run_id"]
    starts = [min(s) if s else np.nan for s in map(_starts, df["extra"])]
    t0 = pd.Series(starts, index=df.index).groupby(run).min()
    devices = df.groupby(run)["device"].nunique()
    ok = ok_rows(df)
    ok = ok[ok["model"] == ok["ref_model"]]
    recs = []
    for i, r in ok.iterrows():
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        ms, st = _numbers(ex.get("round_medians_ms")), _starts(ex)
        if ms is None or st is None or len(ms) != len(st):
            continue
        bs = r["batch_size"]
        group = " · ".join([str(r["suite"]), str(r["engine"]), str(r["dtype"]),
                            f"bs{int(bs)}" if bs == bs and bs is not None else "bs?"]
                           + ([str(r["device"])] if devices[run[i]] > 1 else []))
        recs += [{"run_label": run[i], "group": group, "round": k, "t_s": s - t0[run[i]], "ms": m}
                 for k, (s, m) in enumerate(zip(st, ms))]
    return pd.DataFrame(recs, columns=COLUMNS)


def spread(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per (run, group): rounds, the median of the round medians, max/min and p90/p10 of them."""
    cols = ["run_label", "group", "n_rounds", "median_ms", "max_over_min", "p90_over_p10"]
    out = [{"run_label": run, "group": g, "n_rounds": len(d), "median_ms": float(d["ms"].median()),
            "max_over_min": d["ms"].max() / d["ms"].min(),
            "p90_over_p10": np.percentile(d["ms"], 90) / np.percentile(d["ms"], 10)}
           for (run, g), d in rounds.groupby(["run_label", "group"], sort=True) if d["ms"].min() > 0]
    return pd.DataFrame(out, columns=cols)


def caption(spreads: pd.DataFrame, reference: str | None = None) -> str:
    """The figure's caption in words: the largest spread of the reference's round medians, and why the
    ratios do not carry it."""
    who = reference or "the reference"
    worst = spreads.loc[spreads["max_over_min"].idxmax()]
    many = len(spreads) > 1
    return (f"The round medians of {who} spread by up to {worst['max_over_min']:.3f}× (max/min) and "
            f"{spreads['p90_over_p10'].max():.3f}× (p90/p10)"
            + (f" over {len(spreads)} groups (largest: {worst['group']})" if many else f" ({worst['group']})")
            + ". The ratios are paired per round (each cell over the reference in the same round), so this "
              "drift cancels in them; the cells' own latency intervals, over the round medians, include it.")
