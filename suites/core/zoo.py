"""The single model zoo: every name from ``lsnet/`` and ``baselines/`` resolves to a constructor."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

import baselines
import lsnet
from lsnet.model import create_model as _create_lsnet

GROUPS = ("lsnet", "baselines", "all")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, family (for reports) and constructor."""
    name: str
    family: str
    build: Callable[..., nn.Module]


def _registry() -> dict[str, ModelSpec]:
    reg = {n: ModelSpec(n, "lsnet", partial(_create_lsnet, n)) for n in lsnet.list_models()}
    reg.update({n: ModelSpec(n, fam, build) for n, (fam, build) in baselines.MODELS.items()})
    return reg


def names(group: str = "all") -> list[str]:
    """Model names in ``group``: ``lsnet``, ``baselines``, ``all``, or a family name."""
    reg = _registry()
    if group == "all":
        return list(reg)
    if group == "baselines":
        return [n for n, s in reg.items() if s.family != "lsnet"]
    chosen = [n for n, s in reg.items() if s.family == group]
    if not chosen:
        raise ValueError(f"unknown model group {group!r}; choose one of {', '.join(GROUPS)} or a family "
                         f"({', '.join(sorted({s.family for s in reg.values()}))})")
    return chosen


def spec(name: str) -> ModelSpec:
    """The registered spec of ``name``; ValueError listing valid names if unknown."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(reg)}")
    return reg[name]


def create(name: str, num_classes: int = 1000, img_size: int = 224, **kw) -> nn.Module:
    """Build model ``name`` (random init unless ``pretrained=PATH`` is passed where supported)."""
    return spec(name).build(num_classes=num_classes, img_size=img_size, **kw)
