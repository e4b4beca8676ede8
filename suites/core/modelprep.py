"""Model preparation: a cell's model (zoo, checkpoint, fuse, dtype, layout), its random input, and
the context a forward pass runs under (inference mode, autocast for ``amp``)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

import baselines
import lsnet
from suites.core import zoo
from suites.core.cell import Cell
from suites.core.devices import is_cuda
from suites.core.precision import PRECISIONS

TORCH_DTYPES = {name: p.weights for name, p in PRECISIONS.items()}


def param_bytes(model: nn.Module) -> tuple[int, int]:
    """(parameter bytes, buffer bytes) of ``model``."""
    return (sum(p.numel() * p.element_size() for p in model.parameters()),
            sum(b.numel() * b.element_size() for b in model.buffers()))


def build_model(cell: Cell, num_classes: int = 1000, checkpoint: str | None = None, train: bool = False,
                drop_path_rate: float | None = None) -> nn.Module:
    """The cell's model: eval (or train) mode, fused unless unfused or training, on device, dtype, layout.

    ``drop_path_rate`` (stochastic depth) is passed to the model's constructor only when given. The model is
    built for the cell's resolution (H, W) and run as the cell's task (:func:`suites.core.zoo.for_task`: the
    classifier, its backbone, or backbone + Semantic FPN), after the checkpoint is loaded into the classifier.
    """
    kw = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
    model = zoo.create(cell.model, num_classes=num_classes, img_size=cell.resolution, **kw)
    if checkpoint:    # LSNet's official files and the baselines' timm-format ones, checked alike
        baselines.load_checkpoint(model, checkpoint)
    model = zoo.for_task(model, cell.task)
    model.train(train)
    if cell.fused and not train:
        model = lsnet.fuse(model)
    model = model.to(torch.device(cell.device), dtype=TORCH_DTYPES[cell.dtype])
    if cell.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def input_bytes(cell: Cell, batch_size: int | None = None) -> int:
    n = cell.batch_size if batch_size is None else batch_size
    h, w = cell.hw
    return n * 3 * h * w * torch.tensor([], dtype=TORCH_DTYPES[cell.dtype]).element_size()


def make_input(cell: Cell, batch_size: int | None = None, seed: int | None = None) -> torch.Tensor:
    """A random (never zero) input batch (N, 3, H, W) on the cell's device, dtype and memory format."""
    n = cell.batch_size if batch_size is None else batch_size
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    x = torch.randn(n, 3, *cell.hw, generator=g, dtype=TORCH_DTYPES[cell.dtype])
    x = x.to(cell.device)
    return x.contiguous(memory_format=torch.channels_last) if cell.channels_last else x


def outputs_of(out: Any) -> list[torch.Tensor]:
    """The tensors of a model's output: one tensor, or each map of a tuple/list (a backbone's features) or dict."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in outputs_of(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in outputs_of(v)]
    raise TypeError(f"a model output of type {type(out).__name__} is not a tensor, tuple, list or dict of tensors")


def task_facts(cell: Cell, model: Any, out: Any) -> dict[str, Any]:
    """What a features or segment row records in ``extra`` (empty for classify): ``feature_shapes``, the
    per-image shape [C, H, W] of each output (the feature maps of ``features``, the logits of ``segment``),
    and the backbone's ``feature_strides``/``feature_channels`` where the model declares them."""
    if cell.task == "classify":
        return {}
    facts: dict[str, Any] = {"feature_shapes": [list(t.shape[1:]) for t in outputs_of(out)]}
    for attr in ("strides", "channels"):
        v = getattr(model, attr, None) if model is not None else None
        if v is None and model is not None:
            v = getattr(getattr(model, "backbone", None), attr, None)
        if isinstance(v, (tuple, list)):
            facts[f"feature_{attr}"] = [int(x) for x in v]
    return facts


def autocast_context(cell: Cell, cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``--dtype amp`` (float16 on CUDA, bfloat16 on CPU), else autocast
    explicitly off (so a cell never runs under another cell's autocast in an interleaved group)."""
    device_type = "cuda" if is_cuda(cell.device) else "cpu"
    if cell.dtype != "amp":
        return torch.autocast(device_type, enabled=False)
    amp_dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return torch.autocast(device_type, dtype=amp_dtype, cache_enabled=cache_enabled)


@contextlib.contextmanager
def inference_context(cell: Cell) -> Iterator[None]:
    """Everything a forward pass of the cell runs under: inference mode and (for amp) autocast."""
    with torch.inference_mode(), autocast_context(cell, cache_enabled=not cell.cuda_graphs):
        yield


PARITY_SEED = 1234


@contextlib.contextmanager
def seeded_weights() -> Iterator[None]:
    """Build models under a fixed seed, so an engine and its eager reference share the same weights."""
    with torch.random.fork_rng():
        torch.manual_seed(PARITY_SEED)
        yield
