"""The one place for the report's looks: a fixed colour per model family, the reference model, the
families of the ablations. Every figure and table of every report uses these, so colours never shift."""
from __future__ import annotations

FAMILY_COLORS: dict[str, str] = {
    "lsnet": "#d62728",        # red: the subject of the suite
    "repvit": "#1f77b4",
    "efficientvit": "#2ca02c",
    "starnet": "#9467bd",
    "shvit": "#8c564b",
    "fasternet": "#e377c2",
    "fastvit": "#17becf",
    "mixer": "#ff7f0e",        # lsnet_t_mixer_* token-mixer ablations
    "other": "#7f7f7f",
}
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
    fam = (family or "").strip().lower() or str(model).split("_")[0].lower()
    return fam if fam in FAMILY_COLORS else "other"


def color_of(model: str, family: str | None = None) -> str:
    """The fixed colour of ``model``'s family."""
    return FAMILY_COLORS[family_of(model, family)]
