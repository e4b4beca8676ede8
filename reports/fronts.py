"""Which points of the report are on a Pareto front: top-1 against one cost, per group, with distilled
and non-distilled figures never on one front.

Latency is compared beyond its interval (``err_lo``/``err_hi``) and, within one interleaved group, by the
paired ratio intervals (see :mod:`reports.pareto`). The ablations (``lsnet_t_mixer_*``) are never on the
default fronts.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from reports.pareto import PAIRED, pareto_mask
from reports.style import is_ablation

COST_SENSES = {"latency_ms_p50": "min", "throughput_img_s": "max", "gmacs": "min", "peak_mem_mb": "min"}
INTERVALS = {"latency_ms_p50": ("err_lo", "err_hi")}


def distilled(points: pd.DataFrame) -> pd.Series:
    """Per point, whether its top-1 is a distilled figure (unknown counts as not distilled)."""
    return points["distilled"].fillna(False).astype(bool)


def on_front(points: pd.DataFrame, cost: str, by: Any, top1: str = "top1") -> pd.Series:
    """True where a point is on the (``top1`` max, ``cost``) front of its group; ``by`` is what
    :meth:`pandas.DataFrame.groupby` takes. Points missing either value are never on a front."""
    on = pd.Series(False, index=points.index)
    for _, g in points.groupby(by):
        on[g.index] = pareto_mask(g, {top1: "max", cost: COST_SENSES[cost]}, INTERVALS, PAIRED)
    return on


def front_models(points: pd.DataFrame, cost: str) -> set[str]:
    """The models on the ``cost`` front of their panel (``panel``) and distilled group."""
    return set(points.loc[on_front(points, cost, [points["panel"], distilled(points)]), "model"])


def latency_front(perf: pd.DataFrame, top1: pd.DataFrame) -> dict[tuple[str, str], bool]:
    """(config, model) on the latency front of its configuration -> whether that is the distilled front;
    ``perf`` from :func:`reports.tables.performance`, ``top1`` the accuracy rows of one source."""
    d = perf.merge(top1[["model", "top1", "distilled"]], on="model")
    d = d[~d["model"].map(is_ablation)]
    dist = distilled(d)
    on = on_front(d, "latency_ms_p50", [d["config"], dist])
    return dict(zip(zip(d.loc[on, "config"], d.loc[on, "model"]), dist[on]))
