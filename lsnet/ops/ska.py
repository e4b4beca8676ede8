"""The SKA (small-kernel aggregation) operator of LSNet and its backends.

``y[n, c, i, j] = sum_{a, b} x[n, c, i + a - K//2, j + b - K//2] * w[n, c % Cw, a * K + b, i, j]``
with zero padding. Backends: ``reference`` (unfold, simple and obviously right), ``torch`` (fast
and memory-lean, any device) and ``triton`` (GPU kernels; on CPU only under TRITON_INTERPRET=1).
``torch`` and ``triton`` run through the custom op ``lsnet::ska`` so that fvcore, FlopCounterMode,
torch.compile and the profiler see one SKA node.
"""
from __future__ import annotations

import importlib
import math
import os
from types import ModuleType

import torch
import torch.nn.functional as F

BACKENDS = ("reference", "torch", "triton")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_shapes(x: torch.Tensor, w: torch.Tensor) -> None:
    """Raise ValueError, naming the shapes, unless x (N, C, H, W) and w (N, Cw, K*K, H, W) fit."""
    def fail(why: str) -> None:
        raise ValueError(f"ska: {why}; got x {tuple(x.shape)} and w {tuple(w.shape)} "
                         "(expected x (N, C, H, W), w (N, Cw, K*K, H, W), C % Cw == 0, K odd)")
    if x.dim() != 4 or w.dim() != 5:
        fail("x must be 4-D and w 5-D")
    n, c, h, wd = x.shape
    if w.shape[0] != n or tuple(w.shape[3:]) != (h, wd):
        fail("w must match x in batch and spatial size")
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    if cw == 0 or c % cw:
        fail(f"C={c} is not a multiple of Cw={cw}")
    if k * k != kk or k % 2 == 0:
        fail(f"K*K={kk} is not the square of an odd K")
    if x.dtype != w.dtype or x.dtype not in _FLOAT_DTYPES:
        fail(f"x and w must share one floating dtype (x {x.dtype}, w {w.dtype})")
    if x.device != w.device:
        fail(f"x and w are on different devices ({x.device}, {w.device})")


def ska_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Unfold-based SKA: materialises every KxK neighbourhood, then weights and sums it."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    cols = F.unfold(x, k, padding=k // 2).view(n, c // cw, cw, kk, h, wd)
    return (cols * w.unsqueeze(1)).sum(3).view(n, c, h, wd)


def _triton_usable(device: torch.device) -> bool:
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on tensors of ``device``."""
    device = torch.device(device)
    return [b for b in BACKENDS if b != "triton" or _triton_usable(device)]


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``auto`` to the fastest backend for ``device``; validate explicit names."""
    if backend == "auto":
        return "triton" if device.type == "cuda" and _triton_usable(device) else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"ska: unknown backend {backend!r}; choose one of {('auto',) + BACKENDS}")
    if backend == "triton" and not _triton_usable(device):
        raise RuntimeError(f"ska: backend 'triton' needs triton installed and a CUDA tensor "
                           f"(or TRITON_INTERPRET=1 on CPU); tensors are on {device}")
    return backend


def _impl(backend: str) -> ModuleType:
    return importlib.import_module(f"lsnet.ops.ska_{backend}")


@torch.library.custom_op("lsnet::ska", mutates_args=())
def _ska_op(x: torch.Tensor, w: torch.Tensor, backend: str) -> torch.Tensor:
    return _impl(backend).forward(x, w)


@_ska_op.register_fake
def _(x: torch.Tensor, w: torch.Tensor, backend: str) -> torch.Tensor:
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, w, backend = inputs
    ctx.save_for_backward(x, w)
    ctx.backend = backend


@torch.library.custom_op("lsnet::ska_backward", mutates_args=())
def _ska_backward_op(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, backend: str, need_dx: bool,
                     need_dw: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dw) of ``ska`` as one opaque op, so torch.compile never traces into a backend's in-place,
    view-based backward (it would functionalise it wrongly); a gradient not needed is an empty tensor."""
    fmt = _memory_format(x)
    dx, dw = _impl(backend).backward(gy.contiguous(memory_format=fmt), x, w, need_dx, need_dw)
    return (x.new_empty(0) if dx is None else dx.contiguous(memory_format=fmt)), \
        (w.new_empty(0) if dw is None else dw.contiguous())


@_ska_backward_op.register_fake
def _(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, backend: str, need_dx: bool,
      need_dw: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dx = torch.empty_like(x, memory_format=_memory_format(x)) if need_dx else x.new_empty(0)
    return dx, (torch.empty(w.shape, dtype=w.dtype, device=w.device) if need_dw else w.new_empty(0))


def _backward(ctx, gy: torch.Tensor):
    x, w = ctx.saved_tensors
    need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    dx, dw = _ska_backward_op(gy, x, w, ctx.backend, need_dx, need_dw)
    return (dx if need_dx else None), (dw if need_dw else None), None


_ska_op.register_autograd(_backward, setup_context=_setup_context)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


def ska(x: torch.Tensor, w: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Small-kernel aggregation of x (N, C, H, W) with per-pixel kernels w (N, Cw, K*K, H, W).

    Channel c uses weight channel ``c % Cw``. Differentiable in x and w on every backend.
    """
    check_shapes(x, w)
    backend = resolve_backend(backend, x.device)
    if backend == "reference":
        return ska_reference(x, w)
    return _ska_op(x, w, backend)


@torch.library.custom_op("lsnet::ska_bn_add", mutates_args=())
def _ska_bn_add_op(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                   backend: str) -> torch.Tensor:
    impl = _impl(backend)
    if hasattr(impl, "forward_bn_add"):
        return impl.forward_bn_add(x, w, scale, shift)
    c = x.shape[1]
    return impl.forward(x, w).mul_(scale.view(1, c, 1, 1)).add_(shift.view(1, c, 1, 1)).add_(x)


@_ska_bn_add_op.register_fake
def _(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, backend: str) -> torch.Tensor:
    return torch.empty_like(x)


def ska_bn_add(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
               backend: str = "auto") -> torch.Tensor:
    """Fused LSConv tail ``x + ska(x, w) * scale + shift`` (scale, shift per channel, from a folded BN).

    Without gradients this is one op (``lsnet::ska_bn_add``), using the backend's fused kernel
    where it has one; with gradients it is composed from :func:`ska`.
    """
    check_shapes(x, w)
    if scale.shape != (x.shape[1],) or shift.shape != (x.shape[1],):
        raise ValueError(f"ska_bn_add: scale {tuple(scale.shape)} and shift {tuple(shift.shape)} must be "
                         f"({x.shape[1]},), one value per channel of x {tuple(x.shape)}")
    backend = resolve_backend(backend, x.device)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, w, scale, shift))
    if backend == "reference" or needs_grad:
        c = x.shape[1]
        return torch.addcmul(shift.view(1, c, 1, 1) + x, ska(x, w, backend), scale.view(1, c, 1, 1))
    return _ska_bn_add_op(x, w, scale, shift, backend)
