"""Loading official LSNet checkpoints (and any model's) from local files, never from the network.

Accepted: the official ``.pth`` (``{"model": sd}``), ``{"state_dict": sd}``, a bare state dict,
``module.``-prefixed keys (DataParallel/DDP), and ``.safetensors`` (suffixes in any case).
``torch.load`` runs with ``weights_only=True`` on CPU, after the zip members' CRCs are checked.
Every failure is a :class:`CheckpointError` naming the file: a directory, an empty or corrupt file,
something that is not a state dict, integer tensors for floating parameters, non-finite values.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


EXPECTED = "expected a torch .pth/.pt/.bin (torch.save of a state dict) or a .safetensors file"


def _check_zip(path: Path) -> None:
    """CRC-check every member of a zip-format torch file (a torch file that is not a zip passes)."""
    import zipfile
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path}: corrupt zip archive ({e}); {EXPECTED}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path}: corrupt checkpoint (CRC mismatch in member {bad}); "
                              "the file was damaged in transfer or on disk: copy it again")


def _first_line(e: Exception) -> str:
    """The error's first line, without torch's advice to load untrusted pickles (never taken here)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(" Please file an issue")[0].split("weights_only")[0].rstrip(" ,;(").strip() or type(e).__name__


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (any accepted layout), with wrapper keys and prefixes removed."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a directory; give the checkpoint file inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: empty file (0 bytes); {EXPECTED}")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path), device="cpu")
        else:
            _check_zip(path)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # pickle, zip and safetensors parsers raise many types
        raise CheckpointError(f"checkpoint {path}: cannot be read as a checkpoint ({type(e).__name__}: "
                              f"{_first_line(e)}); {EXPECTED}") from None
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path}: holds no state dict (expected a mapping of names to "
                              "tensors, optionally under 'model' or 'state_dict')")
    sd = {k.removeprefix("module."): v for k, v in obj.items()}
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"checkpoint {path}: non-finite values (NaN or Inf) in {len(bad)} tensor(s): "
                              f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; the weights are unusable")
    return sd


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` (in place; returns it). Mismatches raise CheckpointError
    listing missing and unexpected keys and shape mismatches, e.g. another variant or class count."""
    return load_state_dict(model, read_state_dict(path), f"checkpoint {path}", strict)


def load_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "state dict",
                    strict: bool = True) -> nn.Module:
    """Load ``sd`` into ``model`` after checking that it fits: CheckpointError naming ``source`` and the
    missing and unexpected keys, shape mismatches and integer tensors for floating parameters."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    kinds = [f"{k} ({sd[k].dtype})" for k in own if k in sd and own[k].is_floating_point()
             and not sd[k].is_floating_point()]
    if kinds:
        raise CheckpointError(f"{source}: non-floating tensors for floating parameters: "
                              f"{', '.join(kinds[:5])}{' ...' if len(kinds) > 5 else ''}; is it a quantised or "
                              "index-only file?")
    if shapes or (strict and (missing or unexpected)):
        name = type(model).__name__
        parts = [f"{source} does not fit {name}"
                 f"{' (' + str(model.num_classes) + ' classes)' if hasattr(model, 'num_classes') else ''}"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f" ... and {len(items) - 10} more" if len(items) > 10 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{more}")
        hint = ("; is it another variant, class count or resolution? create the model that matches "
                "(e.g. lsnet_s vs lsnet_t, num_classes, img_size)")
        raise CheckpointError("; ".join(parts) + hint)
    model.load_state_dict(dict(sd), strict=strict)
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
