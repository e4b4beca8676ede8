"""The engine seam: an engine turns a cell into a ready :class:`Step`.

``with engine.prepare(cell, ctx) as step:`` builds the model the engine runs (exported, compiled or
eager), its input batch and everything a forward needs; inside the block ``step.run()`` is one
forward of the batch (what the suites time), ``step.timer`` times and synchronises it,
``step.infer(x)`` runs any batch and returns a float32 CPU tensor (parity, accuracy), and
``step.model`` is the torch module where the engine has one (torch profiler, parameter counts),
``step.images_per_run`` how many images one ``run()`` processes (several batches for engines that
keep asynchronous requests in flight).
Leaving the block releases the engine's resources. A step further from eager float32 than the cell
allows raises :class:`ParityError` while preparing; with ``strict=False`` the failure is kept in
``step.parity_failure`` instead, for a caller that reports it beside what it measured (accuracy).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from suites.core.cell import Cell, Context
from suites.core.modelprep import PARITY_SEED, outputs_of, task_facts
from suites.core.precision import PRECISIONS
from suites.core.timing import Timer

PARITY_BATCH = 2


class ParityError(RuntimeError):
    """An engine's output is further from eager float32 than the cell's precision allows."""


@dataclass
class Step:
    """A cell ready to run: see the module docstring."""
    run: Callable[[], Any]
    infer: Callable[[torch.Tensor], torch.Tensor]
    timer: Timer
    params: int
    model: nn.Module | None = None
    info: dict[str, Any] = field(default_factory=dict)
    parity_rel: float | None = None
    parity_failure: str | None = None     # why parity failed, for a step prepared with strict=False
    images_per_run: int | None = None     # images one ``run()`` processes (default: the cell's batch size)
    # what every call runs under (inference mode, autocast): entered around each burst of the timed
    # rounds, since the cells of an interleaved group are all prepared at once
    scope: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    # the engine's own profiler: (runs, trace folder) -> [(node name, op type, time us)]; None: torch.profiler
    profile: Callable[[int, Path], list[tuple[str, str, float]]] | None = None


class Engine:
    """Base of every engine: a name, what it is, availability, the cells it cannot run, and ``prepare``.

    ``modes``: what it can run (:data:`suites.core.registry.MODES`: inference, training); a suite
    runs through every engine that declares the suite's mode. ``torch_native``: its step runs the
    torch module ``step.model`` in this process (the torch profiler and CUDA allocator see its work).
    ``quantizes``: it runs ``--dtype int8`` (static post-training quantisation of the export).
    ``interleavable``: its cells can be prepared side by side in one process and timed round by
    round (:mod:`suites.interleave`); an engine with process-wide state that one cell's preparation
    resets (torch.compile's Dynamo caches) is timed one cell at a time instead."""
    name = "engine"
    modes: tuple[str, ...] = ("inference",)
    torch_native = False
    interleavable = True
    quantizes = False     # runs --dtype int8 (post-training quantisation, suites.engines.quantize)

    def unavailable(self) -> str | None:
        """None when the engine can run on this machine, else why not (and how to fix it)."""
        return None

    def skip_reason(self, cell: Cell) -> str | None:
        """Why this engine cannot run ``cell`` (a skipped row), or None."""
        return None

    def prepare(self, cell: Cell, ctx: Context, *, num_classes: int = 1000, checkpoint: str | None = None,
                throughput: bool = False, strict: bool = True) -> contextlib.AbstractContextManager[Step]:
        """The cell ready to run (see the module docstring); ``throughput``: the step is timed for images
        per second, not per-call latency (an engine may then keep several requests in flight);
        ``strict=False``: a parity failure is left in ``step.parity_failure`` instead of raised."""
        raise NotImplementedError

    def info(self, cell: Cell) -> dict[str, Any]:
        """The engine's facts for the row of ``cell`` (``extra``), known before it runs."""
        return {}

    def compiled_facts(self) -> dict[str, Any]:
        """Facts known once the model has run (what a compiler built); none by default."""
        return {}

    def wrap(self, model: nn.Module, cell: Cell) -> Callable[[torch.Tensor], Any]:
        """The callable a torch module's forward goes through (engines that run ``training``)."""
        raise TypeError(f"engine {self.name!r} does not run torch modules; it runs {', '.join(self.modes)}")


def pack(outputs: list[torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """One output as a tensor, several (a backbone's feature maps) as a tuple: the form eager returns."""
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def to_cpu_float(out: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """A model's output (a tensor or a tuple of feature maps) as float32 CPU tensor(s)."""
    return pack([t.float().cpu() for t in outputs_of(out)])


def at_batch(forward: Callable[[torch.Tensor], Any], batch_size: int) -> Callable[[torch.Tensor], Any]:
    """``forward`` for any number of images, always called with exactly ``batch_size`` of them (the
    last chunk padded with zeros, its padding dropped from the output; every output of a tuple alike): a
    model compiled for one batch size (OpenVINO's static shapes, torch.compile's specialisation) is never
    rebuilt for another."""
    def run(inp: torch.Tensor) -> Any:
        outs: list[list[torch.Tensor]] = []
        for chunk in inp.split(batch_size):
            n = chunk.shape[0]
            padded = torch.cat([chunk, chunk.new_zeros(batch_size - n, *chunk.shape[1:])]) if n < batch_size else chunk
            outs.append([t[:n] for t in outputs_of(forward(padded))])
        return pack([torch.cat(parts) for parts in zip(*outs)])
    return run


def relative_error(out: Any, ref: Any) -> float:
    """max |out - ref| / max |ref| (both taken to float32 on the CPU); for several outputs (a backbone's
    feature maps) the largest over them, each output against its own reference."""
    outs, refs = outputs_of(out), outputs_of(ref)
    if len(outs) != len(refs):
        raise ParityError(f"{len(outs)} outputs differ in number from eager's {len(refs)}")
    worst = 0.0
    for i, (o, r) in enumerate(zip(outs, refs)):
        o, r = o.detach().float().cpu(), r.detach().float().cpu()
        if o.shape != r.shape:
            which = f"output {i} shape" if len(outs) > 1 else "output shape"
            raise ParityError(f"{which} {tuple(o.shape)} differs from eager's {tuple(r.shape)}")
        rel = float((o - r).abs().max() / r.abs().max().clamp_min(1e-30))
        worst = rel if rel != rel else max(worst, rel)     # NaN stays NaN (and fails the tolerance)
        if worst != worst:
            break
    return worst


def parity_input(cell: Cell) -> torch.Tensor:
    """The fixed random batch (N, 3, H, W) every engine's output is compared on (float32, CPU)."""
    g = torch.Generator().manual_seed(PARITY_SEED)
    return torch.randn(min(cell.batch_size, PARITY_BATCH), 3, *cell.hw, generator=g)


def eager_reference(cell: Cell, x: torch.Tensor, *, num_classes: int = 1000,
                    checkpoint: str | None = None) -> torch.Tensor:
    """Eager float32 output of the cell's model on ``x`` (CPU, the same weights seed)."""
    from suites.core import modelprep
    ref_cell = cell.with_(engine="eager", device="cpu", dtype="float32", channels_last=False, cuda_graphs=False)
    with torch.random.fork_rng():
        torch.manual_seed(PARITY_SEED)
        model = modelprep.build_model(ref_cell, num_classes=num_classes, checkpoint=checkpoint)
    with torch.inference_mode():
        return model(x)


def check_parity(cell: Cell, step: Step, reference: torch.Tensor, x: torch.Tensor,
                 tolerance: float | None = None, strict: bool = True) -> float:
    """``step.parity_rel`` from ``step.infer(x)`` against ``reference`` (every output of a tuple compared,
    the largest error kept); above the tolerance :func:`fail_parity`. Features and segment cells also
    record their output shapes (:func:`suites.core.modelprep.task_facts`) in ``step.info``."""
    out = step.infer(x)
    rel = relative_error(out, reference)
    step.info.update(task_facts(cell, step.model, out))
    limit = tolerance if tolerance is not None else cell.parity_tol if cell.parity_tol is not None \
        else PRECISIONS[cell.dtype].parity_tol
    step.parity_rel = rel
    if not rel <= limit:
        fail_parity(step, f"{cell.engine} output differs from eager float32 by {rel:.3g} (relative), above the "
                          f"{cell.dtype} tolerance {limit:g}", strict)
    return rel


def fail_parity(step: Step, reason: str, strict: bool) -> None:
    """ParityError(``reason``), or with ``strict=False`` the reason kept in ``step.parity_failure``."""
    if strict:
        raise ParityError(reason)
    step.parity_failure = reason
