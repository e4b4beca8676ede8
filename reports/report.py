"""The merged rows of one report and the tables that its sections read, computed once."""
from __future__ import annotations

import pandas as pd

from reports import tables
from reports.fronts import latency_front
from reports.load import Run, combine
from reports.style import DEFAULT_REFERENCE, family_colors, family_of, is_ablation
from suites.core.schema import DEFAULT_TASK, resolution_pixels


class Report:
    """The rows of ``runs`` merged, with their accuracy, performance and per-model tables, the reference
    model, the number of each model in the figures and the colour of each family."""

    def __init__(self, runs: list[Run], reference: str = DEFAULT_REFERENCE):
        self.runs = runs
        self.all_df = combine(runs)
        # the sections of classifier rows read ``df``; features/segment rows (``dense``) have a section of their own
        # (reports.dense), so a classify and a dense row never meet in one table or figure
        self.df = self.all_df[self.all_df["task"] == DEFAULT_TASK].copy()
        self.dense = self.all_df[self.all_df["task"] != DEFAULT_TASK].copy()
        self.commands = {r.run_id: r.command or "" for r in runs}
        # int8 top-1 is its own figure (reports.int8 shows it beside float32's); it never stands for a model's top-1
        self.acc = tables.accuracy(self.df[self.df["dtype"] != "int8"])
        self.perf = tables.performance(self.df)
        self.facts = tables.model_facts(self.df)
        px = self.df["resolution"].map(resolution_pixels)   # the largest measured input (by pixels) per model
        self.resolution: pd.Series = self.df.assign(_px=px).dropna(subset=["_px"]).sort_values(
            "_px", kind="stable").groupby("model")["resolution"].last()
        models = sorted(set(self.df["model"].dropna()))
        self.reference = reference if reference in models else next((m for m in models if m.startswith("lsnet")),
                                                                    reference)
        main = sorted(m for m in models if not is_ablation(m))
        self.numbers = {m: i for i, m in enumerate(main + sorted(set(models) - set(main)), 1)}
        named = self.all_df.dropna(subset=["model"])
        self.colors = family_colors(family_of(m, f) for m, f in zip(named["model"], named["family"]))

    def front_members(self) -> dict[tuple[str, str], bool]:
        """(config, model) on the default latency front -> whether on the distilled one; the published
        figures (else the first source) per configuration."""
        source = tables.default_source(self.acc)
        if source is None or self.perf.empty:
            return {}
        return latency_front(self.perf, self.acc[self.acc["top1_source"] == source])
