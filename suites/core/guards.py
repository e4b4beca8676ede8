"""Execution guards around a cell: thread count (restored afterwards), out-of-memory detection and
the CPU allocation cap, a memory pre-check, and releasing what a cell left behind."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import torch

from suites.core.cell import Cell
from suites.core.devices import is_cuda
from suites.core.modelprep import input_bytes


class InsufficientMemory(MemoryError):
    """Raised before a cell runs when its input alone cannot fit in the memory that is available."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (truncated) for the ``error`` column."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure(exc: BaseException) -> dict[str, Any]:
    """The ``oom`` or ``error`` result of a cell that raised ``exc``."""
    return {"status": "oom" if is_oom(exc) else "error", "error": one_line(exc)}


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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's mallopt parameters
STEADY_MMAP_THRESHOLD = 32 * 2**20                     # glibc's largest dynamic threshold (64-bit)
STEADY_TRIM_THRESHOLD = 2**30
_steady: dict[str, int] | None = None


def steady_malloc() -> dict[str, int] | None:
    """Fix glibc malloc's thresholds for this process (once): allocations below 32 MiB always come
    from the heap and freed memory is not trimmed back to the kernel.

    By default glibc raises its mmap threshold each time a large block is freed, so whether a
    model's activations are mmapped (and page-faulted in on every forward) depends on what the
    process allocated before it: in one interleaved group StarNet-S1 measured 0.76x LSNet-T when it
    was prepared first and 0.93-1.0x when prepared last. With fixed thresholds the order moves it by
    about 5%. Returns the settings applied, or None where this is not glibc.
    """
    global _steady
    if _steady is None:
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            ok = libc.mallopt(M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD) and \
                libc.mallopt(M_TRIM_THRESHOLD, STEADY_TRIM_THRESHOLD)
        except (OSError, AttributeError):
            ok = False
        _steady = {"mmap_threshold": STEADY_MMAP_THRESHOLD, "trim_threshold": STEADY_TRIM_THRESHOLD} if ok else {}
    return _steady or None


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[int]:
    """Run with ``count`` intra-op threads (if given); yields the count in use; restores it afterwards."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def available_memory(device: str) -> int:
    """Bytes that a new allocation can still get on ``device``."""
    if is_cuda(device):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil
    return int(psutil.virtual_memory().available)


def total_memory(device: str) -> int:
    """Bytes of memory ``device`` has in all."""
    if is_cuda(device):
        return int(torch.cuda.mem_get_info(torch.device(device))[1])
    import psutil
    return int(psutil.virtual_memory().total)


def check_fits(cell: Cell) -> None:
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
    if is_cuda(cell.device) or torch.cuda.is_initialized():
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
    gc.collect()
    if is_cuda(device) and torch.cuda.is_available():
        torch.cuda.empty_cache()
