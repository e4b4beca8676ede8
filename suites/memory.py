"""Memory suite: peak inference memory at one batch size, plus parameter and buffer bytes.

GPU: ``torch.cuda.max_memory_allocated`` after a reset around the cell (model, input, forwards).
CPU: the peak RSS of the isolated worker process that runs only this cell (the executor always
gives CPU memory cells their own process), with the RSS before the model and after building it.
"""
from __future__ import annotations

import sys
from typing import Any

import torch

from suites import runtime
from suites.cell import Cell
from suites.counting import count_params
from suites.devices import is_cuda

ISOLATED_KEY = "_isolated_process"   # set in cell.options by the worker process
FORWARDS = 3


def _peak_rss_bytes() -> int:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss_bytes() -> int:
    import psutil
    return psutil.Process().memory_info().rss


def run(cell: Cell) -> dict[str, Any]:
    return _run_cuda(cell) if is_cuda(cell.device) else _run_cpu(cell)


def _forwards(prep: runtime.Prepared) -> None:
    for _ in range(FORWARDS):
        prep.step()


def _common(cell: Cell, prep: runtime.Prepared, extra: dict[str, Any]) -> dict[str, Any]:
    pb, bb = runtime.param_bytes(prep.model)
    return {"params_m": count_params(prep.model) / 1e6, "threads": prep.threads,
            "extra": {"param_bytes": pb, "buffer_bytes": bb, "forwards": FORWARDS, **extra}}


def _run_cuda(cell: Cell) -> dict[str, Any]:
    dev = torch.device(cell.device)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    with runtime.inference_context(cell):
        prep = runtime.prepare(cell)
        torch.cuda.synchronize(dev)
        after_model = torch.cuda.memory_allocated(dev)
        _forwards(prep)
        torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev) - base
    out = _common(cell, prep, {"method": "torch.cuda.max_memory_allocated",
                               "model_and_input_mb": (after_model - base) / 2**20,
                               "peak_reserved_mb": torch.cuda.max_memory_reserved(dev) / 2**20})
    out["peak_mem_mb"] = peak / 2**20
    return out


def _run_cpu(cell: Cell) -> dict[str, Any]:
    if not cell.options.get(ISOLATED_KEY):
        raise RuntimeError("CPU memory cells measure the peak RSS of their own process; run them in a worker "
                           "(suites.executor does this unless isolation is 'inline')")
    rss_start = _rss_bytes()
    with runtime.inference_context(cell):
        prep = runtime.prepare(cell)
        rss_model = _rss_bytes()
        _forwards(prep)
    peak = _peak_rss_bytes()
    out = _common(cell, prep, {"method": "peak RSS of an isolated worker process",
                               "rss_start_mb": rss_start / 2**20, "rss_after_model_mb": rss_model / 2**20,
                               "activation_peak_mb": max(0, peak - rss_model) / 2**20})
    out["peak_mem_mb"] = peak / 2**20
    return out
