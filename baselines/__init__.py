"""Re-implemented comparison models, one module per family, plus token-mixer swaps on LSNet.

``MODELS`` maps each registered name to ``(family, build)``; ``build(num_classes=1000,
img_size=224, **kw)`` (``img_size`` an int or an ``(H, W)`` pair) returns an ``nn.Module`` whose inference
form comes from ``lsnet.fuse``. :mod:`baselines.dense` runs any of them (and LSNet) as a multi-scale backbone
or a Semantic FPN segmenter.
Families: :mod:`baselines.mixers` (LSNet-T with other token mixers), :mod:`baselines.repvit`,
:mod:`baselines.efficientvit`, :mod:`baselines.starnet`, :mod:`baselines.shvit`,
:mod:`baselines.fasternet`, :mod:`baselines.fastvit`. Each module exposes its own ``MODELS`` and ``CONFIGS`` (or
``MIXERS``); this package merges them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from baselines import efficientformerv2, efficientvit, fasternet, fastvit, mixers, mobilenetv4, repvit, shvit, starnet
from baselines.checkpoint import load_checkpoint
from baselines import dense  # noqa: E402 (backbones and Semantic FPN on the families above)

FAMILY_MODULES = (mixers, repvit, efficientvit, starnet, shvit, fasternet, fastvit, efficientformerv2, mobilenetv4)

MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {}
for _mod in FAMILY_MODULES:
    MODELS.update(_mod.MODELS)


def list_models() -> list[str]:
    """Every baseline name (the released variants and the mixer swaps)."""
    return list(MODELS)


def create_model(name: str, num_classes: int = 1000, pretrained: str | None = None, **kw: Any) -> nn.Module:
    """Baseline ``name`` (see :func:`list_models`); ``pretrained`` = a local timm-format checkpoint to load."""
    if name not in MODELS:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name][1](num_classes=num_classes, pretrained=pretrained, **kw)


__all__ = ["FAMILY_MODULES", "MODELS", "create_model", "dense", "list_models", "load_checkpoint"]
