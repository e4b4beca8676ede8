"""Turning a cell into something to time: threads, model (eval, fused, dtype, channels_last,
torch.compile, CUDA graph), random input, autocast, and OOM detection / memory guards."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import lsnet
from suites import zoo
from suites.cell import Cell
from suites.devices import is_cuda

DTYPES = ("float32", "float16", "bfloat16", "amp")
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "amp": torch.float32}


class InsufficientMemory(MemoryError):
    """Raised before a cell runs when its input alone cannot fit in the memory that is available."""


def is_oom(exc: BaseException) -> bool:
    """True for out-of-memory failures on any device (CUDA OOM, CPU allocator failure, MemoryError)."""
    if isinstance(exc, MemoryError):
        return True
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    msg = str(exc)
    return any(s in msg for s in ("out of memory", "can't allocate memory", "DefaultCPUAllocator: not enough memory",
                                  "Cannot allocate memory", "std::bad_alloc"))


def set_threads(cell: Cell) -> int:
    """Apply ``cell.threads`` (if given) to torch's intra-op pool; return the thread count in use."""
    if cell.threads:
        torch.set_num_threads(cell.threads)
    return torch.get_num_threads()


def param_bytes(model: nn.Module) -> tuple[int, int]:
    """(parameter bytes, buffer bytes) of ``model``."""
    return (sum(p.numel() * p.element_size() for p in model.parameters()),
            sum(b.numel() * b.element_size() for b in model.buffers()))


def build_model(cell: Cell) -> nn.Module:
    """The cell's model in inference form: eval, fused unless ``--no-fuse``, on device, dtype, layout."""
    model = zoo.create(cell.model, num_classes=int(cell.options.get("num_classes", 1000)), img_size=cell.resolution)
    model.eval()
    if cell.fused:
        model = lsnet.fuse(model)
    model = model.to(torch.device(cell.device), dtype=_TORCH_DTYPES[cell.dtype])
    if cell.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def input_bytes(cell: Cell, batch_size: int | None = None) -> int:
    n = cell.batch_size if batch_size is None else batch_size
    return n * 3 * cell.resolution ** 2 * torch.tensor([], dtype=_TORCH_DTYPES[cell.dtype]).element_size()


def make_input(cell: Cell, batch_size: int | None = None) -> torch.Tensor:
    """A random (never zero) input batch on the cell's device, dtype and memory format."""
    n = cell.batch_size if batch_size is None else batch_size
    x = torch.randn(n, 3, cell.resolution, cell.resolution, device=cell.device, dtype=_TORCH_DTYPES[cell.dtype])
    return x.contiguous(memory_format=torch.channels_last) if cell.channels_last else x


def autocast_context(cell: Cell, cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``--dtype amp`` (float16 on CUDA, bfloat16 on CPU), else a no-op."""
    if cell.dtype != "amp":
        return contextlib.nullcontext()
    device_type = "cuda" if is_cuda(cell.device) else "cpu"
    amp_dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return torch.autocast(device_type, dtype=amp_dtype, cache_enabled=cache_enabled)


@contextlib.contextmanager
def inference_context(cell: Cell) -> Iterator[None]:
    """Everything a forward pass of the cell runs under: inference mode and (for amp) autocast."""
    with torch.inference_mode(), autocast_context(cell, cache_enabled=not cell.cuda_graphs):
        yield


def capture_cuda_graph(model: nn.Module, static_input: torch.Tensor, warmup_iters: int = 3) -> Callable[[], Any]:
    """Capture one forward of ``model`` on ``static_input`` into a CUDA graph; return its replay.

    Warm-up runs on a side stream first (as CUDA-graph capture requires); callers copy new data
    into ``static_input`` and call the returned function. Must run inside :func:`inference_context`.
    """
    device = static_input.device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup_iters):
            model(static_input)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = model(static_input)

    def replay() -> torch.Tensor:
        graph.replay()
        return static_output
    return replay


@dataclass
class Prepared:
    """A ready-to-time cell: ``step()`` runs one forward of ``batch`` images (inside inference_context)."""
    model: nn.Module
    inputs: torch.Tensor
    step: Callable[[], Any]
    threads: int


def prepare(cell: Cell, model: nn.Module | None = None) -> Prepared:
    """Build model and input for ``cell`` and the step function to time (compile / CUDA graph applied).

    Call inside :func:`inference_context`; the first call of ``step`` may compile or capture.
    """
    if cell.cuda_graphs and not is_cuda(cell.device):
        raise ValueError("--cuda-graphs needs a CUDA device")
    threads = set_threads(cell)
    model = build_model(cell) if model is None else model
    check_fits(cell, model)
    x = make_input(cell)
    fwd: nn.Module | Callable[..., Any] = model
    if cell.compile:
        fwd = torch.compile(model, mode=cell.options.get("compile_mode") or None)
    if cell.cuda_graphs:
        step = capture_cuda_graph(fwd, x)
    else:
        step = lambda: fwd(x)  # noqa: E731
    return Prepared(model, x, step, threads)


def available_memory(device: str) -> int:
    """Bytes that a new allocation can still get on ``device``."""
    if is_cuda(device):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil
    return int(psutil.virtual_memory().available)


def check_fits(cell: Cell, model: nn.Module) -> None:
    """Raise :class:`InsufficientMemory` when the input batch alone exceeds the available memory
    (a lower bound of the need: a sure OOM caught before the allocator or the OOM killer sees it)."""
    need = input_bytes(cell)
    have = available_memory(cell.device)
    if need > have:
        raise InsufficientMemory(f"out of memory: batch {cell.batch_size} needs at least {need / 2**30:.1f} GiB for "
                                 f"its input alone; {have / 2**30:.1f} GiB available on {cell.device}")


@contextlib.contextmanager
def cpu_allocation_limit(cell: Cell, fraction: float = 0.9) -> Iterator[None]:
    """On Linux CPU cells, cap this process's address space at its current size plus ``fraction`` of
    the available RAM while the cell runs, so an oversized batch fails inside the allocator
    (a catchable RuntimeError) instead of summoning the kernel's OOM killer. Restored afterwards."""
    try:
        import resource
    except ImportError:
        yield
        return
    if is_cuda(cell.device) or torch.cuda.is_initialized() or os.environ.get("LSNET_BENCH_NO_RLIMIT"):
        yield
        return
    import psutil
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = psutil.Process().memory_info().vms + int(fraction * psutil.virtual_memory().available)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def release(device: str) -> None:
    """Free what a finished (or failed) cell left behind."""
    import gc
    gc.collect()
    if is_cuda(device) and torch.cuda.is_available():
        torch.cuda.empty_cache()
