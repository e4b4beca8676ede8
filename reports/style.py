"""The one place for the report's looks: a fixed colour per model family, the reference model, the
families of the ablations. Every figure and table of a report uses these, so colours never shift
between its figures."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

FAMILY_COLORS: dict[str, str] = {
    "lsnet": "#d62728",        # red: the subject of the suite
    "repvit": "#1f77b4",
    "efficientvit": "#2ca02c",
    "starnet": "#9467bd",
    "shvit": "#8c564b",
    "fasternet": "#e377c2",
    "fastvit": "#17becf",
    "mixer": "#ff7f0e",        # lsnet_t_mixer_* token-mixer ablations
}
# families not in FAMILY_COLORS take these in turn, in sorted order of their names
UNLISTED_COLORS: tuple[str, ...] = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#bcbd22", "#7f7f7f",
                                    "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
KIND_COLORS: dict[str, str] = {"conv": "#4c72b0", "ska": "#dd8452", "attention": "#55a868", "norm": "#c44e52",
                               "elementwise": "#8172b3", "other": "#937860"}
DEFAULT_REFERENCE = "lsnet_t"
ABLATION_PREFIX = "lsnet_t_mixer_"


def is_ablation(model: str) -> bool:
    """True for the LSNet-T token-mixer ablations (``lsnet_t_mixer_*``), which have their own section."""
    return str(model).startswith(ABLATION_PREFIX)


def family_of(model: str, family: str | None = None) -> str:
    """The colour family of ``model``: ``mixer`` for the ablations, else its family (or name prefix)."""
    if is_ablation(model):
        return "mixer"
    return (family.strip().lower() if isinstance(family, str) else "") or str(model).split("_")[0].lower()


def family_colors(families: Iterable[str]) -> dict[str, str]:
    """A colour per family: FAMILY_COLORS, plus UNLISTED_COLORS for the families of ``families`` that it
    does not list, in sorted order (distinct up to ``len(UNLISTED_COLORS)`` of them, then repeating)."""
    unlisted = sorted(set(families) - set(FAMILY_COLORS))
    return FAMILY_COLORS | {f: UNLISTED_COLORS[i % len(UNLISTED_COLORS)] for i, f in enumerate(unlisted)}


def color_of(model: str, family: str | None, colors: Mapping[str, str]) -> str:
    """The colour of ``model``'s family in ``colors`` (from :func:`family_colors`)."""
    return colors[family_of(model, family)]
