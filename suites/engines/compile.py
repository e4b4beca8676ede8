"""torch.compile (Inductor): the eager engine's model compiled with ``--compile-mode``; compilation
happens in the first call, which the timing loop never times. Each cell starts from a fresh Dynamo
(``torch._dynamo.reset()``): its caches are keyed by the model class's ``forward`` code, so cells
run one after another in one process would otherwise inherit each other's guards, get dynamic-shape
graphs from the second batch size on, and after eight fall back to eager without a word (Dynamo's
recompile limit, which is made an error here). Every call has the cell's batch size and an input
made under inference mode (parity and evaluation inputs are padded and copied), so the graph that is
timed is the one compiled first; ``extra`` records how many graphs Dynamo built and its graph breaks.
For the same reason compile cells are timed one at a time (``protocol=sequential``), never in an
interleaved group: another cell's reset would make the group's compiled models recompile.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from suites.engines.eager import Eager
from suites.core.cell import Cell

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class Compile(Eager):
    name = "compile"
    interleavable = False      # each cell resets Dynamo, which would recompile the other cells of a group
    static_batch = True        # parity on another batch size would make Dynamo recompile the timed graph as dynamic

    def skip_reason(self, cell: Cell) -> str | None:
        if cell.cuda_graphs:
            return "--cuda-graphs is an eager-engine option (compile's reduce-overhead mode uses CUDA graphs itself)"
        return None

    def wrap(self, model: nn.Module, cell: Cell) -> Callable[[torch.Tensor], Any]:
        from torch._dynamo.utils import counters
        torch._dynamo.reset()
        counters.clear()               # the graph counts below are this cell's
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        return torch.compile(model, mode=cell.compile_mode or None)

    def compiled_facts(self) -> dict[str, Any]:
        from torch._dynamo.utils import counters
        return {"dynamo_graphs": int(counters["stats"]["unique_graphs"]),
                "graph_breaks": int(sum(counters["graph_break"].values()))}

    def needs_parity(self, cell: Cell) -> bool:
        return True

    def info(self, cell: Cell) -> dict[str, Any]:
        return {"compile_mode": cell.compile_mode or "default"}


ENGINE = Compile()
