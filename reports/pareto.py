"""Pareto fronts over any number of objectives, each minimised or maximised.

A point dominates another when it is at least as good in every objective and strictly better in
one. Points that tie exactly are all on the front (neither dominates). A point with a missing
(NaN/None) objective is never on the front and never dominates another.

With ``intervals`` (objective -> (low column, high column), e.g. the confidence interval of a median
latency), a point is better on that objective only *beyond the interval*: its whole interval lies on
the better side of the other's. Points whose intervals overlap are not ordered on that objective, so
neither dominates the other (9.30 ms and 9.34 ms with overlapping CIs both stay on the front). A
missing bound falls back to the point value.

With ``paired`` (objective -> (group column, ratio low column, ratio high column)), two points whose
group values are equal (not missing) and who both have a ratio interval are ordered on that objective by
their paired ratios to the group's reference instead (time over the reference's, measured round by
round in one process: the machine's drift cancels in them): j beats i only when j's ratio high end is
below i's low end. The group value (:func:`pair_group`) says suite, engine, device, dtype, batch size,
run and reference; points without it keep the rule above. Ratios are times, so lower is better whatever
the objective's sense (latency ``min`` and throughput ``max`` alike).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

SENSES = ("min", "max")
PAIR_KEY = ("suite", "engine", "device", "dtype", "batch_size", "run_id", "ref_model")
# the report's tables (reports.tables.performance): latency from the smallest batch's row, throughput
# from the best batch's row, each with that row's ratio interval and pairing group
PAIRED = {"latency_ms_p50": ("pair_group", "ratio_ci_low", "ratio_ci_high"),
          "throughput_img_s": ("thr_pair_group", "thr_ratio_ci_low", "thr_ratio_ci_high")}


def pair_group(rows: pd.DataFrame) -> pd.Series:
    """Per row, the group within which its ``ratio_to_ref`` interval is comparable (``PAIR_KEY`` joined);
    None where the row has no ratio interval."""
    rows = rows.reindex(columns=[*PAIR_KEY, "ratio_ci_low", "ratio_ci_high"])
    has = rows[["ratio_ci_low", "ratio_ci_high", "ref_model"]].notna().all(axis=1)
    key = [" | ".join(map(str, k)) if h else None for k, h in zip(rows[list(PAIR_KEY)].itertuples(index=False), has)]
    return pd.Series(key, index=rows.index, dtype=object)


def _signed(df: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Objective values as a float matrix where smaller is always better."""
    if not objectives:
        raise ValueError("pareto needs at least one objective, e.g. {'top1': 'max', 'latency_ms_p50': 'min'}")
    cols = []
    for col, sense in objectives.items():
        if sense not in SENSES:
            raise ValueError(f"objective {col!r}: sense must be 'min' or 'max', got {sense!r}")
        if col not in df.columns:
            raise KeyError(f"objective column {col!r} not in the table (columns: {', '.join(map(str, df.columns))})")
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        cols.append(-v if sense == "max" else v)
    return np.stack(cols, axis=1)


def _bounds(df: pd.DataFrame, objectives: Mapping[str, str], x: np.ndarray,
            intervals: Mapping[str, tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) end of each point's interval per objective, signed so that smaller is better."""
    best, worst = x.copy(), x.copy()
    for i, (col, sense) in enumerate(objectives.items()):
        if col not in intervals:
            continue
        lo_col, hi_col = intervals[col]
        lo = pd.to_numeric(df[lo_col], errors="coerce").to_numpy(dtype=float) if lo_col in df.columns else x[:, i] * np.nan
        hi = pd.to_numeric(df[hi_col], errors="coerce").to_numpy(dtype=float) if hi_col in df.columns else x[:, i] * np.nan
        v = x[:, i] if sense == "min" else -x[:, i]
        lo, hi = np.where(np.isnan(lo), v, np.minimum(lo, v)), np.where(np.isnan(hi), v, np.maximum(hi, v))
        best[:, i], worst[:, i] = (lo, hi) if sense == "min" else (-hi, -lo)
    return best, worst


def _paired_beats(df: pd.DataFrame, cols: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(paired[i, j]: i and j have comparable ratios, beats[i, j]: j's ratio interval lies below i's)."""
    if not set(cols) <= set(df.columns):
        return np.zeros((len(df), len(df)), dtype=bool), np.zeros((len(df), len(df)), dtype=bool)
    group = df[cols[0]].to_numpy(dtype=object)
    lo, hi = (pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) for c in cols[1:])
    ok = pd.notna(group) & ~np.isnan(lo) & ~np.isnan(hi)
    paired = ok[:, None] & ok[None, :] & (group[:, None] == group[None, :])
    return paired, hi[None, :] < lo[:, None]


def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, str],
                intervals: Mapping[str, tuple[str, str]] | None = None,
                paired: Mapping[str, tuple[str, str, str]] | None = None) -> pd.Series:
    """Boolean Series (index of ``df``): True where the row is Pareto-optimal for ``objectives``.

    ``objectives`` maps a column to ``"min"`` or ``"max"``, e.g. ``{"top1": "max", "latency_ms_p50": "min"}``;
    ``intervals`` maps an objective to its (low, high) columns: overlapping intervals never order two points;
    ``paired`` maps an objective to (group, ratio low, ratio high) columns: points of one group are ordered
    on it by their ratio intervals only (see the module's docstring).
    """
    x = _signed(df, objectives)
    valid = ~np.isnan(x).any(axis=1)
    pts = x[valid]
    if intervals or paired:
        best, worst = _bounds(df, objectives, x, intervals or {})
        # j beats i beyond the interval: j's worst end is better than i's best end (point objectives: values)
        le = worst[None, :, :] <= best[:, None, :]
        lt = worst[None, :, :] < best[:, None, :]
        for k, col in enumerate(objectives):
            if paired and col in paired:   # within a pairing group, the ratio intervals alone order the points
                same, beats = _paired_beats(df, paired[col])
                le[:, :, k] = np.where(same, beats, le[:, :, k])
                lt[:, :, k] = np.where(same, beats, lt[:, :, k])
        le, lt = le[valid][:, valid].all(axis=2), lt[valid][:, valid].any(axis=2)
    else:
        # dominated[i]: some j is <= in all objectives and < in at least one
        le = (pts[None, :, :] <= pts[:, None, :]).all(axis=2)
        lt = (pts[None, :, :] < pts[:, None, :]).any(axis=2)
    dominated = (le & lt).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(valid)] = ~dominated
    return pd.Series(mask, index=df.index, name="pareto")


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str], sort_by: str | Sequence[str] | None = None,
                 intervals: Mapping[str, tuple[str, str]] | None = None,
                 paired: Mapping[str, tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """The Pareto-optimal rows of ``df``, sorted by ``sort_by`` (default: the first objective)."""
    front = df[pareto_mask(df, objectives, intervals, paired)]
    by = sort_by if sort_by is not None else next(iter(objectives))
    return front.sort_values(by, kind="stable")
