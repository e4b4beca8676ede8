"""This process's memory: RSS, its peak (``ru_maxrss``, or the kernel's resettable mark on Linux), and
the transient need of a block of work (:func:`transient`) on the CPU or a CUDA device.

A worker started by fork + exec inherits its parent's peak in ``ru_maxrss``; where Linux lets the mark
be reset (``/proc/self/clear_refs`` 5) the peak is read from ``VmHWM`` instead, from the reset on.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from suites.core.devices import is_cuda


def rss_bytes() -> int:
    """This process's resident set size now."""
    import psutil
    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """The process's peak RSS over its life (``ru_maxrss``; a forked worker's includes its parent's)."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_bytes() -> int | None:
    """The peak RSS since the last :func:`reset_peak_rss` (``VmHWM``); None where not readable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Transient:
    """What a block needed beyond what it kept: its peak minus the memory in use at its end (bytes);
    None where the peak cannot be read."""
    bytes: int | None = None


@contextlib.contextmanager
def transient(device: str) -> Iterator[Transient]:
    """Measure the block's :class:`Transient` need: CUDA from the caching allocator's peak, the CPU
    from the kernel's peak-RSS mark (reset at the block's start)."""
    out = Transient()
    if is_cuda(device):
        dev = torch.device(device)
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        yield out
        torch.cuda.synchronize(dev)
        out.bytes = max(0, torch.cuda.max_memory_allocated(dev) - torch.cuda.memory_allocated(dev))
        return
    fresh = reset_peak_rss()
    yield out
    peak = hwm_bytes() if fresh else None
    if peak is not None:
        out.bytes = max(0, peak - rss_bytes())
