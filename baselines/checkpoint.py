"""Loading released checkpoints of the baselines from local files, never from the network.

A baseline loads a state dict in timm's format: the released ``pytorch_model.bin``,
``model.safetensors`` or ``.pth`` (bare, under ``model``/``state_dict``, ``module.``-prefixed), with
timm's key names. A family whose module names differ from timm's lists ``TIMM_RENAMES`` in its module,
``(pattern, replacement)`` regular expressions applied in order to every key on load; a family whose
names are timm's needs none. The content checks and
errors are :mod:`lsnet.checkpoint`'s (missing/unexpected keys and shapes named, NaN and integer
tensors refused).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

import torch
from torch import nn

from lsnet.checkpoint import load_state_dict as _checked_load
from lsnet.checkpoint import read_state_dict


def from_timm(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` (timm's key names) in ``model``'s own names: its family's ``TIMM_RENAMES`` applied to every key."""
    rules = getattr(sys.modules.get(type(model).__module__), "TIMM_RENAMES", ())
    if rules and set(sd) == set(model.state_dict()):
        return dict(sd)     # already in the model's own names (a state dict this project saved, e.g. the proxy task's)
    out = {}
    for key, value in sd.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def load_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "state dict",
                    strict: bool = True) -> nn.Module:
    """Load a timm-format ``sd`` into ``model`` (in place; returns it), checked as LSNet checkpoints are."""
    return _checked_load(model, from_timm(model, sd), source, strict)


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load the timm-format checkpoint file ``path`` into ``model`` (in place; returns it)."""
    return load_state_dict(model, read_state_dict(path), f"checkpoint {path}", strict)
