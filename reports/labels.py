"""The report's short texts: accuracy marks, milliseconds, latency with its interval, speed-ups and the
hover text of a point."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from reports import tables
from reports.htmltable import cell_text
from suites.core.schema import resolution_text


def _res(v: Any) -> str | None:
    """A resolution as the schema writes it (``224``, ``800x1333``); None when blank or unreadable."""
    try:
        return resolution_text(v)
    except ValueError:
        return None


def evaluated_elsewhere(eval_px: Any, resolution: Any) -> bool:
    """True where a top-1 was evaluated at another resolution than the one measured (both known; either may
    be a number or ``HxW`` text)."""
    a, b = _res(eval_px), _res(resolution)
    return a is not None and b is not None and a != b


def accuracy_marks(a: pd.Series, resolution: Any) -> str:
    """`` (d)`` for a distilled figure, `` †256px`` when evaluated at another resolution than ``resolution``."""
    text = " (d)" if pd.notna(a.get("distilled")) and bool(a.get("distilled")) else ""
    if evaluated_elsewhere(a.get("eval_px"), resolution):
        text += f" †{_res(a.get('eval_px'))}px"
    return text


def ms(v: float) -> str:
    """Milliseconds with about four significant digits."""
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def latency_text(r: pd.Series) -> str:
    """A row's latency p50 with its interval and its kind (``[9.61–10.09 CI]``), ``(unstable)`` when flagged."""
    v = r.get("latency_ms_p50")
    if v is None or v != v:
        return "—"
    text = ms(v)
    if r.get("err_lo") == r.get("err_lo") and r.get("err_hi") == r.get("err_hi") and r.get("spread_kind"):
        text += f" [{ms(r['err_lo'])}–{ms(r['err_hi'])} {r['spread_kind']}]"
    return text + (" (unstable)" if r.get("stable") is False else "")


def speedup(col: str) -> Callable[[pd.Series], str]:
    """The text of a speed-up column from :func:`reports.tables.relative` (value, interval, paired or not)."""
    return lambda r: tables.speedup_text(r.get(col), r.get(f"{col}_lo"), r.get(f"{col}_hi"),
                                         bool(r.get(f"{col}_paired")))


def point_tip(r: pd.Series, commands: dict[str, str]) -> str:
    """The hover text of a Pareto point: model, configuration, top-1, costs, paired ratio, stability, command."""
    parts = [f"{r['model']} · {r.get('config', '')}"]
    if "top1" in r and r["top1"] == r["top1"]:
        parts.append(f"top-1 {r['top1']:.2f}%" + (f" [{r['top1_source']}]" if "top1_source" in r else ""))
    if r.get("latency_ms_p50") == r.get("latency_ms_p50") and r.get("latency_ms_p50") is not None:
        parts.append(f"latency p50 {r['latency_ms_p50']:.3f} ms [{r.get('err_lo', float('nan')):.3f} .. "
                     f"{r.get('err_hi', float('nan')):.3f}] ({r.get('spread_kind') or 'no spread'})")
    for c, unit in (("throughput_img_s", "img/s"), ("peak_mem_mb", "MB"), ("gmacs", "GMACs"), ("params_m", "M params"),
                    ("parity_rel", "parity rel")):
        if c in r and r[c] == r[c] and r[c] is not None:
            parts.append(f"{cell_text(c, r[c])} {unit}")
    if tables.ratio_text(r) != "—":
        parts.append(f"vs {r.get('ref_model')}: {tables.ratio_text(r)} (paired rounds)")
    if r.get("stable") is False:
        parts.append("UNSTABLE: " + str(r.get("warnings") or "timing not trusted"))
    cmd = commands.get(str(r.get("command_run")))
    if cmd:
        parts.append(f"command: {cmd}")
    return "\n".join(parts)
