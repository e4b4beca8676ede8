"""Seaborn figures rendered to inline SVG strings (no files, no network)."""
from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from reports.pareto import pareto_mask  # noqa: E402
from schema import OP_KINDS  # noqa: E402

PANEL_W, PANEL_H = 6.0, 4.4
LOG_RATIO = 8.0  # use a log axis when the data spans more than this factor

# x metric -> (axis label, objective sense)
PARETO_X = {
    "latency_ms_p50": ("latency p50 (ms, smallest batch)", "min"),
    "throughput_img_s": ("throughput (images/s, best batch)", "max"),
    "gmacs": ("GMACs per image", "min"),
    "peak_mem_mb": ("peak memory (MB, smallest batch)", "min"),
}


def to_svg(fig: plt.Figure) -> str:
    """The figure as an inline ``<svg>`` element (XML prolog and DOCTYPE removed); closes the figure."""
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def _log_if_wide(ax: plt.Axes, values: pd.Series, axis: str) -> None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    if len(v) >= 2 and v.max() / v.min() > LOG_RATIO:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def family_palette(families: list[str]) -> dict[str, tuple]:
    """A fixed colour per model family (sorted), so every figure of a report agrees."""
    fams = sorted(set(families))
    return dict(zip(fams, sns.color_palette("tab10", max(len(fams), 1))))


def _grid(n: int, max_cols: int = 3) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def pareto_figure(data: pd.DataFrame, x: str, source: str, panels: list[str],
                  palette: dict[str, tuple] | None = None) -> str:
    """Accuracy (``top1``, from ``source``) vs metric ``x``: one panel per ``panel`` value, the Pareto
    front (max top-1, ``x`` by its sense) drawn as large outlined points joined by a line."""
    xlabel, sense = PARETO_X[x]
    pal = palette or family_palette(list(data["family"].fillna("other")))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        d = data[data["panel"] == panel].dropna(subset=[x, "top1"]).copy()
        d["family"] = d["family"].fillna("other")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"top-1 (%) [{source}]")
        ax.grid(True, which="both", alpha=0.3)
        if d.empty:
            ax.text(0.5, 0.5, "no rows with both values", ha="center", va="center", transform=ax.transAxes)
            continue
        on = pareto_mask(d, {"top1": "max", x: sense})
        front = d[on].sort_values(x)
        ax.plot(front[x], front["top1"], "-", color="0.25", lw=1.2, zorder=1, label="Pareto front")
        if (~on).any():
            sns.scatterplot(data=d[~on], x=x, y="top1", hue="family", palette=pal, s=40, alpha=0.75, ax=ax,
                            legend=False, zorder=2)
        sns.scatterplot(data=front, x=x, y="top1", hue="family", palette=pal, s=110, edgecolor="black",
                        linewidth=1.5, ax=ax, legend=False, zorder=3)
        for _, r in d.iterrows():
            ax.annotate(r["model"] + (" *" if on[r.name] else ""), (r[x], r["top1"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        _log_if_wide(ax, d[x], "x")
    shown = set(data["family"].fillna("other"))
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=f) for f, c in pal.items() if f in shown]
    handles.append(plt.Line2D([], [], marker="o", ls="-", color="0.25", mec="black", mew=1.5, ms=9,
                              label="Pareto-optimal (*)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), bbox_to_anchor=(0.5, -0.02),
               frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return to_svg(fig)


def batch_figure(rows: pd.DataFrame, y: str, ylabel: str) -> str:
    """``y`` against batch size, a line per model, a panel per (device, dtype); log axes where wide."""
    d = rows.dropna(subset=[y, "batch_size"])
    panels = sorted(d["panel"].unique())
    fig, axes = _grid(len(panels))
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        p = (d[d["panel"] == panel].groupby(["model", "batch_size"], as_index=False)[y].median())
        sns.lineplot(data=p, x="batch_size", y=y, hue="model", marker="o", ax=ax, legend=i == len(panels) - 1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(p["batch_size"].unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        _log_if_wide(ax, p[y], "y")
    if panels:
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return to_svg(fig)


def op_share_figure(shares: pd.DataFrame) -> str:
    """Stacked horizontal bars of the per-operator time share, a bar per model, a panel per (device, dtype)."""
    kinds = [k for k in OP_KINDS if k in set(shares["kind"])]
    kinds += sorted(set(shares["kind"]) - set(kinds))
    colors = dict(zip(kinds, sns.color_palette("Set2", len(kinds))))
    panels = sorted(shares["panel"].unique())
    fig, axes = _grid(len(panels), max_cols=2)
    for ax, panel in zip(axes, panels):
        p = shares[shares["panel"] == panel]
        p = p.assign(label=p["model"] + " @bs" + p["batch_size"].map(lambda b: "?" if pd.isna(b) else str(int(b))))
        wide = p.pivot_table(index="label", columns="kind", values="share", aggfunc="mean").fillna(0)
        wide = wide.reindex(columns=[k for k in kinds if k in wide.columns])
        left = np.zeros(len(wide))
        for kind in wide.columns:
            ax.barh(wide.index, wide[kind] * 100, left=left, color=colors[kind], label=kind)
            left += wide[kind].to_numpy() * 100
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of operator time (%)")
        ax.set_title(panel, fontsize=10)
        ax.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k], label=k) for k in kinds]
    fig.legend(handles=handles, loc="lower center", ncol=len(kinds), bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return to_svg(fig)
