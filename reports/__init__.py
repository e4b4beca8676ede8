"""Reports: result rows -> a self-contained HTML report with Pareto fronts; published facts.

``render(run_dir)`` writes ``run_dir/report.html``; ``lsnet-bench report DIR [DIR ...] [-o OUT]``
merges several results folders into one report. CSV and JSON stay the machine-readable outputs.
"""
from reports.pareto import pareto_front, pareto_mask
from reports.render import build_html, render, render_many

__all__ = ["build_html", "pareto_front", "pareto_mask", "render", "render_many"]
