"""Escaped, sortable HTML tables (the inline sorter is in the template; ``data-v`` holds the sort value)."""
from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from markupsafe import Markup

FMT = {"params_m": "{:.2f}", "gmacs": "{:.3f}", "latency_ms_p50": "{:.3f}", "latency_ms_p90": "{:.3f}",
       "throughput_img_s": "{:,.1f}", "peak_mem_mb": "{:,.1f}", "energy_j_per_img": "{:.4f}", "top1": "{:.2f}",
       "top5": "{:.2f}", "share": "{:.1%}", "slow_share": "{:.1%}", "parity_rel": "{:.1e}", "gbps": "{:.1f}",
       "pct_copy_bw": "{:.0f}%", "speedup": "{:.2f}×", "speedup_vs_eager": "{:.2f}×", "speedup_vs_base": "{:.2f}×",
       "vs_official": "{:.2f}×", "cost_ratio": "{:.2f}×", "self_time_us": "{:,.0f}", "train_step_ms": "{:.2f}",
       "train_img_s": "{:,.1f}", "train_peak_mem_mb": "{:,.1f}", "infer_ms": "{:.2f}", "infer_img_s": "{:,.1f}",
       "batch_size": "{:.0f}", "eval_px": "{:.0f}", "count": "{:d}"}
HEADERS = {"model": "model", "family": "family", "dtype": "dtype", "params_m": "params (M)", "gmacs": "GMACs",
           "latency_ms_p50": "latency p50 (ms)", "latency_ms_p90": "latency p90 (ms)",
           "throughput_img_s": "throughput (img/s)", "peak_mem_mb": "peak mem (MB)",
           "energy_j_per_img": "energy (J/img)", "top1_source": "top-1 source", "top1": "top-1 (%)",
           "top5": "top-5 (%)", "detail": "detail", "parity_rel": "parity (rel)", "batch_size": "batch",
           "speedup_vs_eager": "speed-up vs eager", "gbps": "GB/s", "pct_copy_bw": "% of copy BW",
           "vs_official": "vs official", "cost_ratio": "train / inference time", "self_time_us": "self time (µs)",
           "share": "share", "eval_px": "eval (px)", "distilled": "distilled", "config": "configuration",
           "error": "reason", "status": "status", "count": "rows", "batch_sizes": "batch sizes",
           "train_step_ms": "train step (ms)", "train_img_s": "train img/s", "train_peak_mem_mb": "train peak mem (MB)",
           "infer_ms": "inference (ms)", "infer_img_s": "inference img/s", "speedup_vs_base": "speed-up vs lsnet_t"}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def cell_text(col: str, v: Any) -> str:
    """``v`` formatted for column ``col`` (— when missing)."""
    if _missing(v):
        return "—"
    fmt = FMT.get(col) or (FMT["top1"] if col.startswith("top1 [") else None)
    if fmt and isinstance(v, int | float) and not isinstance(v, bool):
        try:
            return fmt.format(v)
        except ValueError:
            return fmt.replace(":d", ":.0f").format(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def html_table(df: pd.DataFrame, columns: list[str] | None = None, batch_of: Mapping[str, str] | None = None,
               render: Mapping[str, Callable[[pd.Series], str]] | None = None,
               row_class: Callable[[pd.Series], str] | None = None, headers: Mapping[str, str] | None = None,
               cls: str = "sortable") -> Markup:
    """An escaped HTML table. ``batch_of`` maps a column to the column of its batch size (shown as @bs);
    ``render`` maps a column to a function of the row giving its text (sorting still uses the raw value)."""
    columns = columns or list(df.columns)
    batch_of, render, heads = batch_of or {}, render or {}, {**HEADERS, **(headers or {})}

    def is_text(c: str) -> bool:
        return c in df.columns and df[c].map(lambda v: isinstance(v, str) or isinstance(v, bool)).any() \
            and not c.startswith("top1 [")
    text_cols = {c: is_text(c) for c in columns}
    head = "".join(f'<th class="{"t" if text_cols[c] else ""}">{html.escape(heads.get(c, c))}</th>' for c in columns)
    body = []
    for _, r in df.iterrows():
        tds = []
        for c in columns:
            v = r.get(c)
            text = render[c](r) if c in render else cell_text(c, v)
            b = r.get(batch_of[c]) if c in batch_of else None
            if text != "—" and b is not None and b == b:
                text += f" @bs{int(b)}"
            sort = "" if _missing(v) or not isinstance(v, int | float) or isinstance(v, bool) else f' data-v="{v}"'
            tds.append(f'<td class="{"t" if text_cols[c] else ""}"{sort}>{html.escape(text)}</td>')
        rc = row_class(r) if row_class else ""
        body.append(f'<tr class="{rc}">' + "".join(tds) + "</tr>")
    return Markup(f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
