"""Export any zoo model to ONNX, with the fast SKA translations of :mod:`lsnet.ops.ska_onnx`."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from lsnet.ops import ska_onnx
from suites.core.schema import parse_resolution

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def output_names(n: int) -> list[str]:
    """The names of an exported model's outputs: ``logits`` for one (a classifier, a segmentation head),
    ``features_0`` ... for several (a backbone's feature maps, in the order the model returns them)."""
    return ["logits"] if n == 1 else [f"features_{i}" for i in range(n)]


def export_onnx(model: nn.Module | str, path: str | os.PathLike, *, resolution: int | tuple[int, int] = 224,
                batch_size: int = 1, dtype: str = "float32", fused: bool = True, dynamic_batch: bool = True,
                opset: int = ska_onnx.OPSET, ska: str = "shift") -> Path:
    """Write ``model`` (a zoo name or a module) to ``path`` as one self-contained ONNX file.

    A name is built with :func:`suites.core.zoo.create` at ``resolution`` (one int: square; or (H, W));
    ``fused`` folds BN and RepVGG branches (``lsnet.fuse``) first. The input is ``x`` (N, 3, H, W) in
    ``dtype`` (float32 or float16); the outputs are named by :func:`output_names` (``logits``, or
    ``features_0``... for a model returning a tuple of feature maps); N is a dynamic axis of each unless
    ``dynamic_batch`` is False. ``ska`` is the translation of the SKA ops (``shift``: fastest in OpenVINO
    and TensorRT; ``conv``: fastest in ONNX Runtime; see :mod:`lsnet.ops.ska_onnx`).
    """
    import lsnet
    if dtype not in DTYPES:
        raise ValueError(f"export_onnx: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if ska not in ska_onnx.TRANSLATIONS:
        raise ValueError(f"export_onnx: ska={ska!r} is not one of {', '.join(ska_onnx.TRANSLATIONS)}")
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        from suites.core import zoo
        model = zoo.create(model, img_size=resolution)
    model = model.eval()
    if fused:
        model = lsnet.fuse(model)
    model = model.to(DTYPES[dtype])
    h, w = parse_resolution(resolution)
    x = torch.randn(batch_size, 3, h, w, dtype=DTYPES[dtype])
    ska_onnx.register(opset, ska)
    path = Path(path)
    with torch.no_grad():
        out = model(x)
    n_out = len(out) if isinstance(out, (tuple, list)) else 1
    names = output_names(n_out)
    axes = {n: {0: "batch"} for n in ["x", *names]} if dynamic_batch else None
    px = f"{h} px" if h == w else f"{h}x{w} px"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")        # tracer warnings about Python-side shape checks
            torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)
    except Exception as exc:
        raise RuntimeError(f"export_onnx: {name} at {px} ({dtype}) could not be exported: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return path


def has_ska(model: nn.Module) -> bool:
    """Whether ``model`` runs SKA ops (its ONNX file then depends on the SKA translation)."""
    from lsnet.model import SKA
    return any(isinstance(m, SKA) for m in model.modules())
