"""Model preparation: a cell's model (zoo, checkpoint, fuse, dtype, layout), its random input, and
the context a forward pass runs under (inference mode, autocast for ``amp``)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

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

    ``drop_path_rate`` (stochastic depth) is passed to the model's constructor only when given.
    """
    kw = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
    model = zoo.create(cell.model, num_classes=num_classes, img_size=cell.resolution, **kw)
    if checkpoint:    # LSNet's official files and the baselines' timm-format ones, checked alike
        baselines.load_checkpoint(model, checkpoint)
    model.train(train)
    if cell.fused and not train:
        model = lsnet.fuse(model)
    model = model.to(torch.device(cell.device), dtype=TORCH_DTYPES[cell.dtype])
    if cell.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def input_bytes(cell: Cell, batch_size: int | None = None) -> int:
    n = cell.batch_size if batch_size is None else batch_size
    return n * 3 * cell.resolution ** 2 * torch.tensor([], dtype=TORCH_DTYPES[cell.dtype]).element_size()


def make_input(cell: Cell, batch_size: int | None = None, seed: int | None = None) -> torch.Tensor:
    """A random (never zero) input batch on the cell's device, dtype and memory format."""
    n = cell.batch_size if batch_size is None else batch_size
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    x = torch.randn(n, 3, cell.resolution, cell.resolution, generator=g, dtype=TORCH_DTYPES[cell.dtype])
    x = x.to(cell.device)
    return x.contiguous(memory_format=torch.channels_last) if cell.channels_last else x


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
