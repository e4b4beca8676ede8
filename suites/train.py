"""Train suite: the cost of one training step (forward, loss, backward, optimiser step) per batch.

The model is the *unfused* one in train mode (BatchNorm on batch statistics, stochastic depth only
with ``--drop-path``), random inputs and labels, cross-entropy; models whose training forward
returns two heads (distilled LSNet, RepViT) train with DeiT hard distillation as in the official
recipes: ``0.5 * CE(head, y) + 0.5 * CE(head_dist, teacher_labels)`` (random teacher labels). ``--task
segment`` trains backbone + Semantic FPN with a per-pixel cross-entropy on random 150-class targets at
the logits' size (``--task features`` is skipped: feature maps have no loss). Each
step starts with ``zero_grad(set_to_none=True)``. ``--dtype amp`` is autocast (bfloat16 on CPU;
float16 with a GradScaler on CUDA); pure float16/bfloat16 cells are skipped (train with amp). The
forward goes through the engine (the compile engine compiles it, from a fresh Dynamo); its first call (compilation) and the warm-up are never timed.

Without ``--batch-sizes`` the cells form an out-of-memory ladder (powers of two up to
``--max-batch``, default 32 on CPU, 1024 on CUDA): the largest ok batch of a ladder is the largest
batch that fits, printed after the summary table (:func:`largest_batches`).

Columns: step-time percentiles (``latency_ms_*``), ``throughput_img_s`` = batch / p50 step time,
``peak_mem_mb`` (CUDA: ``max_memory_allocated`` over the cell; CPU: peak RSS growth of the cell's
own worker process, sequential protocol only), ``params_m``. ``extra``: see :func:`bench`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lsnet.model import SKA
from lsnet.ops.ska import BACKENDS as SKA_BACKENDS
from lsnet.ops.ska import resolve_backend
from suites import engines
from suites.core import guards, modelprep, procmem, timing
from suites.core.cell import Cell, Context
from suites.core.counting import count_params
from suites.core.devices import is_cuda
from suites.core.modelprep import seeded_weights
from suites.core.precision import PRECISIONS
from suites.core.registry import Suite, register
from suites.core.zoo import SEGMENT_CLASSES
from suites.interleave import sequential

OPTIMIZERS = ("sgd", "adamw")
SGD_MOMENTUM = 0.9
ADAMW_WEIGHT_DECAY = 0.05
MAX_BATCH = {"cpu": 32, "cuda": 1024}
PURE_HALF_REASON = ("pure {dtype} training (no float32 master weights, no loss scaling) is not a supported "
                    "recipe; train with --dtype amp")


@dataclass(frozen=True)
class Options:
    """The train suite's options."""
    optimizer: str = field(default="sgd", metadata={"help": "train: optimiser (sgd with momentum 0.9, or adamw)",
                                                    "choices": OPTIMIZERS})
    lr: float = field(default=1e-3, metadata={"help": "train: learning rate"})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "train: recompute activations in the backward (torch.utils.checkpoint per block; LSNet models)"})
    drop_path: float = field(default=0.0, metadata={"help": "train: stochastic-depth rate (0 = off)"})
    ska_backend: str = field(default="auto", metadata={"help": "train: SKA backend of LSNet models (auto = the "
                                                               "fastest for the device)",
                                                       "choices": ("auto",) + SKA_BACKENDS})

    def validate(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"--drop-path must be in [0, 1), got {self.drop_path}")


def skip_reason(cell: Cell) -> str | None:
    """Why the train suite does not run ``cell`` (a skipped row), or None."""
    if PRECISIONS[cell.dtype].half:
        return PURE_HALF_REASON.format(dtype=cell.dtype)
    if cell.cuda_graphs:
        return "--cuda-graphs is not supported by the train suite (the optimiser step is not captured)"
    return None


def make_optimizer(model: nn.Module, opts: Options) -> torch.optim.Optimizer:
    """SGD with momentum 0.9, or AdamW (weight decay 0.05), over every parameter."""
    if opts.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=SGD_MOMENTUM)
    return torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=ADAMW_WEIGHT_DECAY)


def training_loss(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor,
                  teacher_labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; for a (head, dist_head) pair, hard distillation 0.5 * CE(head) + 0.5 * CE(dist vs teacher)."""
    if isinstance(out, tuple):
        head, dist = out
        return 0.5 * F.cross_entropy(head.float(), labels) + 0.5 * F.cross_entropy(dist.float(), teacher_labels)
    return F.cross_entropy(out.float(), labels)


def ska_backends(model: nn.Module, device: str) -> list[str]:
    """The SKA backends ``model`` runs on ``device`` (``auto`` resolved); empty without SKA."""
    return sorted({resolve_backend(m.backend, torch.device(device)) for m in model.modules() if isinstance(m, SKA)})


@dataclass
class TrainStep:
    """A ready training step: ``run()`` is one step; the model, optimiser and scaler it updates."""
    run: Callable[[], torch.Tensor]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    distilled: bool = False               # the last step trained two heads (hard distillation)
    last_loss: torch.Tensor | None = None


def prepare(cell: Cell, num_classes: int = 1000, seed: int = 0) -> TrainStep:
    """Build the cell's training step (model, data, optimiser, engine) without running it."""
    opts: Options = cell.opts
    with seeded_weights():
        model = modelprep.build_model(cell, num_classes=num_classes, train=True,
                                      drop_path_rate=opts.drop_path if opts.drop_path > 0 else None)
    if opts.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise NotImplementedError(f"{cell.model} has no set_grad_checkpointing (LSNet models have it)")
        model.set_grad_checkpointing(True)
    if opts.ska_backend != "auto":
        for m in model.modules():
            if isinstance(m, SKA):
                m.backend = opts.ska_backend
    guards.check_fits(cell)
    g = torch.Generator().manual_seed(seed)
    x = modelprep.make_input(cell, seed=seed)
    labels = torch.randint(0, num_classes, (cell.batch_size,), generator=g).to(cell.device)
    teacher = torch.randint(0, num_classes, (cell.batch_size,), generator=g).to(cell.device)
    pixels: dict[str, torch.Tensor] = {}     # segment: random per-pixel targets at the logits' size (first step)
    optimizer = make_optimizer(model, opts)
    scaler = torch.amp.GradScaler("cuda") if cell.dtype == "amp" and is_cuda(cell.device) else None
    forward = engines.get(cell.engine).wrap(model, cell)
    ts = TrainStep(lambda: torch.zeros(()), model, optimizer, scaler)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with modelprep.autocast_context(cell):
            out = forward(x)
            if cell.task == "segment":
                if "y" not in pixels:
                    n, _, h, w = out.shape
                    pixels["y"] = torch.randint(0, SEGMENT_CLASSES, (n, h, w), generator=g).to(cell.device)
                loss = F.cross_entropy(out.float(), pixels["y"])
            else:
                loss = training_loss(out, labels, teacher)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        ts.distilled, ts.last_loss = isinstance(out, tuple), loss
        return loss

    ts.run = step
    return ts


def state_bytes(step: TrainStep) -> dict[str, int]:
    """Exact bytes of parameters, gradients and optimiser state (after at least one step)."""
    params = list(step.model.parameters())
    opt_state = sum(t.numel() * t.element_size() for s in step.optimizer.state.values() for t in s.values()
                    if isinstance(t, torch.Tensor))
    return {"param_bytes": sum(p.numel() * p.element_size() for p in params),
            "grad_bytes": sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None),
            "optimizer_state_bytes": opt_state,
            "buffer_bytes": sum(b.numel() * b.element_size() for b in step.model.buffers())}


MEMORY_STEPS = 2     # steps inside the memory window: the first allocates the optimiser state


@contextlib.contextmanager
def _peak_memory(cell: Cell, ctx: Context) -> Iterator[dict[str, Any]]:
    """Measure the cell's peak memory growth; fills ``{"peak_bytes", "method"}`` (peak None if unmeasurable)."""
    out: dict[str, Any] = {"peak_bytes": None, "method": None}
    if is_cuda(cell.device):
        dev = torch.device(cell.device)
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        yield out
        torch.cuda.synchronize(dev)
        out.update(peak_bytes=torch.cuda.max_memory_allocated(dev) - base,
                   method=f"torch.cuda.max_memory_allocated over building and {MEMORY_STEPS} steps")
        return
    fresh = procmem.reset_peak_rss()      # a forked worker's ru_maxrss holds its parent's peak
    base = procmem.rss_bytes()
    yield out
    if ctx.isolated and cell.protocol == "sequential":
        peak = procmem.hwm_bytes() if fresh else None
        out.update(peak_bytes=max(0, (peak if peak is not None else procmem.peak_rss_bytes()) - base),
                   method="peak RSS growth of an isolated worker process"
                   + (" (VmHWM from the cell's start)" if peak is not None else ""))
    elif cell.protocol != "sequential":
        out["method"] = ("not measured: the cells of an interleaved group share one process (use --protocol "
                         "sequential, or the memory suite)")
    else:
        out["method"] = "not measured: CPU cells need a worker process of their own (not --isolation inline)"


@contextlib.contextmanager
def bench(cell: Cell, ctx: Context) -> Iterator[timing.Bench]:
    """Training steps of ``cell`` ready to time; the row's measurement columns and ``extra``.

    ``extra`` keys: optimizer, lr, amp (bool), amp_dtype, grad_scaler (bool), grad_checkpointing,
    drop_path, loss (``cross_entropy`` or ``hard_distillation``), ska_backend (list of the SKA
    backends run, empty without SKA), timer, memory_method, param_bytes, grad_bytes,
    optimizer_state_bytes, buffer_bytes, state_mb (parameters + gradients + optimiser state),
    activations_mb (peak minus state; None where the peak was not measured), final_loss,
    and the engine's facts (compile_mode, dynamo_graphs, graph_breaks with the compile engine).
    """
    opts: Options = cell.opts
    try:
        with _peak_memory(cell, ctx) as mem, torch.inference_mode(False):
            step = prepare(cell)
            for _ in range(MEMORY_STEPS):
                step.run()
    except NotImplementedError as exc:
        raise timing.Skip(str(exc)) from None
    timer = timing.timer_for(cell.device)

    def finish(m: timing.Measurement) -> dict[str, Any]:
        loss = float(step.last_loss.detach()) if step.last_loss is not None else None
        sizes = state_bytes(step)
        state = sizes["param_bytes"] + sizes["grad_bytes"] + sizes["optimizer_state_bytes"]
        summary = timing.trusted(m)
        peak = mem["peak_bytes"]
        amp = cell.dtype == "amp"
        extra: dict[str, Any] = {
            "optimizer": opts.optimizer, "lr": opts.lr, "amp": amp,
            "amp_dtype": ("float16" if is_cuda(cell.device) else "bfloat16") if amp else None,
            "grad_scaler": step.scaler is not None, "grad_checkpointing": opts.grad_checkpointing,
            "drop_path": opts.drop_path, "loss": "per_pixel_cross_entropy" if cell.task == "segment" else
            "hard_distillation" if step.distilled else "cross_entropy",
            "ska_backend": ska_backends(step.model, cell.device), "timer": type(timer).__name__,
            "memory_method": mem["method"], **sizes, "state_mb": state / 2**20, **m.facts(),
            "activations_mb": max(0, peak - state) / 2**20 if peak is not None else None, "final_loss": loss,
        }
        engine = engines.get(cell.engine)
        extra.update(engine.info(cell), **engine.compiled_facts())
        out: dict[str, Any] = {**summary, "throughput_img_s": cell.batch_size * 1000.0 / summary["latency_ms_p50"],
                               "params_m": count_params(step.model) / 1e6, "extra": extra,
                               "peak_mem_mb": peak / 2**20 if peak is not None else None}
        if peak is None:
            out["warnings"] = [*out["warnings"], f"peak_mem_mb {mem['method']}"]
        return out
    yield timing.Bench(step.run, timer, finish, scope=lambda: torch.inference_mode(False))


GroupKey = tuple[str, str, str, str, str]


def largest_batches(rows: list[dict[str, Any]]) -> dict[GroupKey, int | None]:
    """The largest batch with an ok row per (model, engine, device, dtype, options) of train rows
    (None when every batch that ran failed; groups of skipped rows only are left out): on a
    ladder, the largest batch that fits."""
    best: dict[GroupKey, int | None] = {}
    for r in rows:
        if r.get("suite") != "train" or r.get("status") == "skipped":
            continue
        opts = (r.get("cell") or {}).get("options") or {}
        task = f" [{r['task']}]" if r.get("task") not in (None, "classify") else ""   # tasks never merged
        key = (r["model"] + task, r.get("engine") or "eager", r["device"], r["dtype"],
               ",".join(f"{k}={v}" for k, v in sorted(opts.items())))
        prev = best.setdefault(key, None)
        if r.get("status") == "ok" and (prev is None or r["batch_size"] > prev):
            best[key] = r["batch_size"]
    return best


def console_summary(rows: list[dict[str, Any]]) -> str:
    """Lines for the console: the largest batch that trained per model, engine, device and dtype."""
    best = largest_batches(rows)
    if not best:
        return ""
    lines = ["train: largest batch that fits (largest ok batch of each model's ladder)"]
    for (model, engine, device, dtype, _), b in best.items():
        lines.append(f"  {model}  {engine}  {device}  {dtype}  {b if b is not None else 'none (no batch ran ok)'}")
    return "\n".join(lines)


SUITE = register(Suite("train", sequential(bench), __name__, "training-step time, images/s and peak memory (an out-of-memory ladder)",
                       plan="ladder", own_process=lambda cell: not is_cuda(cell.device), options=Options,
                       mode="training", skip=skip_reason, max_batch=MAX_BATCH, console_summary=console_summary, timed=True,
                       bench=bench, tasks=("classify", "segment"),
                       tasks_why="a backbone's feature maps have no loss of their own (train --task segment: the "
                       "Semantic FPN with a per-pixel cross-entropy)"))
