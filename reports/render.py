"""One self-contained HTML report (inline SVG plots, inline CSS, one inline sorting script, no network)
from one or more results folders."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from reports import drift, plots, tables
from reports.engine_tables import best_engine, engine_rankings, engine_speedups
from reports.htmltable import cell_text, html_table
from reports.load import Run, combine, load_run
from reports.operators import conv_paths, top_ops
from reports.pareto import PAIRED, pareto_mask
from reports.roofline import roofline
from reports.style import DEFAULT_REFERENCE, family_of, is_ablation
from reports.training import train_rows, train_vs_inference

RULES = ("Latency (p50 with its interval: the CI of the median where recorded, else p50..p90), peak memory and "
         "energy are at the smallest batch size measured (shown as @bs; every batch size is in the batch-size "
         "figures); throughput is the best over the batch sizes measured. Params and MACs are per model. Each "
         "top-1 column is one source; published values are ImageNet-1k figures from the papers/timm, not measured "
         "here: (d) = distilled, † = evaluated at another resolution than measured.")
FAIR = ("Fair by default: distilled and non-distilled published figures are never on one front — non-distilled "
        "points (circles) form the solid front, distilled ones (diamonds, (d)) their own dashed front. A † marks a "
        "published top-1 evaluated at another resolution than the one measured (e.g. FastViT T8/T12 and SHViT-S4 "
        "at 256 px vs 224 px). The lsnet_t_mixer_* ablations are not on these fronts (see Ablations). A point is "
        "dominated only when another is better on both axes beyond its latency interval: points whose intervals "
        "overlap are not ordered; two cells measured interleaved in one group (same run, suite, engine, device, dtype, "
        "batch and reference) are ordered on latency/throughput by their paired ratio intervals instead. Hollow points "
        "are unstable timings.")
DEVICE_FREE_SUITES = ("accuracy", "flops")   # their numbers do not depend on the configuration
X_METRICS = ("latency_ms_p50", "throughput_img_s", "peak_mem_mb")


def _env_table(env: dict[str, Any]) -> Markup:
    rows = [(k, v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in env.items()]
    df = pd.DataFrame(rows, columns=["key", "value"]).astype(object)
    return html_table(df, cls="env") if rows else Markup("<p>No env.json in this folder.</p>")


def _bool_or_none(v: Any) -> bool | None:
    return None if v is None or (isinstance(v, float) and v != v) else bool(v)


def _acc_marks(a: pd.Series, resolution: Any) -> str:
    """`` (d)`` for a distilled figure, `` †256px`` when evaluated at another resolution than ``resolution``."""
    text = " (d)" if _bool_or_none(a.get("distilled")) else ""
    px = a.get("eval_px")
    if px is not None and px == px and resolution is not None and resolution == resolution and int(px) != int(resolution):
        text += f" †{int(px)}px"
    return text


def _ms(v: float) -> str:
    """Milliseconds with about four significant digits."""
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _speedup(col: str):
    """The text of a speed-up column from :func:`reports.tables.relative` (value, interval, paired or not)."""
    return lambda r: tables.speedup_text(r.get(col), r.get(f"{col}_lo"), r.get(f"{col}_hi"),
                                         bool(r.get(f"{col}_paired")))


def _tip(r: pd.Series, commands: dict[str, str]) -> str:
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


class Report:
    """The tables and figures of one report, computed once from the merged rows."""

    def __init__(self, runs: list[Run], reference: str = DEFAULT_REFERENCE):
        self.runs = runs
        self.df = combine(runs)
        self.commands = {r.run_id: r.command or "" for r in runs}
        self.acc = tables.accuracy(self.df)
        self.perf = tables.performance(self.df)
        self.facts = tables.model_facts(self.df)
        models = sorted(set(self.df["model"].dropna()))
        self.reference = reference if reference in models else next((m for m in models if m.startswith("lsnet")), reference)
        main = sorted(m for m in models if not is_ablation(m))
        self.numbers = {m: i for i, m in enumerate(main + sorted(set(models) - set(main)), 1)}

    # --- summary -------------------------------------------------------------------------------
    def front_members(self) -> dict[tuple[str, str], bool]:
        """(config, model) on the default latency front: published figures (else the first source), fair groups."""
        srcs = list(self.acc["top1_source"].unique())
        if not srcs or self.perf.empty:
            return {}
        src = tables.PUBLISHED_SOURCE if tables.PUBLISHED_SOURCE in srcs else srcs[0]
        d = self.perf.merge(self.acc[self.acc["top1_source"] == src][["model", "top1", "distilled"]], on="model")
        d = d[~d["model"].map(is_ablation)]
        out = {}
        for (_, dist), g in d.groupby([d["config"], d["distilled"].fillna(False).astype(bool)]):
            m = pareto_mask(g, {"top1": "max", "latency_ms_p50": "min"}, plots.INTERVALS, PAIRED)
            out |= {(c, mo): dist for c, mo in zip(g.loc[m, "config"], g.loc[m, "model"])}
        return out

    def summary_tables(self) -> list[tuple[str, Markup]]:
        summ = tables.summary(self.df, self.acc)
        summ = pd.concat([summ, tables.relative(summ, self.reference)], axis=1) if "latency_ms_p50" in summ \
            else summ.assign(speedup=float("nan"))
        front = self.front_members()
        summ["front"] = [("★ (d)" if front[(c, m)] else "★") if (c, m) in front else ""
                         for c, m in zip(summ["config"], summ["model"])]
        summ["#"] = summ["model"].map(self.numbers)
        top_cols = sorted(c for c in summ.columns if c.startswith("top1 ["))
        acc = self.acc.set_index(["model", "top1_source"])
        res = self.df.groupby("model")["resolution"].max()

        def top(col: str):
            src = col[len("top1 ["):-1]

            def f(r: pd.Series) -> str:
                v = r[col]
                if v != v or v is None:
                    return "—"
                a = acc.loc[(r["model"], src)] if (r["model"], src) in acc.index else pd.Series(dtype=object)
                return f"{v:.2f}" + _acc_marks(a, None if src.startswith("proxy") else res.get(r["model"]))
            return f

        def lat(r: pd.Series) -> str:
            v = r.get("latency_ms_p50")
            if v is None or v != v:
                return "—"
            text = _ms(v)
            if r.get("err_lo") == r.get("err_lo") and r.get("err_hi") == r.get("err_hi") and r.get("spread_kind"):
                text += f" [{_ms(r['err_lo'])}–{_ms(r['err_hi'])} {r['spread_kind']}]"
            return text + (" (unstable)" if r.get("stable") is False else "")
        cols = ["#", "model", "family", "params_m", "gmacs", *top_cols, "latency_ms_p50", "speedup", "throughput_img_s",
                "peak_mem_mb", "energy_j_per_img", "parity_rel", "front"]
        batch_of = {"latency_ms_p50": "latency_ms_p50_batch", "throughput_img_s": "throughput_img_s_batch",
                    "peak_mem_mb": "peak_mem_mb_batch", "energy_j_per_img": "energy_j_per_img_batch"}
        heads = {"speedup": f"× vs {self.reference}", "front": "Pareto", "#": "#"}
        out = []
        for cfg, g in summ.groupby("config", sort=True):
            g = g.sort_values(["model"], kind="stable").astype(object)
            keep = [c for c in cols if c in g.columns and (c in ("model", "#") or g[c].notna().any())]
            rc = (lambda r: ("lsnet " if family_of(r["model"], r.get("family")) == "lsnet" else "")
                  + ("unstable" if r.get("stable") is False else ""))
            out.append((cfg, html_table(g, keep, batch_of, {c: top(c) for c in top_cols} | {"latency_ms_p50": lat,
                                        "speedup": _speedup("speedup")}, rc, heads)))
        return out

    # --- figures ---------------------------------------------------------------------------------
    def pareto(self) -> list[tuple[str, list[tuple[str, Markup]], Markup]]:
        """Per top-1 source: the figures (one panel per configuration) and the key of the numbered points."""
        out = []
        res = self.df.groupby("model")["resolution"].max()
        for source, a in self.acc.groupby("top1_source", sort=True):
            a = a[~a["model"].map(is_ablation)][["model", "top1", "top1_source", "distilled", "eval_px"]]
            d = self.perf.merge(a, on="model")
            figs, fronts = [], {}
            if not d.empty:
                d = self._mark(d)
                d["panel"] = d["config"]
                panels = sorted(d["panel"].unique())
                for x in X_METRICS:
                    if d[x].notna().any():
                        figs.append((f"Top-1 vs {plots.PARETO_X[x][0]}",
                                     Markup(plots.pareto_figure(d, x, source, panels, self.numbers))))
                        fronts[x] = self._front_models(d, x)
            m = self.facts.merge(a, on="model")
            if m["gmacs"].notna().any():
                m = self._mark(m.assign(config="all devices", resolution=m["model"].map(res)))
                m["panel"] = "all devices (MACs are device-independent)"
                figs.insert(min(2, len(figs)), ("Top-1 vs GMACs", Markup(plots.pareto_figure(
                    m, "gmacs", source, [m["panel"].iloc[0]], self.numbers))))
                fronts["gmacs"] = self._front_models(m, "gmacs")
            if figs:
                key = a.assign(**{"#": a["model"].map(self.numbers)}).sort_values("#")
                on_lat = fronts.get("latency_ms_p50", set())
                key["model"] = [m + (" *" if m in on_lat else "") for m in key["model"]]
                key["fronts"] = [", ".join(plots.PARETO_X[x][0].split(" (")[0] for x, s in fronts.items()
                                           if mo in s) for mo in a.set_index(a.index)["model"].reindex(key.index)]
                key["eval_note"] = [_acc_marks(r, None if source.startswith("proxy") else res.get(mo)).strip()
                                    for (_, r), mo in zip(key.iterrows(), a["model"].reindex(key.index))]
                out.append((source, figs, html_table(key.astype(object), ["#", "model", "top1", "distilled", "eval_px",
                                                                          "eval_note", "fronts"],
                                                     headers={"fronts": "Pareto-optimal in", "eval_note": "note"})))
        return out

    def _mark(self, d: pd.DataFrame) -> pd.DataFrame:
        d = d.copy()
        res = d["resolution"] if "resolution" in d else d["model"].map(self.df.groupby("model")["resolution"].max())
        d["eval_mismatch"] = [px == px and px is not None and r == r and r is not None and int(px) != int(r)
                              and not str(s).startswith("proxy") for px, r, s in zip(d["eval_px"], res, d["top1_source"])]
        d["tip"] = [_tip(r, self.commands) for _, r in d.iterrows()]
        if "stable" not in d:
            d["stable"] = None
        return d

    @staticmethod
    def _front_models(d: pd.DataFrame, x: str) -> set[str]:
        iv = plots.INTERVALS if x in plots.INTERVALS else None
        out = set()
        for _, g in d.dropna(subset=[x, "top1"]).groupby([d["panel"], d["distilled"].fillna(False).astype(bool)]):
            out |= set(g.loc[pareto_mask(g, {"top1": "max", x: plots.PARETO_X[x][1]}, iv, PAIRED), "model"])
        return out

    def batch_figs(self) -> list[tuple[str, Markup]]:
        ok = tables.ok_rows(self.df)
        ok = tables.spread(ok[ok["suite"].isin(tables.INFERENCE_SUITES)])
        ok["panel"] = ok["config"]
        figs = []
        for y, label, suite in (("latency_ms_p50", "latency p50 (ms)", "latency"),
                                ("throughput_img_s", "throughput (images/s)", "throughput"),
                                ("peak_mem_mb", "peak memory (MB)", "memory")):
            d = ok[ok["suite"] == suite].dropna(subset=[y, "batch_size"])
            if y != "latency_ms_p50":
                d = d.drop(columns=["err_lo", "err_hi"])
            if not d.empty:
                figs.append((f"{label.split(' (')[0].capitalize()} vs batch size", Markup(plots.batch_figure(d, y, label))))
        return figs

    def drift(self) -> dict[str, Any] | None:
        """The reference's round medians over each interleaved run (see :mod:`reports.drift`), or None."""
        rounds = drift.reference_rounds(self.df)
        spreads = drift.spread(rounds)
        if spreads.empty:
            return None
        refs = sorted(set(tables.ok_rows(self.df)["ref_model"].dropna().astype(str)))
        return {"fig": Markup(plots.drift_figure(rounds)), "caption": drift.caption(spreads, " / ".join(refs) or None),
                "table": html_table(spreads.round(3).astype(object), headers={
                    "run_label": "run", "group": "group", "n_rounds": "rounds", "median_ms": "median (ms)",
                    "max_over_min": "max/min", "p90_over_p10": "p90/p10"})}

    def op_fig(self) -> Markup | None:
        shares = tables.op_shares(self.df)
        if shares.empty:
            return None
        shares["panel"] = shares["config"]
        return Markup(plots.op_share_figure(shares))

    def train(self) -> dict[str, Any] | None:
        tr = train_rows(self.df)
        if tr.empty:
            return None
        tr["panel"] = tr["config"]
        figs = [("Training throughput vs batch size", Markup(plots.batch_figure(
                    tr.drop(columns=["err_lo", "err_hi"]), "throughput_img_s", "training throughput (images/s)")))]
        if tr["peak_mem_mb"].notna().any():
            figs.append(("Training peak memory vs batch size", Markup(plots.batch_figure(
                tr.drop(columns=["err_lo", "err_hi"]), "peak_mem_mb", "training peak memory (MB)"))))
        figs.append(("Training step time vs batch size", Markup(plots.batch_figure(tr, "latency_ms_p50",
                                                                                    "training step p50 (ms)"))))
        tvi = train_vs_inference(self.df)
        return {"figs": figs, "table": html_table(tvi.astype(object))}

    # --- page -------------------------------------------------------------------------------------
    def html(self, title: str | None = None) -> str:
        df = self.df
        perf = self.perf
        unstable = perf[perf["stable"] == False]  # noqa: E712
        ab = tables.ablations(perf, self.acc, self.reference if self.reference.startswith("lsnet_t") else "lsnet_t")
        ab_cols = [c for c in ["config", "model", "params_m", "gmacs", "latency_ms_p50", "speedup_vs_base",
                               "throughput_img_s", "peak_mem_mb", *[c for c in ab.columns if c.startswith("top1 [")], "front"]
                   if c in ab.columns]
        abl_pts = tables.latency_points(df[df["model"].map(is_ablation) | (df["model"] == "lsnet_t")])
        abl_fig = Markup(plots.batch_figure(abl_pts.assign(panel=abl_pts["config"]), "latency_ms_p50",
                                            "latency p50 (ms)")) if not ab.empty and not abl_pts.empty else None
        sp = engine_speedups(df)
        tops = top_ops(df)
        paths = conv_paths(df)
        roof = roofline(df)
        fails = tables.failures(df)
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                 loader=jinja2.FunctionLoader(lambda name: resources.files("reports").joinpath(
                                     "templates", name).read_text("utf-8")))
        hosts = sorted(set(df["host"].dropna()))
        if title is None:
            title = "lsnet-bench report: " + ", ".join(dict.fromkeys(self._run_label(r) for r in self.runs))
        return env.get_template("report.html.j2").render(
            title=title, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), rules=RULES, fair=FAIR,
            reference=self.reference, hosts=hosts,
            configs=sorted(set(df.loc[~df["suite"].isin(DEVICE_FREE_SUITES), "config"].dropna())),
            summary_tables=self.summary_tables(), pareto=self.pareto(), batch_figs=self.batch_figs(),
            unstable=html_table(unstable.astype(object), ["config", "model", "warnings"]) if len(unstable) else None,
            ablations=html_table(ab.astype(object), ab_cols, render={"speedup_vs_base": _speedup("speedup_vs_base")})
            if not ab.empty else None, ablation_fig=abl_fig,
            engines=self._engine_table(sp) if not sp.empty else None,
            best_engines=self._engine_table(best_engine(sp)) if not sp.empty else None,
            drift=self.drift(),
            engine_ranks=html_table(engine_rankings(sp).astype(object)) if not sp.empty else None,
            op_fig=self.op_fig(),
            conv_paths=html_table(paths.astype(object), row_class=lambda r: "slow" if r["path"] == "slow" else "")
            if not paths.empty else None,
            top_ops=html_table(tops.astype(object), ["config", "model", "batch_size", "rank", "op", "kind", "calls",
                                                     "self_time_us", "share", "shapes", "path"],
                               row_class=lambda r: "slow" if r["path"] == "slow" else "") if not tops.empty else None,
            train=self.train(),
            roofline=html_table(roof.astype(object), ["config", "shape", "backend", "mode", "batch_size",
                                                      "latency_ms_p50", "gbps", "pct_copy_bw", "vs_official"])
            if not roof.empty else None,
            accuracy_table=html_table(self.acc.astype(object), ["model", "top1_source", "top1", "top5", "distilled",
                                                                "eval_px", "detail"]),
            failures=html_table(fails.astype(object)) if len(fails) else None,
            partial=[f"{self._run_label(r)}: {why}" for r in self.runs if (why := r.partial)],
            runs=[{"label": self._run_label(r), "path": str(r.path), "command": r.command,
                   "env_table": _env_table(r.env)} for r in self.runs])

    @staticmethod
    def _engine_table(sp: pd.DataFrame) -> Markup:
        cols = ["setting", "model", "batch_size", "engine", "latency_ms_p50", "speedup_vs_eager", "parity_rel"]
        render, heads = {}, {}
        if sp["ratio_to_ref"].notna().any():   # the paired speed-up over each engine's own reference
            cols.insert(6, "ratio_to_ref")
            render["ratio_to_ref"] = tables.ratio_text
            heads["ratio_to_ref"] = f"× vs {' / '.join(sorted(set(sp['ref_model'].dropna().astype(str))))} (paired)"
        return html_table(sp.astype(object), cols, render=render, headers=heads)

    @staticmethod
    def _run_label(run: Run) -> str:
        host = run.rows["host"].dropna().unique() if len(run.rows) else []
        return f"{', '.join(map(str, host)) or 'unknown host'} (run {run.run_id})"


def build_html(runs: list[Run], title: str | None = None, reference: str = DEFAULT_REFERENCE) -> str:
    """The report for ``runs`` (rows merged; panels per configuration, labelled by host and configuration)."""
    return Report(runs, reference).html(title)


def render(run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/report.html`` from that folder's results; returns its path."""
    out = Path(run_dir) / "report.html"
    out.write_text(build_html([load_run(run_dir)]), encoding="utf-8")
    return out


def render_many(run_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None,
                reference: str = DEFAULT_REFERENCE) -> Path:
    """Merge several results folders into one report (default: ``report.html`` in the first folder,
    or, for several, ``report.html`` in the current directory)."""
    if not run_dirs:
        raise ValueError("no results folders given; pass at least one folder written by a run")
    runs = [load_run(d) for d in run_dirs]
    path = Path(out) if out else (Path(run_dirs[0]) / "report.html" if len(run_dirs) == 1 else Path("report.html"))
    if path.is_dir():
        path = path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(runs, reference=reference), encoding="utf-8")
    return path
