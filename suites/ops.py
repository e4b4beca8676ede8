"""Ops suite: the SKA operator alone at LSNet stage shapes, each backend against the copy bandwidth.

``--suite ops --models lsnet_t`` plans one cell per stage of the model that has LSConv blocks
(x (N, C, R, R), w (N, C/8, 9, R, R)), per backend (``reference``, ``torch``, ``triton`` and,
forward only, ``official``: a re-creation of the official flat kernel design) and per mode:

* ``fwd``: ``ska(x, w)``; ``bn_add``: the fused inference tail ``x + ska(x, w) * scale + shift``;
* ``fwd_bwd``: forward and backward (dx and dw) through autograd.

Roofline columns: ``bytes_moved`` counts every tensor once (forward: x, w, y; fused tail adds
scale/shift; backward adds gy, x, w, dx, dw), ``gbps = bytes_moved / p50`` and ``pct_copy_bw`` its
share of the copy bandwidth measured in the same cell (``dst.copy_(src)`` over ``--copy-mb`` MB,
bytes read + written per second). FLOPs (2 K^2 per output forward, 4 K^2 backward) are in ``extra``.
Triton and official cells are skipped on CPU (the interpreter is a correctness tool, not a benchmark).
"""
from __future__ import annotations

import dataclasses
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from lsnet.model import CONFIGS
from lsnet.ops import ska, ska_bn_add, ska_reference
from suites.core import timing
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.core.precision import PRECISIONS
from suites.interleave import sequential
from suites.core.registry import Suite, register
from suites.core.schema import parse_resolution

BACKENDS = ("reference", "torch", "triton", "official")
MODES = ("fwd", "bn_add", "fwd_bwd")
OP_DTYPES = {name: p.weights for name, p in PRECISIONS.items() if not p.autocast and not p.quantized}   # one precision at a time


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


@dataclass(frozen=True)
class Options:
    """The ops suite's options; each planned cell holds one backend, one mode and one stage."""
    op_backends: str = field(default=",".join(BACKENDS), metadata={"help": "ops: comma-separated SKA backends"})
    op_modes: str = field(default=",".join(MODES), metadata={"help": "ops: comma-separated modes"})
    op_stages: str = field(default="", metadata={"help": "ops: comma-separated stages, e.g. stage2 (default: all)"})
    copy_mb: int | None = field(default=None, metadata={"max": 1 << 16, "help": "ops: copy-bandwidth buffer in MB "
                                                                "(default 256 on CPU, 1024 on CUDA)"})

    def validate(self) -> None:
        for value, valid, flag in ((self.op_backends, BACKENDS, "--op-backends"), (self.op_modes, MODES, "--op-modes")):
            bad = [v for v in _csv(value) if v not in valid]
            if bad or not _csv(value):
                raise ValueError(f"{flag}: {', '.join(bad) or 'nothing given'}; choose from {', '.join(valid)}")
        if self.copy_mb is not None and self.copy_mb <= 0:
            raise ValueError(f"--copy-mb must be > 0, got {self.copy_mb}")


@dataclass(frozen=True)
class Shape:
    """One SKA problem: x (N, C, H, W), w (N, Cw, K*K, H, W)."""
    name: str
    n: int
    c: int
    cw: int
    h: int
    w: int
    k: int = 3

    @property
    def outputs(self) -> int:
        return self.n * self.c * self.h * self.w


def lsnet_shapes(batch: int, resolution: int | tuple[int, int] = 224, model: str | None = None) -> list[Shape]:
    """Stages with at least one LSConv (stages 1-3 of depth >= 2) of ``model`` (default: T, S and B), at
    ``resolution`` (one int: square; or (H, W))."""
    shapes = []
    h0, w0 = parse_resolution(resolution)
    for name, cfg in CONFIGS.items():
        if model is not None and name != model:
            continue
        rh, rw = h0 // 8, w0 // 8
        for stage, (dim, depth) in enumerate(zip(cfg.embed_dim, cfg.depth), start=1):
            if stage > 1:
                rh, rw = (rh - 1) // 2 + 1, (rw - 1) // 2 + 1
            if stage <= 3 and depth >= 2:
                shapes.append(Shape(f"{name}.stage{stage}", batch, dim, dim // 8, rh, rw))
    return shapes


def tensor_bytes(shape: Shape, mode: str, elem: int) -> int:
    """Bytes that a pass must move at least once: forward x + w + y; backward gy + x + w + dx + dw."""
    x = shape.n * shape.c * shape.h * shape.w * elem
    w = shape.n * shape.cw * shape.k ** 2 * shape.h * shape.w * elem
    fwd = 2 * x + w
    if mode == "fwd":
        return fwd
    if mode == "bn_add":
        return fwd + 2 * shape.c * 4
    if mode == "fwd_bwd":
        return fwd + 3 * x + 2 * w
    raise ValueError(f"unknown mode {mode!r}")


def flops(shape: Shape, mode: str) -> int:
    """2 K^2 per output for the forward (a multiply and an add per tap), 4 K^2 for dx plus dw."""
    per = {"fwd": 2, "bn_add": 2, "fwd_bwd": 6}[mode] * shape.k ** 2
    return per * shape.outputs + (3 * shape.outputs if mode == "bn_add" else 0)


def _base_model(model: str) -> str:
    return model.removesuffix("_distill")


def expand(cell: Cell) -> list[Cell]:
    """One cell per stage shape x backend x mode of ``cell.model`` (none for models without SKA)."""
    o: Options = cell.opts
    stages = set(_csv(o.op_stages))
    shapes = [s for s in lsnet_shapes(cell.batch_size, cell.resolution, _base_model(cell.model))
              if not stages or s.name.split(".")[1] in stages]
    return [cell.with_(options=dataclasses.replace(o, op_backends=b, op_modes=m, op_stages=s.name.split(".")[1]))
            for s in shapes for m in _csv(o.op_modes) for b in _csv(o.op_backends)]


def skip_reason(cell: Cell) -> str | None:
    """Why an (expanded) ops cell cannot run here, or None."""
    backend, mode = cell.opts.op_backends, cell.opts.op_modes
    if cell.dtype not in OP_DTYPES:
        return f"the ops suite measures one precision at a time ({', '.join(OP_DTYPES)}), not {cell.dtype!r}"
    if backend in ("triton", "official") and not is_cuda(cell.device):
        return "Triton kernels are benchmarked on CUDA only (the CPU interpreter is not a benchmark)"
    if backend == "official" and mode != "fwd":
        return "the official-design kernel is forward only"
    if backend in ("triton", "official"):
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
    return None


def _shape(cell: Cell) -> Shape:
    return next(s for s in lsnet_shapes(cell.batch_size, cell.resolution, _base_model(cell.model))
                if s.name.endswith("." + cell.opts.op_stages))


def describe(cell: Cell) -> dict[str, Any]:
    """The shape, backend, mode, FLOPs and bytes moved of an (expanded) ops cell."""
    o: Options = cell.opts
    shape = _shape(cell)
    size = torch.empty((), dtype=OP_DTYPES.get(cell.dtype, torch.float32)).element_size()
    return {"bytes_moved": tensor_bytes(shape, o.op_modes, size),
            "extra": {"shape": shape.name, "x": [shape.n, shape.c, shape.h, shape.w], "cw": shape.cw, "k": shape.k,
                      "backend": o.op_backends, "mode": o.op_modes, "flops": flops(shape, o.op_modes)}}


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, channels_last: bool, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=g, device=device, dtype=dtype)
    w = torch.randn(shape.n, shape.cw, shape.k ** 2, shape.h, shape.w, generator=g, device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, w


def op_fn(backend: str, mode: str, x: torch.Tensor, w: torch.Tensor) -> Callable[[], Any]:
    """The timed callable of one backend and mode."""
    if mode == "fwd":
        if backend == "official":
            from suites import ska_official
            return lambda: ska_official.forward(x, w)
        if backend == "reference":
            return lambda: ska_reference(x, w)
        return lambda: ska(x, w, backend)
    if mode == "bn_add":
        c = x.shape[1]
        scale = torch.rand(c, device=x.device) + 0.5
        shift = torch.randn(c, device=x.device)
        return lambda: ska_bn_add(x, w, scale, shift, backend)
    xg = x.detach().clone().requires_grad_()
    wg = w.detach().clone().requires_grad_()
    gy = torch.randn_like(x)

    def fwd_bwd() -> None:
        xg.grad = wg.grad = None
        y = ska_reference(xg, wg) if backend == "reference" else ska(xg, wg, backend)
        y.backward(gy)
    return fwd_bwd


def copy_bandwidth(device: str, megabytes: int, min_time: float) -> float:
    """GB/s of ``dst.copy_(src)`` over ``megabytes`` MB: bytes read + written per second (median)."""
    src = torch.randn(megabytes * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    samples = timing.measure(lambda: dst.copy_(src), timing.timer_for(device), warmup=min(0.1, min_time),
                             min_time=min_time, min_samples=5)
    return 2 * src.numel() * 4 / (timing.summarize(samples)["latency_ms_p50"] * 1e-3) / 1e9


REFERENCE_BACKEND = "torch"     # every ops cell's ratio is against this backend at the same shape and mode


def reference_cell(cell: Cell) -> Cell:
    """The same shape and mode through :data:`REFERENCE_BACKEND`."""
    return cell.with_(options=dataclasses.replace(cell.opts, op_backends=REFERENCE_BACKEND))


@contextlib.contextmanager
def bench(cell: Cell, ctx: Context) -> Iterator[timing.Bench]:
    o: Options = cell.opts
    backend, mode = o.op_backends, o.op_modes
    shape, known = _shape(cell), describe(cell)
    moved, extra = known["bytes_moved"], known["extra"]
    dtype = OP_DTYPES[cell.dtype]
    x, w = make_inputs(shape, dtype, cell.device, cell.channels_last)
    fn = op_fn(backend, mode, x, w)
    copy_mb = o.copy_mb or (1024 if is_cuda(cell.device) else 256)
    copy_gbps = copy_bandwidth(cell.device, copy_mb, min(cell.min_time, 0.5))

    def finish(m: timing.Measurement) -> dict[str, Any]:
        stats = timing.trusted(m)
        gbps = moved / (stats["latency_ms_p50"] * 1e-3) / 1e9
        facts = {**extra, **m.facts(), "copy_gbps": copy_gbps, "copy_mb": copy_mb,
                 "tflops": extra["flops"] / (stats["latency_ms_p50"] * 1e-3) / 1e12, "flop_per_byte": extra["flops"] / moved}
        return {**stats, "bytes_moved": moved, "gbps": gbps, "pct_copy_bw": 100 * gbps / copy_gbps, "extra": facts}

    yield timing.Bench(fn, timing.timer_for(cell.device), finish,
                       scope=lambda: torch.inference_mode(mode != "fwd_bwd"))


SUITE = register(Suite("ops", sequential(bench), __name__, "the SKA op alone at LSNet stage shapes (roofline)",
                       default_batch_sizes=(8,), options=Options, expand=expand, timed=True, mode=None,
                       bench=bench, reference_cell=reference_cell, skip=skip_reason, describe=describe,
                       tasks=("classify",), tasks_why="the SKA op alone does not depend on the task; its "
                       "classify cells measure it at the resolution's stage shapes"))
