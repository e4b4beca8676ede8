"""Loading official LSNet checkpoints (and any model's) from local files, never from the network.

Accepted: the official ``.pth`` (``{"model": sd}``), ``{"state_dict": sd}``, a bare state dict,
``module.``-prefixed keys (DataParallel/DDP), and ``.safetensors``. ``torch.load`` runs with
``weights_only=True`` on CPU. Every failure is a :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (any accepted layout), with wrapper keys and prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safetensors parsers raise many types
        raise CheckpointError(f"checkpoint {path}: cannot be read ({type(e).__name__}: {e}); "
                              "expected a torch .pth/.pt/.bin or a .safetensors file") from None
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path}: holds no state dict (expected a mapping of names to "
                              "tensors, optionally under 'model' or 'state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` (in place; returns it). Mismatches raise CheckpointError
    listing missing and unexpected keys and shape mismatches, e.g. another variant or class count."""
    sd = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        name = type(model).__name__
        parts = [f"checkpoint {path} does not fit {name}"
                 f"{' (' + str(model.num_classes) + ' classes)' if hasattr(model, 'num_classes') else ''}"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f" ... and {len(items) - 10} more" if len(items) > 10 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{more}")
        hint = ("; is it another variant, class count or resolution? create the model that matches "
                "(e.g. lsnet_s vs lsnet_t, num_classes, img_size)")
        raise CheckpointError("; ".join(parts) + hint)
    model.load_state_dict(sd, strict=strict)
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Save in the official layout (``{"model": state_dict}``), or as safetensors by suffix."""
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(sd, str(path))
    else:
        torch.save({"model": sd}, path)
