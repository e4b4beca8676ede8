"""torch.compile (Inductor): the eager engine's model compiled with ``--compile-mode``; compilation
happens in the first call, which the timing loop never times. Every call has the cell's batch size
and an input made under inference mode (parity and evaluation inputs are padded and copied), so
Dynamo never recompiles the graph it times (a second batch size would make it a dynamic-shape graph).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engines.eager import Eager
from suites.cell import Cell

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class Compile(Eager):
    name = "compile"
    static_batch = True        # parity on another batch size would make Dynamo recompile the timed graph as dynamic

    def skip_reason(self, cell: Cell) -> str | None:
        if cell.cuda_graphs:
            return "--cuda-graphs is an eager-engine option (compile's reduce-overhead mode uses CUDA graphs itself)"
        return None

    def wrap(self, model: nn.Module, cell: Cell) -> Callable[[torch.Tensor], Any]:
        return torch.compile(model, mode=cell.compile_mode or None)

    def needs_parity(self, cell: Cell) -> bool:
        return True

    def info(self, cell: Cell) -> dict[str, Any]:
        return {"compile_mode": cell.compile_mode or "default"}


ENGINE = Compile()
