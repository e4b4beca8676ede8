"""One self-contained HTML report (inline SVG plots, inline CSS, one inline sorting script, no network)
from one or more results folders: the sections of :mod:`reports.sections` laid out by
``templates/report.html.j2``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from reports import dense as dense_section
from reports import int8 as int8_section
from reports import sections
from reports.load import Run, load_run
from reports.report import Report
from reports.style import DEFAULT_REFERENCE

TEMPLATES = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                               loader=jinja2.FunctionLoader(lambda name: resources.files("reports").joinpath(
                                   "templates", name).read_text("utf-8")))


@dataclass(frozen=True)
class Page:
    """What the template reads: the title, when it was generated, and each section's data."""
    title: str
    generated: str
    header: sections.Header
    summary: sections.Summary
    pareto: list[sections.ParetoSource]
    batch: list[sections.Figure]
    drift: sections.Drift | None
    engines: sections.Engines | None
    ablations: sections.Ablations | None
    operators: sections.Operators
    training: sections.Training | None
    roofline: Markup | None
    accuracy: Markup
    failures: Markup | None
    runs: list[sections.RunEntry]
    dense: dense_section.Dense | None = None     # features/segment rows beside published downstream figures
    int8: int8_section.Int8 | None = None        # int8 against float32: speed-up and accuracy change


def page(report: Report, title: str | None = None) -> Page:
    """Every section of ``report`` (``title``: by default the hosts and run ids of its folders)."""
    if title is None:
        title = "lsnet-bench report: " + ", ".join(dict.fromkeys(sections.run_label(r) for r in report.runs))
    return Page(title=title, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                header=sections.header(report), summary=sections.summary(report), pareto=sections.pareto(report),
                batch=sections.batch(report), drift=sections.drift(report), engines=sections.engines(report),
                ablations=sections.ablations(report), operators=sections.operators(report),
                training=sections.training(report), roofline=sections.roofline(report),
                accuracy=sections.accuracy(report), failures=sections.failures(report), runs=sections.runs(report),
                dense=dense_section.section(report.dense, report.colors),
                int8=int8_section.section(report.df, report.colors))


def build_html(runs: list[Run], title: str | None = None, reference: str = DEFAULT_REFERENCE) -> str:
    """The report for ``runs`` (rows merged; panels per configuration, labelled by host and configuration)."""
    return TEMPLATES.get_template("report.html.j2").render(vars(page(Report(runs, reference), title)))


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
