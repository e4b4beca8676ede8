"""A faithful re-creation of the official LSNet SKA Triton forward kernel's *design*, for comparison.

The official release ships SKA only as a flat, elementwise Triton kernel; this module rebuilds that
design (not its code) so the ops benchmark can put the tiled kernel of ``lsnet.ops.ska_triton``
next to it on the same machine:

* one program per ``BLOCK = 1024`` consecutive outputs of the contiguous (N, C, H, W) output;
* every output decodes its own ``(n, c, i, j)`` with runtime divisions and remainders;
* a runtime loop over the K x K taps (K is not a compile-time constant), each tap doing a masked
  load of x *and* a masked load of w, with the full address arithmetic for both;
* so every w element is loaded once per channel that shares it (C / Cw times) and every x element
  K*K times, and inputs are made contiguous first (a channels_last input is copied).

Accumulation is in fp32 (fp64 for fp64), products included. Forward only; comparison use only.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from lsnet.ops.ska import check_shapes
from lsnet.ops.ska_triton import device_of, interpreting, jit_kernel

BLOCK = 1024


def _official_fwd_kernel(x_ptr, w_ptr, y_ptr, total, C, H, W, CW, KS, PAD,
                         BLOCK: tl.constexpr, ACC: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < total
    n = offs // (C * H * W)
    c = (offs // (H * W)) % C
    i = (offs // W) % H
    j = offs % W
    acc = tl.full([BLOCK], 0.0, ACC)  # tl.full: a builtin (see lsnet.ops.ska_triton)
    # runtime loops over the taps (K is an ordinary argument, as in the official kernel); written
    # as while loops because Triton 3.6's interpreter cannot take range() of a runtime value
    a = 0
    while a < KS:
        ii = i - PAD + a
        row_ok = (ii >= 0) & (ii < H)
        b = 0
        while b < KS:
            jj = j - PAD + b
            ok = row_ok & (jj >= 0) & (jj < W)
            x_off = ((n * C + c) * H + ii) * W + jj
            w_off = ((n * CW + c % CW) * KS * KS + a * KS + b) * H * W + i * W + j
            xv = tl.load(x_ptr + x_off, mask=m & ok, other=0.0).to(ACC)
            wv = tl.load(w_ptr + w_off, mask=m, other=0.0).to(ACC)
            acc += tl.where(m & ok, xv * wv, 0.0)
            b += 1
        a += 1
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=m)


def fwd_launch(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> tuple[tuple[int], tuple, dict]:
    """(grid, args, kwargs) of the official-design kernel for contiguous x, w, y."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    return ((triton.cdiv(y.numel(), BLOCK),), (x, w, y, y.numel(), c, h, wd, cw, k, k // 2),
            dict(BLOCK=BLOCK, ACC=tl.float64 if x.dtype == torch.float64 else tl.float32, num_warps=4,
                 enable_fp_fusion=True))


def fwd_kernel(interpret: bool):
    """The official-design kernel, compiled or interpreted."""
    return jit_kernel(_official_fwd_kernel, interpret)


def forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """SKA forward in the official kernel's design; returns a contiguous (N, C, H, W) tensor."""
    check_shapes(x, w)
    x, w = x.contiguous(), w.contiguous()
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    grid, args, kwargs = fwd_launch(x, w, y)
    with device_of(x):
        fwd_kernel(interpreting(x.device))[grid](*args, **kwargs)
    return y
