"""What a run prints when it ends: the summary table and the machine's drift."""
from __future__ import annotations

import math
from typing import Any

from suites.core.schema import MODEL_PLACEHOLDER, reason_template


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def _label(r: dict[str, Any]) -> Any:
    """A row's model as the table names it: ``lsnet_t``, or ``lsnet_t [features]`` for another task than classify
    (tasks are never merged into one line)."""
    task = r.get("task")
    return r.get("model") if task in (None, "", "classify") else f"{r.get('model')} [{task}]"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one line per model and configuration (engine, device, dtype, layout, batch) with
    its latency, throughput and memory rows merged, the spread of the latency (CI of the median, else
    p50..p90), the model's MACs and top-1; ``train`` and ``ops`` rows get lines of their own. Skip and
    error reasons are printed in full once each, as numbered footnotes referenced from the lines; reasons
    that differ only in the model are one footnote listing the models."""
    per_model: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("suite") in ("flops", "accuracy"):
            m = per_model.setdefault(_label(r), {})
            for c in ("gmacs", "top1"):
                if r.get(c) is not None and m.get(c) is None:
                    m[c] = r[c]
    reasons: dict[str, int] = {}
    models_of: dict[str, list[str]] = {}
    lines: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        suite = r.get("suite")
        if suite in ("flops", "accuracy", "profile") and r.get("status") == "ok":
            continue
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        kind = {"train": "train", "ops": f"ops {extra.get('backend', '')}/{extra.get('mode', '')}"}.get(suite, "")
        key = (_label(r), kind, r.get("engine") or "eager", r.get("device"), r.get("dtype"),
               "NHWC" if r.get("channels_last") in (True, "True") else "NCHW",
               "compiled" if r.get("compile") in (True, "True") and r.get("engine") != "compile" else "",
               str(r.get("batch_size")))
        line = lines.setdefault(key, {"notes": []})
        if r.get("status") != "ok":
            reason = r.get("error") or "(no reason recorded)"
            reason = reason_template(reason, str(r.get("model")))
            n = reasons.setdefault(reason, len(reasons) + 1)
            models_of.setdefault(reason, []).append(str(r.get("model")))
            line["notes"].append(f"{suite} {r.get('status')} [{n}]")
            continue
        for c in ("latency_ms_p50", "latency_ms_p90", "latency_ms_ci_low", "latency_ms_ci_high", "throughput_img_s",
                  "peak_mem_mb", "gbps", "ratio_to_ref", "ratio_ci_low", "ratio_ci_high", "ref_model"):
            if r.get(c) is not None and line.get(c) is None:
                line[c] = r[c]
        if r.get("stable") is False or r.get("stable") == "False":
            line["notes"].append(f"{suite} unstable")
    for model, m in per_model.items():
        if not any(k[0] == model for k in lines):
            lines[(model, "", "-", "-", "-", "-", "", "-")] = {"notes": []}

    def spread(ln: dict[str, Any]) -> str:
        p50 = ln.get("latency_ms_p50")
        if p50 is None:
            return "-"
        lo, hi = ln.get("latency_ms_ci_low"), ln.get("latency_ms_ci_high")
        if lo is not None and hi is not None:
            return f"{_fmt(p50)} [{_fmt(lo)}..{_fmt(hi)} CI]"
        return f"{_fmt(p50)} [..{_fmt(ln.get('latency_ms_p90'))} p90]" if ln.get("latency_ms_p90") is not None \
            else _fmt(p50)
    def ratio(ln: dict[str, Any]) -> str:
        r, lo, hi = ln.get("ratio_to_ref"), ln.get("ratio_ci_low"), ln.get("ratio_ci_high")
        if r is None:
            return "-"
        if ln.get("ref_model") == model.split(" [")[0]:
            return "ref"
        verdict = "slower" if lo > 1 else "faster" if hi < 1 else "same"
        return f"{r:.3f} [{lo:.3f}..{hi:.3f}] {verdict}"
    head = ("model", "kind", "engine", "device", "dtype", "layout", "bs", "latency p50 ms [spread]",
            "time / ref [paired CI]", "img/s", "mem MB", "GMACs", "top1", "notes")
    table = [head]
    for key in sorted(lines, key=lambda k: tuple(map(str, k))):
        ln, m = lines[key], ({} if key[1].startswith("ops") else per_model.get(key[0], {}))
        model, kind, engine, device, dtype, layout, comp, bs = key
        table.append((str(model), kind or "infer", engine + (f" ({comp})" if comp else ""), str(device), str(dtype),
                      layout, bs, spread(ln), ratio(ln), _fmt(ln.get("throughput_img_s"), 1), _fmt(ln.get("peak_mem_mb"), 1),
                      _fmt(m.get("gmacs"), 3), _fmt(m.get("top1")), ", ".join(dict.fromkeys(ln["notes"])) or "ok"))
    widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in table]
    out += [f"[{n}] {reason}" + (f"; {MODEL_PLACEHOLDER}: {', '.join(dict.fromkeys(models_of[reason]))}" if MODEL_PLACEHOLDER in reason else "")
            for reason, n in reasons.items()]
    return "\n".join(out)


def drift_lines(drift: list[dict[str, Any]]) -> list[str]:
    """One line per interleaved group: how far the reference's speed moved over the rounds."""
    return [f"machine drift ({d['suite']} {d['engine']} {d['device']} {d['dtype']} bs{d['batch_size']}): "
            f"{d['reference']} took {d['min_ms']:.3g}-{d['max_ms']:.3g} ms per call over {d['rounds']} rounds "
            f"({d['max_over_min']:.2f}x); time / ref ratios are paired round by round, so this drift cancels"
            for d in drift]
