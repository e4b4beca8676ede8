"""The single model zoo: every name from ``lsnet/`` and ``baselines/`` resolves to a constructor, and so
do the models a user brings:

- ``module.path:callable`` (e.g. ``mypkg.nets:tiny_backbone``): a function of the user's code that returns an
  ``nn.Module``; it is given those of ``num_classes``, ``img_size`` and ``pretrained`` it accepts. Family
  ``user``.
- ``timm:NAME`` (e.g. ``timm:resnet18``): ``timm.create_model(NAME, pretrained=False)`` where timm is
  installed (never required: timm wants a newer torch than the suite pins). Family ``timm``.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

import baselines
import lsnet
from baselines import dense
from lsnet.model import create_model as _create_lsnet
from suites.core.schema import TASKS

if tuple(dense.TASKS) != TASKS:
    raise ImportError(f"baselines.dense runs the tasks {tuple(dense.TASKS)} but the schema's TASKS are {TASKS}")

GROUPS = ("lsnet", "baselines", "all")
USER_FAMILY, TIMM_FAMILY, TIMM_PREFIX = "user", "timm", "timm:"


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


def is_brought(name: str) -> bool:
    """Whether ``name`` is a model the user brings (``module:callable`` or ``timm:NAME``), not the zoo's."""
    return name.startswith(TIMM_PREFIX) or ":" in name


def _call_with_accepted(fn: Callable[..., nn.Module], name: str, **kw) -> nn.Module:
    """``fn`` called with the keyword arguments its signature accepts; ValueError when it is no model."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    model = fn(**{k: v for k, v in kw.items() if v is not None and (takes_all or k in params)})
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r}: the callable returned {type(model).__name__}, not a torch nn.Module")
    return model


def _user_spec(name: str) -> ModelSpec:
    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX):]
        try:
            timm = importlib.import_module("timm")
        except ImportError:
            raise ValueError(f"model {name!r} needs timm, which is not installed (pip install timm; it asks for a "
                             "newer torch than this suite pins)") from None

        def build_timm(num_classes: int = 1000, img_size: int = 224, pretrained: str | None = None, **kw) -> nn.Module:
            model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kw)
            if pretrained:
                from lsnet.checkpoint import load_checkpoint
                load_checkpoint(model, pretrained)
            return model
        return ModelSpec(name, TIMM_FAMILY, build_timm)
    module, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model {name!r}: cannot import {attr!r} from {module!r} ({type(exc).__name__}: {exc}); "
                         "give module.path:callable importable from here") from None
    if not callable(fn):
        raise ValueError(f"model {name!r}: {module}.{attr} is not callable; give a function returning an nn.Module")
    return ModelSpec(name, USER_FAMILY, lambda **kw: _call_with_accepted(fn, name, **kw))


def spec(name: str) -> ModelSpec:
    """The spec of ``name`` (a zoo name, ``module.path:callable`` or ``timm:NAME``); ValueError listing the
    valid names if unknown, or saying why a brought model cannot be loaded."""
    if is_brought(name):
        return _user_spec(name)
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(reg)} (or bring one: module.path:callable, "
                         "timm:NAME)")
    return reg[name]


def create(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, **kw) -> nn.Module:
    """Build model ``name`` (random init unless ``pretrained=PATH`` is passed where supported); ``img_size``
    is one int (square) or (height, width)."""
    return spec(name).build(num_classes=num_classes, img_size=img_size, **kw)


SEGMENT_CLASSES = 150    # ADE20K, the Semantic FPN protocol of the LSNet paper


def for_task(model: nn.Module, task: str, num_classes: int = SEGMENT_CLASSES) -> nn.Module:
    """``model`` (a zoo classifier) as ``task`` runs it (:data:`suites.core.schema.TASKS`): itself for
    ``classify``, its backbone returning a tuple of feature maps for ``features``, backbone + Semantic FPN
    (``num_classes`` per-pixel logits) for ``segment`` (:func:`baselines.dense.for_task`). ValueError
    naming the tasks when unknown, or saying why the model has no backbone form."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if task == "classify":
        return model
    return dense.for_task(model, task, num_classes=num_classes)
