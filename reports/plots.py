"""Matplotlib figures rendered to inline SVG strings (no files, no network), with hover text.

Every point carries an SVG ``<title>`` (its row's values and the command), shown by the browser on
hover. Colours come from :mod:`reports.style` (one colour per family, the same in every figure of a report),
which points are on a front from :mod:`reports.fronts`.
"""
from __future__ import annotations

import html
import io
import re
import uuid

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from reports.fronts import INTERVALS, distilled, on_front  # noqa: E402
from reports.style import KIND_COLORS, color_of, family_of  # noqa: E402
from suites.core.schema import OP_KINDS  # noqa: E402

PANEL_W, PANEL_H = 6.4, 4.6
LOG_RATIO = 8.0  # use a log axis when the data spans more than this factor
MARKERS = ("o", "s", "^", "v", "P", "X", "<", ">", "h")

# x metric of a Pareto figure -> its axis label
PARETO_X = {
    "latency_ms_p50": "latency p50 (ms, smallest batch)",
    "throughput_img_s": "throughput (images/s, best batch)",
    "gmacs": "GMACs per image",
    "peak_mem_mb": "peak memory (MB, smallest batch)",
}


class Titles:
    """Hover texts for artists of one figure: ``tag(artist, text)`` gives the artist a unique SVG id;
    ``tag_each(collection, texts)`` gives each point of one scatter its own text (one artist for many
    points: a figure of thousands of points renders in a second, not a minute)."""

    def __init__(self) -> None:
        self.prefix = "p" + uuid.uuid4().hex[:10]
        self.items: dict[str, str] = {}
        self.points: dict[str, list[str]] = {}

    def _gid(self, artist) -> str:
        gid = f"{self.prefix}-{len(self.items) + len(self.points)}"
        artist.set_gid(gid)
        return gid

    def tag(self, artist, text: str) -> None:
        self.items[self._gid(artist)] = text

    def tag_each(self, collection, texts: list[str]) -> None:
        if len(texts) != len(collection.get_offsets()):
            raise ValueError(f"{len(texts)} hover texts for a scatter of {len(collection.get_offsets())} points")
        self.points[self._gid(collection)] = list(texts)


_USE = re.compile(r"<use [^>]*?/>")
_G = re.compile(r"<g[ >]|</g>")


def _group_end(svg: str, start: int) -> int:
    """The index just past the ``</g>`` that closes the ``<g>`` opening at ``start``."""
    depth = 0
    for m in _G.finditer(svg, start):
        depth += 1 if m.group(0) != "</g>" else -1
        if depth == 0:
            return m.end()
    raise ValueError("unclosed <g> in the SVG")


def _title_group(svg: str, gid: str, text: str) -> str:
    """Give group ``gid`` the hover ``<title>`` ``text``."""
    return svg.replace(f'<g id="{gid}">', f'<g id="{gid}" class="pt"><title>{html.escape(text)}</title>', 1)


def _title_each_use(svg: str, gid: str, texts: list[str]) -> str:
    """Give each marker (``<use>``) of group ``gid`` its text as a ``<title>``, in order. Where the SVG
    writer drew the points otherwise (inline paths for one or two points, markers off the canvas
    dropped), the group gets them all as one title instead."""
    start = svg.index(f'<g id="{gid}">')
    end = _group_end(svg, start)
    block = svg[start:end]
    uses = list(_USE.finditer(block))
    if len(uses) != len(texts):
        return _title_group(svg, gid, "\n".join(texts))
    out, pos = [], 0
    for text, m in zip(texts, uses):
        out += [block[pos:m.start()], m.group(0)[:-2].replace("<use ", '<use class="pt" ', 1),
                f"><title>{html.escape(text)}</title></use>"]
        pos = m.end()
    return svg[:start] + "".join(out) + block[pos:] + svg[end:]


def to_svg(fig: plt.Figure, titles: Titles | None = None) -> str:
    """The figure as an inline ``<svg>`` element with the hover ``<title>``s; closes the figure."""
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": uuid.uuid4().hex}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    for gid, text in (titles.items if titles else {}).items():
        svg = _title_group(svg, gid, text)
    for gid, texts in (titles.points if titles else {}).items():
        svg = _title_each_use(svg, gid, texts)
    return svg


def _log_if_wide(ax: plt.Axes, values: pd.Series, axis: str) -> None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    if len(v) >= 2 and v.max() / v.min() > LOG_RATIO:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def model_markers(models: list[str]) -> dict[str, str]:
    """A marker per model, distinct within a family (colour tells the family, marker the member)."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for m in sorted(set(models)):
        fam = family_of(m)
        out[m] = MARKERS[seen.get(fam, 0) % len(MARKERS)]
        seen[fam] = seen.get(fam, 0) + 1
    return out


def _grid(n: int, max_cols: int = 2) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = max(1, min(n, max_cols))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _point(ax: plt.Axes, titles: Titles, x: float, y: float, color: str, marker: str, hollow: bool, size: float,
           edge: str, tip: str, lw: float = 1.0) -> None:
    art = ax.scatter([x], [y], s=size, marker=marker, facecolors="white" if hollow else color,
                     edgecolors=color if hollow else edge, linewidths=2.0 if hollow else lw, zorder=3)
    titles.tag(art, tip)


def pareto_figure(data: pd.DataFrame, x: str, source: str, panels: list[str], numbers: dict[str, int],
                  colors: dict[str, str]) -> str:
    """Accuracy (``top1``, from ``source``) vs metric ``x``: one panel per ``panel`` value.

    Points are numbered (``numbers``: model -> number, listed in the report's key) and coloured by family
    (``colors``, from :func:`reports.style.family_colors`). Non-distilled figures
    (circles) and distilled ones (diamonds) have separate fronts (solid and dashed lines; front members
    outlined black); a ``†`` marks a published figure evaluated at another resolution than measured;
    hollow points are unstable timings; latency points carry their interval as error bars, and points
    whose intervals overlap are not ordered. Rows need ``distilled``, ``eval_mismatch``, ``stable``, ``tip``.
    """
    titles = Titles()
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        d = data[data["panel"] == panel].dropna(subset=[x, "top1"])
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(PARETO_X[x])
        ax.set_ylabel(f"top-1 (%) [{source}]")
        ax.grid(True, which="both", alpha=0.3)
        if d.empty:
            ax.text(0.5, 0.5, "no rows with both values", ha="center", va="center", transform=ax.transAxes)
            continue
        on = on_front(d, x, distilled(d))
        for dist, g in d.groupby(distilled(d)):
            front = g[on[g.index]].sort_values(x)
            ax.plot(front[x], front["top1"], "--" if dist else "-", color="0.3", lw=1.2, zorder=1)
        if x in INTERVALS:
            lo, hi = d["err_lo"].fillna(d[x]), d["err_hi"].fillna(d[x])
            ax.errorbar(d[x], d["top1"], xerr=[np.clip(d[x] - lo, 0, None), np.clip(hi - d[x], 0, None)], fmt="none",
                        ecolor="0.45", elinewidth=1, capsize=2, zorder=2)
        for i, r in d.iterrows():
            dist = bool(r["distilled"]) if r["distilled"] == r["distilled"] and r["distilled"] is not None else False
            _point(ax, titles, r[x], r["top1"], color_of(r["model"], r.get("family"), colors), "D" if dist else "o",
                   r.get("stable") is False, 120 if on[i] else 55, "black" if on[i] else "white",
                   r["tip"] + ("\nPareto-optimal" if on[i] else ""), 1.6 if on[i] else 0.6)
            label = f"{numbers.get(r['model'], '?')}" + ("*" if on[i] else "") + ("†" if r.get("eval_mismatch") else "")
            ax.annotate(label, (r[x], r["top1"]), fontsize=8, xytext=(5, 4), textcoords="offset points")
        _log_if_wide(ax, d[x], "x")
    shown = sorted({family_of(m, f) for m, f in zip(data["model"], data["family"])})
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[f], label=f) for f in shown]
    handles += [plt.Line2D([], [], marker="o", ls="-", color="0.3", mfc="white", mec="black", label="non-distilled front"),
                plt.Line2D([], [], marker="D", ls="--", color="0.3", mfc="white", mec="black", label="distilled front"),
                plt.Line2D([], [], marker="o", ls="", mfc="white", mec="0.3", mew=2, label="unstable (hollow)")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), bbox_to_anchor=(0.5, -0.01),
               frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08 if len(panels) <= 2 else 0.04, 1, 1))
    return to_svg(fig, titles)


def batch_figure(rows: pd.DataFrame, y: str, ylabel: str, colors: dict[str, str]) -> str:
    """``y`` against batch size, a line per model (family colour from ``colors``, member marker), a panel per
    configuration (``panel``); error bars from ``err_lo``/``err_hi`` when present; unstable points hollow."""
    d = rows.dropna(subset=[y, "batch_size"])
    panels = sorted(d["panel"].unique())
    markers = model_markers(list(d["model"]))
    titles = Titles()
    fig, axes = _grid(len(panels))
    has_err = {"err_lo", "err_hi"} <= set(d.columns)
    for ax, panel in zip(axes, panels):
        p = d[d["panel"] == panel].sort_values(["model", "batch_size"])
        for model, g in p.groupby("model", sort=True):
            g = g.groupby("batch_size", as_index=False).agg(
                **{y: (y, "median")}, lo=("err_lo" if has_err else y, "min"), hi=("err_hi" if has_err else y, "max"),
                stable=("stable", lambda s: not (s == False).any()),  # noqa: E712
                family=("family", "first"), tip=("tip", "first") if "tip" in p.columns else (y, "first"))
            c = color_of(model, g["family"].iloc[0], colors)
            ax.plot(g["batch_size"], g[y], "-", color=c, lw=1.3, alpha=0.8, zorder=1)
            if has_err:
                lo, hi = g["lo"].fillna(g[y]), g["hi"].fillna(g[y])
                ax.errorbar(g["batch_size"], g[y], yerr=[np.clip(g[y] - lo, 0, None), np.clip(hi - g[y], 0, None)],
                            fmt="none", ecolor=c, elinewidth=1, capsize=2, zorder=2)
            for _, r in g.iterrows():
                tip = f"{model} · batch {int(r['batch_size'])}\n{ylabel}: {r[y]:.4g}"
                if has_err and r["lo"] == r["lo"] and r["hi"] == r["hi"]:
                    tip += f" [{r['lo']:.4g} .. {r['hi']:.4g}]"
                _point(ax, titles, r["batch_size"], r[y], c, markers[model], not r["stable"], 36, "white",
                       tip + (f"\n{r['tip']}" if "tip" in p.columns and isinstance(r["tip"], str) else ""))
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(p["batch_size"].unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        _log_if_wide(ax, p[y], "y")
    families = d.groupby("model")["family"].first()
    models = sorted(d["model"].unique())
    handles = [plt.Line2D([], [], marker=markers[m], color=color_of(m, families.get(m), colors), label=m)
               for m in models]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), bbox_to_anchor=(0.5, -0.01),
               frameon=False, fontsize=8)
    nrows = -(-len(panels) // 2) if panels else 1
    fig.tight_layout(rect=(0, min(0.25, 0.035 * (-(-len(models) // 5)) / nrows * 2), 1, 1))
    return to_svg(fig, titles)


def op_share_figure(shares: pd.DataFrame) -> str:
    """Stacked horizontal bars of the per-kind operator time share, a bar per model, a panel per configuration."""
    kinds = [k for k in OP_KINDS if k in set(shares["kind"])]
    kinds += sorted(set(shares["kind"]) - set(kinds))
    colors = {k: KIND_COLORS.get(k, "#bbbbbb") for k in kinds}
    panels = sorted(shares["panel"].unique())
    titles = Titles()
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        p = shares[shares["panel"] == panel]
        p = p.assign(label=p["model"] + " @bs" + p["batch_size"].map(lambda b: "?" if pd.isna(b) else str(int(b))))
        wide = p.pivot_table(index="label", columns="kind", values="share", aggfunc="mean").fillna(0)
        wide = wide.reindex(columns=[k for k in kinds if k in wide.columns])
        left = np.zeros(len(wide))
        for kind in wide.columns:
            bars = ax.barh(wide.index, wide[kind] * 100, left=left, color=colors[kind], label=kind)
            for lab, bar, v in zip(wide.index, bars, wide[kind]):
                titles.tag(bar, f"{lab}: {kind} {v:.1%} of operator time")
            left += wide[kind].to_numpy() * 100
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of operator time (%)")
        ax.set_title(panel, fontsize=10)
        ax.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k], label=k) for k in kinds]
    fig.legend(handles=handles, loc="lower center", ncol=len(kinds), bbox_to_anchor=(0.5, -0.01), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return to_svg(fig, titles)


def drift_figure(rounds: pd.DataFrame) -> str:
    """Each group's reference: its median ms per call in each round against the time since the run's
    first round, a line per group (``group``), a panel per run (``run_label``); hover a point for its round."""
    panels = sorted(rounds["run_label"].unique())
    groups = sorted(rounds["group"].unique())
    colors = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    titles = Titles()
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        p = rounds[rounds["run_label"] == panel]
        for group, g in p.groupby("group", sort=True):
            g = g.sort_values("t_s")
            ax.plot(g["t_s"], g["ms"], "-", color=colors[group], lw=1.2, alpha=0.8, zorder=1)
            art = ax.scatter(g["t_s"], g["ms"], s=18, color=colors[group], zorder=2)
            titles.tag_each(art, [f"{group} · round {int(k) + 1}\n{ms:.4g} ms at {t:.1f} s"
                                  for k, ms, t in zip(g["round"], g["ms"], g["t_s"])])
        ax.set_xlabel("time since the run's first round (s)")
        ax.set_ylabel("reference ms per call (round median)")
        ax.set_title(f"run {panel}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        _log_if_wide(ax, p["ms"], "y")
    handles = [plt.Line2D([], [], marker="o", color=colors[g], label=g) for g in groups]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), bbox_to_anchor=(0.5, -0.01),
               frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, min(0.3, 0.05 * -(-len(groups) // 3)), 1, 1))
    return to_svg(fig, titles)
