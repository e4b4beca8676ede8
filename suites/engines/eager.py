"""Eager PyTorch: the zoo model in inference form (fused, dtype, channels_last), optionally captured
in a CUDA graph whose replays are timed."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from suites.core.modelprep import seeded_weights
from suites.engines.base import Engine, Step, at_batch, check_parity, eager_reference, parity_input, to_cpu_float
from suites.core import guards, modelprep, timing
from suites.core.cell import Cell, Context
from suites.core.counting import count_params
from suites.core.devices import is_cuda


def capture_cuda_graph(model: Callable[[torch.Tensor], Any], static_input: torch.Tensor,
                       warmup_iters: int = 3) -> Callable[[], Any]:
    """Capture one forward of ``model`` on ``static_input`` into a CUDA graph; return its replay.

    Warm-up runs on a side stream first (as CUDA-graph capture requires); callers copy new data
    into ``static_input`` and call the returned function. Must run inside the inference context.
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


class Eager(Engine):
    name = "eager"
    modes = ("inference", "training")
    torch_native = True
    static_batch = False       # True: infer() always runs the cell's batch size (see engines.base.at_batch)

    def skip_reason(self, cell: Cell) -> str | None:
        if cell.cuda_graphs and not is_cuda(cell.device):
            return "--cuda-graphs needs a CUDA device"
        return None

    def wrap(self, model: nn.Module, cell: Cell) -> Callable[[torch.Tensor], Any]:
        """The callable a forward goes through (the module itself; torch.compile in the compile engine)."""
        return model

    def needs_parity(self, cell: Cell) -> bool:
        """Eager float32 on the CPU is the reference itself."""
        return cell.dtype != "float32" or is_cuda(cell.device) or cell.channels_last

    @contextlib.contextmanager
    def prepare(self, cell: Cell, ctx: Context, *, num_classes: int = 1000, checkpoint: str | None = None,
                throughput: bool = False, strict: bool = True) -> Iterator[Step]:
        x_ref = parity_input(cell)
        ref = eager_reference(cell, x_ref, num_classes=num_classes, checkpoint=checkpoint) \
            if self.needs_parity(cell) else None
        with modelprep.inference_context(cell):
            with seeded_weights():
                model = modelprep.build_model(cell, num_classes=num_classes, checkpoint=checkpoint)
            guards.check_fits(cell)
            x = modelprep.make_input(cell)
            fwd = self.wrap(model, cell)
            run = capture_cuda_graph(fwd, x) if cell.cuda_graphs else (lambda: fwd(x))
            fmt = torch.channels_last if cell.channels_last else torch.contiguous_format

            def forward(inp: torch.Tensor) -> torch.Tensor:
                # a copy made under inference mode, like the timed input: a tensor from outside it has
                # other dispatch keys, and torch.compile would recompile the graph it times for it
                inp = inp.to(cell.device, modelprep.TORCH_DTYPES[cell.dtype], copy=True).contiguous(memory_format=fmt)
                return to_cpu_float(fwd(inp))
            infer = at_batch(forward, cell.batch_size) if self.static_batch else forward

            step = Step(run=run, infer=infer, timer=timing.timer_for(cell.device), params=count_params(model),
                        model=model, info=self.info(cell), scope=lambda: modelprep.inference_context(cell))
            if ref is not None:
                check_parity(cell, step, ref, x_ref, strict=strict)
            else:
                step.parity_rel = 0.0
                if cell.task != "classify":     # the feature shapes, from one image
                    step.info.update(modelprep.task_facts(cell, model, infer(x_ref[:1])))
            step.info.update(self.compiled_facts())
            yield step

    def info(self, cell: Cell) -> dict[str, Any]:
        return {"cuda_graphs": True} if cell.cuda_graphs else {}

    def compiled_facts(self) -> dict[str, Any]:
        """Facts about compilation known once the model has run (none in eager)."""
        return {}


ENGINE = Eager()
