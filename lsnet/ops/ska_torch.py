"""Fast, memory-lean SKA in plain PyTorch (CPU and GPU).

The K*K taps are accumulated one at a time into the output with in-place ``addcmul_`` on
shifted views, so there is no (N, C, K*K, H, W) unfold, no padded copy of x and no per-channel
copy of the shared weights: channel c = g * Cw + cw reads weight channel cw through a
broadcast over the group axis g. Half-precision inputs accumulate in float32.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _taps(k: int, h: int, w: int) -> Iterator[tuple[int, slice, slice, slice, slice]]:
    """For every tap t = a*K + b: (t, out rows, out cols, in rows, in cols) of the valid region."""
    p = k // 2
    for a in range(k):
        dy = a - p
        for b in range(k):
            dx = b - p
            yield (a * k + b,
                   slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx)),
                   slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx)))


def _center_first(k: int, h: int, w: int) -> list[tuple[int, slice, slice, slice, slice]]:
    taps = list(_taps(k, h, w))
    c = (k * k) // 2
    return [taps[c]] + taps[:c] + taps[c + 1:]


def forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y[n, c] = sum_t shift_t(x)[n, c] * w[n, c % Cw, t]; shapes already validated."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    xv = x.unflatten(1, (c // cw, cw))
    wv = w.unsqueeze(1)
    y = torch.empty_like(x, dtype=_acc_dtype(x.dtype))
    yv = y.unflatten(1, (c // cw, cw))
    taps = _center_first(k, h, wd)
    t0 = taps[0][0]
    torch.mul(xv, wv[:, :, :, t0], out=yv)  # the centre tap covers the whole output
    for t, oy, ox, iy, ix in taps[1:]:
        yv[..., oy, ox].addcmul_(xv[..., iy, ix], wv[:, :, :, t, oy, ox])
    return y if y.dtype == x.dtype else y.to(x.dtype)


def backward(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, need_dx: bool = True,
             need_dw: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`forward`: dx scatters gy * w back through each tap; dw sums
    gy * shifted x over the C / Cw channels that share a weight channel."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    g = c // cw
    gyv = gy.unflatten(1, (g, cw))
    xv = x.unflatten(1, (g, cw))
    wv = w.unsqueeze(1)
    dx = dw = None
    if need_dx:
        dx = torch.zeros_like(x, dtype=_acc_dtype(x.dtype))
        dxv = dx.unflatten(1, (g, cw))
        for t, oy, ox, iy, ix in _taps(k, h, wd):
            dxv[..., iy, ix].addcmul_(gyv[..., oy, ox], wv[:, :, :, t, oy, ox])
        dx = dx.to(x.dtype)
    if need_dw:
        dw = torch.zeros_like(w, dtype=_acc_dtype(w.dtype))
        for t, oy, ox, iy, ix in _taps(k, h, wd):
            prod = gyv[..., oy, ox] * xv[..., iy, ix]
            dw[:, :, t, oy, ox] = prod.sum(1, dtype=dw.dtype)
        dw = dw.to(w.dtype)
    return dx, dw
