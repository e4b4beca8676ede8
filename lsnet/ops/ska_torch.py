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
import torch.nn.functional as F


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


CHUNK_BYTES = 512 * 1024   # accumulator bytes per backward chunk: it stays in L2 across its passes


def backward(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, need_dx: bool = True,
             need_dw: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`forward`: dx scatters gy * w back through each tap; dw sums
    gy * shifted x over the C / Cw channels that share a weight channel.

    The batch is processed in chunks of about ``CHUNK_BYTES`` of accumulator, so the K*K (dx) or
    C / Cw (dw) accumulation passes over one chunk hit the cache instead of memory.
    """
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    g = c // cw
    acc = _acc_dtype(x.dtype)
    esize = torch.empty((), dtype=acc).element_size()
    dx = torch.empty_like(x, dtype=acc) if need_dx else None
    dw = torch.empty_like(w, dtype=acc, memory_format=torch.contiguous_format) if need_dw else None
    per_sample = esize * ((c * h * wd if need_dx else 0) + (cw * kk * h * (wd + k - 1) if need_dw else 0))
    step = max(1, CHUNK_BYTES // max(per_sample, 1))
    for n0 in range(0, n, step):
        sl = slice(n0, min(n, n0 + step))
        gyv = gy[sl].unflatten(1, (g, cw))
        if dx is not None:
            _grad_x(dx[sl].unflatten(1, (g, cw)), gyv, w[sl], k)
        if dw is not None:
            if g <= kk:
                _grad_w(dw[sl], gyv, x[sl], k)
            else:
                _grad_w_by_tap(dw[sl], gyv, x[sl].unflatten(1, (g, cw)), k)
    return (dx.to(x.dtype) if dx is not None else None), (dw.to(w.dtype) if dw is not None else None)


def _grad_x(dxv: torch.Tensor, gyv: torch.Tensor, w: torch.Tensor, k: int) -> None:
    """dx (as its (N, G, Cw, H, W) view) = sum over taps of gy * w[tap], scattered back through the tap."""
    h, wd = dxv.shape[-2:]
    wv = w.unsqueeze(1)
    taps = _center_first(k, h, wd)
    t0 = taps[0][0]
    torch.mul(gyv, wv[:, :, :, t0], out=dxv)  # the centre tap covers the whole of dx
    for t, oy, ox, iy, ix in taps[1:]:
        dxv[..., iy, ix].addcmul_(gyv[..., oy, ox], wv[:, :, :, t, oy, ox])


def _grad_w(dw: torch.Tensor, gyv: torch.Tensor, x: torch.Tensor, k: int) -> None:
    """dw by channel group, on rows flattened at the padded width Wp = W + K - 1.

    In that layout tap (a, b) of output pixel (i, j) reads padded x at ``(i + a) * Wp + j + b``, so
    every tap is one contiguous window of the flat padded x and each of the C / Cw group passes is
    a single ``addcmul_`` over (N, Cw, K, K, H * Wp) with a long contiguous inner axis; the Wp - W
    extra columns per row are dropped when the result is copied into ``dw``.
    """
    n, g, cw, h, wd = gyv.shape
    p = k // 2
    wp, hp = wd + 2 * p, h + 2 * p + 1          # one extra bottom row keeps the last window in range
    xp = F.pad(x, (p, p, p, p + 1)).contiguous().view(n, g, cw, hp * wp)
    gyp = F.pad(gyv, (0, 2 * p)).contiguous().view(n, g, cw, 1, 1, h * wp)
    sn, sg, sc, _ = xp.stride()
    win = xp.as_strided((n, g, cw, k, k, h * wp), (sn, sg, sc, wp, 1, 1))
    dwp = torch.zeros((n, cw, k, k, h * wp), dtype=dw.dtype, device=dw.device)
    for j in range(g):   # (no ``out=`` first pass: under torch.compile it may re-stride dwp)
        dwp.addcmul_(gyp[:, j], win[:, j])
    dw.copy_(dwp.view(n, cw, k * k, h, wp)[..., :wd])


def _grad_w_by_tap(dw: torch.Tensor, gyv: torch.Tensor, xv: torch.Tensor, k: int) -> None:
    """dw tap by tap (for many channel groups per weight channel): sum over groups of gy * shifted x."""
    h, wd = xv.shape[-2:]
    dw.zero_()
    for t, oy, ox, iy, ix in _taps(k, h, wd):
        prod = gyv[..., oy, ox] * xv[..., iy, ix]
        dw[:, :, t, oy, ox] = prod.sum(1, dtype=dw.dtype)
