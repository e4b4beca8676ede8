"""Memory suite: peak inference memory at one batch size, plus parameter and buffer bytes.

GPU: ``torch.cuda.max_memory_allocated`` after a reset around the cell (model, input, forwards) for
the PyTorch engines; the other engines allocate outside PyTorch, so for them it is the growth of the
process's GPU memory as NVML sees it (the engine's arenas keep their peak), after the forwards.
CPU: the peak RSS of the isolated worker process that runs only this cell (the descriptor asks the
executor for a process of its own), with the RSS before the model and after building it. That peak
includes building the model and, for engines other than eager, the eager float32 forward their output is
checked against (parity), which at dense-prediction resolutions can exceed the engine's own peak; so
``extra.forward_peak_mb`` is the peak RSS over the timed forwards alone (Linux: the kernel's peak mark is
reset after preparation), what the process holds while the engine runs. Where Linux lets the mark be reset,
the peak is read from it (``VmHWM``) from the cell's start: ``ru_maxrss`` of a worker started by fork + exec
also holds the parent's peak at the fork.
"""
from __future__ import annotations

from typing import Any

import torch

from suites import engines
from suites.engines.base import Step
from suites.core import procmem
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.core.modelprep import param_bytes
from suites.core.registry import Suite, register
from suites.core.telemetry import gpu_memory_used

FORWARDS = 3


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    return _run_cuda(cell, ctx) if is_cuda(cell.device) else _run_cpu(cell, ctx)


def _forwards(step: Step) -> None:
    for _ in range(FORWARDS):
        step.run()
    step.timer.sync()


def _common(step: Step, extra: dict[str, Any]) -> dict[str, Any]:
    pb, bb = param_bytes(step.model) if step.model is not None else (None, None)
    return {"params_m": step.params / 1e6, "parity_rel": step.parity_rel,
            "extra": {"param_bytes": pb, "buffer_bytes": bb, "forwards": FORWARDS, **step.info, **extra}}


def _run_cuda(cell: Cell, ctx: Context) -> dict[str, Any]:
    return _run_cuda_torch(cell, ctx) if engines.get(cell.engine).torch_native else _run_cuda_nvml(cell, ctx)


def _run_cuda_nvml(cell: Cell, ctx: Context) -> dict[str, Any]:
    index = torch.device(cell.device).index or 0
    before = gpu_memory_used(index)
    if before is None:
        raise RuntimeError(f"the memory of engine {cell.engine!r} on {cell.device} is read through NVML, which is "
                           "not available here (pip install nvidia-ml-py)")
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        after_model = gpu_memory_used(index)
        _forwards(step)
        after = gpu_memory_used(index)
    method = after[1] if after else before[1]
    out = _common(step, {"method": method, "model_and_input_mb": ((after_model or before)[0] - before[0]) / 2**20})
    out["peak_mem_mb"] = ((after or before)[0] - before[0]) / 2**20
    return out


def _run_cuda_torch(cell: Cell, ctx: Context) -> dict[str, Any]:
    dev = torch.device(cell.device)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        torch.cuda.synchronize(dev)
        after_model = torch.cuda.memory_allocated(dev)
        _forwards(step)
    peak = torch.cuda.max_memory_allocated(dev) - base
    out = _common(step, {"method": "torch.cuda.max_memory_allocated",
                         "model_and_input_mb": (after_model - base) / 2**20,
                         "peak_reserved_mb": torch.cuda.max_memory_reserved(dev) / 2**20})
    out["peak_mem_mb"] = peak / 2**20
    return out


def _run_cpu(cell: Cell, ctx: Context) -> dict[str, Any]:
    if not ctx.isolated:
        raise RuntimeError("CPU memory cells measure the peak RSS of their own process; run them in a worker "
                           "(the local executor does this unless --isolation inline)")
    # a worker started by fork + exec inherits its parent's peak RSS in getrusage's ru_maxrss (the kernel keeps
    # the forked image's high-water mark): where Linux lets the mark be reset, the peak is read from it instead
    fresh = procmem.reset_peak_rss()
    rss_start = procmem.rss_bytes()
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        rss_model = procmem.rss_bytes()
        prepare_peak = procmem.hwm_bytes() if fresh else None
        forwards_only = fresh and procmem.reset_peak_rss()     # the mark restarts: what the forwards alone reach
        _forwards(step)
        forward_peak = procmem.hwm_bytes() if forwards_only else None
    if prepare_peak is not None and forward_peak is not None:
        peak, how = max(prepare_peak, forward_peak), "peak RSS of an isolated worker process (VmHWM from the cell's start)"
    else:
        peak, how, forward_peak = procmem.peak_rss_bytes(), "peak RSS of an isolated worker process", None
    out = _common(step, {"method": how,
                         "rss_start_mb": rss_start / 2**20, "rss_after_model_mb": rss_model / 2**20,
                         "activation_peak_mb": max(0, peak - rss_model) / 2**20,
                         "forward_peak_mb": forward_peak / 2**20 if forward_peak is not None else None})
    out["peak_mem_mb"] = peak / 2**20
    return out


SUITE = register(Suite("memory", run, __name__, "peak memory of inference at each batch size",
                       default_batch_sizes=(1, 8, 32), own_process=lambda cell: not is_cuda(cell.device)))

