"""Pareto fronts over any number of objectives, each minimised or maximised.

A point dominates another when it is at least as good in every objective and strictly better in
one. Points that tie exactly are all on the front (neither dominates). A point with a missing
(NaN/None) objective is never on the front and never dominates another.

With ``intervals`` (objective -> (low column, high column), e.g. the confidence interval of a median
latency), a point is better on that objective only *beyond the interval*: its whole interval lies on
the better side of the other's. Points whose intervals overlap are not ordered on that objective, so
neither dominates the other (9.30 ms and 9.34 ms with overlapping CIs both stay on the front). A
missing bound falls back to the point value.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

SENSES = ("min", "max")


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


def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, str],
                intervals: Mapping[str, tuple[str, str]] | None = None) -> pd.Series:
    """Boolean Series (index of ``df``): True where the row is Pareto-optimal for ``objectives``.

    ``objectives`` maps a column to ``"min"`` or ``"max"``, e.g. ``{"top1": "max", "latency_ms_p50": "min"}``;
    ``intervals`` maps an objective to its (low, high) columns: overlapping intervals never order two points.
    """
    x = _signed(df, objectives)
    valid = ~np.isnan(x).any(axis=1)
    pts = x[valid]
    if intervals:
        best, worst = (b[valid] for b in _bounds(df, objectives, x, intervals))
        # j beats i beyond the interval: j's worst end is better than i's best end (point objectives: values)
        le = (worst[None, :, :] <= best[:, None, :]).all(axis=2)
        lt = (worst[None, :, :] < best[:, None, :]).any(axis=2)
    else:
        # dominated[i]: some j is <= in all objectives and < in at least one
        le = (pts[None, :, :] <= pts[:, None, :]).all(axis=2)
        lt = (pts[None, :, :] < pts[:, None, :]).any(axis=2)
    dominated = (le & lt).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(valid)] = ~dominated
    return pd.Series(mask, index=df.index, name="pareto")


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str], sort_by: str | Sequence[str] | None = None,
                 intervals: Mapping[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """The Pareto-optimal rows of ``df``, sorted by ``sort_by`` (default: the first objective)."""
    front = df[pareto_mask(df, objectives, intervals)]
    by = sort_by if sort_by is not None else next(iter(objectives))
    return front.sort_values(by, kind="stable")
