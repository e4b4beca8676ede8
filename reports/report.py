"""The merged rows of one report and the tables that its sections read, computed once."""
from __future__ import annotations

import pandas as pd

from reports import tables
from reports.fronts import latency_front
from reports.load import Run, combine
from reports.style import DEFAULT_REFERENCE, family_colors, family_of, is_ablation


class Report:
    """The rows of ``runs`` merged, with their accuracy, performance and per-model tables, the reference
    model, the number of each model in the figures and the colour of each family."""

    def __init__(self, runs: list[Run], reference: str = DEFAULT_REFERENCE):
        self.runs = runs
        self.df = combine(runs)
        self.commands = {r.run_id: r.command or "" for r in runs}
        self.acc = tables.accuracy(self.df)
        self.perf = tables.performance(self.df)
        self.facts = tables.model_facts(self.df)
        self.resolution: pd.Series = self.df.groupby("model")["resolution"].max()
        models = sorted(set(self.df["model"].dropna()))
        self.reference = reference if reference in models else next((m for m in models if m.startswith("lsnet")),
                                                                    reference)
        main = sorted(m for m in models if not is_ablation(m))
        self.numbers = {m: i for i, m in enumerate(main + sorted(set(models) - set(main)), 1)}
        named = self.df.dropna(subset=["model"])
        self.colors = family_colors(family_of(m, f) for m, f in zip(named["model"], named["family"]))

    def front_members(self) -> dict[tuple[str, str], bool]:
        """(config, model) on the default latency front -> whether on the distilled one; the published
        figures (else the first source) per configuration."""
        source = tables.default_source(self.acc)
        if source is None or self.perf.empty:
            return {}
        return latency_front(self.perf, self.acc[self.acc["top1_source"] == source])
