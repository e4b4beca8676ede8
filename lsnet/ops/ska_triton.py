r"""Triton SKA backend: tiled, bandwidth-oriented forward, fused backward (dx and dw) and a fused
LSConv tail (``x + ska(x, w) * scale + shift``).

Design
------
One program owns ``(n, a block of BLOCK_CW weight channels, a block of BLOCK_P pixels)`` and *all*
``G = C / Cw`` channels that share those weight channels (``c = g * Cw + cw``, g padded to the power
of two BLOCK_G). Its register tile is ``[BLOCK_G, BLOCK_CW, BLOCK_P]`` and the K*K taps are
unrolled at compile time (``tl.static_range``), each a scalar offset on precomputed addresses:

* **w is read exactly once**: per tap, one ``[1, BLOCK_CW, BLOCK_P]`` load that broadcasts over the
  G channels using it (the official kernel reloads it for every channel, i.e. G times).
* **x is read once from DRAM**: the K*K shifted loads of a tile hit the same L1 lines (the halo
  rows of neighbouring pixel blocks are served by L2: pixel blocks are the fastest grid axis).
* **index arithmetic is per program, not per tap**: ``i = p // W`` and ``j = p % W`` are computed
  once; a tap adds ``dy * stride_h + dx * stride_w`` (in NCHW ``dx`` becomes the load's immediate
  offset) and tests only the borders it can cross (``dy < 0`` checks the top row only, ...), chosen
  at compile time. Channel masks are dropped when the tile has no channel padding (LSNet: G = 8).
* pixels are flattened (``p = i * W + j``): no padded columns for 28x28, 14x14 or 7x7 planes.
* **one register layout, nothing through shared memory** (NCHW): tensor pointers are not
  specialised on alignment and dense rows use the offset ``p * stride_w``, so Triton knows every
  access is contiguous along the pixels but vectorises none of them; otherwise the unshifted taps
  would be vectorised and the shifted ones not, and every tap would be converted between two
  layouts through shared memory (and Triton 3.6 even made the channel axis the fastest one:
  uncoalesced). A warp reads 32 consecutive pixels (128 B in fp32); each thread holds all G
  channels of its pixel, so the w value and the masks of a pixel serve G FMAs.
* layouts: strides are kernel arguments, nothing is copied. NCHW tiles are ``[G, 1..2, 64..128]``
  (coalesced along W); channels_last tiles are ``[G, Cw, 2..8]`` (coalesced along C: for LSNet,
  G * Cw = C, one pixel's whole channel vector); there w (N, Cw, K*K, H, W) is transposed through
  shared memory per tap, an inherent cost of mixing an NHWC x with a contiguous w.
* accumulation in fp32 (fp64 for fp64 inputs, which are supported); one rounding at the store.

Backward is one kernel over the same program layout (flags choose dx and/or dw): gy is read once
for both gradients.

* ``dx[n, c, q] = sum_t gy[n, c, q - s_t] * w[n, cw, t, q - s_t]``: a gather, no atomics; each w
  element is still read once (tap t only ever reads its plane at one shift).
* ``dw[n, cw, t, p] = sum_g gy[n, g Cw + cw, p] * x[n, g Cw + cw, p + s_t]``: the reduction over the
  G channels that share a weight happens inside the program (a register reduction over the tile's
  g axis, all in one thread), and each program owns its dw tile: **no atomics, no zero-fill**.

Bytes and expected bandwidth (H200)
-----------------------------------
Forward moves ``x + w + y = N * H * W * (2 C + K^2 Cw) * elem`` bytes (LSNet: Cw = C / 8, so w is
9/8 of x): at LSNet-B stage 1, batch 256, fp32 that is 102.8 + 115.6 + 102.8 = 321 MB (160.6 MB in
fp16/bf16); FLOPs are ``2 K^2`` per output (0.46 GFLOP), 1.4 FLOP/B, far below the H200 ridge,
so the kernel is memory-bound as long as its instruction stream keeps up. At a copy bandwidth of
about 4.0-4.3 TB/s the DRAM floor is ~75-80 us (fp32) / ~38-40 us (16-bit).
Compiled for sm_90 with Triton 3.6 (tests/test_ska_triton_compile.py does this without a GPU)
the NCHW forward is 480 SASS instructions per thread for 8 outputs (60 per output; 48 registers,
no shared memory, no spills); 16-bit is 72 per output (conversions and 16-bit zero-fill). At
~1.0e12 warp-instructions/s (132 SMs x 4 schedulers x ~1.9 GHz) that is ~46 us of issue time
in fp32 (60% of the DRAM time: memory-bound, expected 75-85% of the copy bandwidth) and ~55 us
in 16-bit (issue-bound: expected 60-70%). The official flat design runs ~281 instructions per
output (4 runtime div/mods per output, then per tap two masked loads with full address math):
~225 us, so the tiled kernel is expected to be ~2.5-3x faster in fp32 and ~4x in 16-bit.
Backward moves ``gy + x + w + dx + dw`` (3 x + 2 w: 540 MB at the shape above, fp32) at ~109
instructions per output (~84 us issue vs ~130 us DRAM): expected 75-85%.

On CPU the kernels run under the Triton interpreter (``TRITON_INTERPRET=1``), for tests only.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import triton
import triton.language as tl

# ----------------------------------------------------------------------------------------------
# kernels. Only builtins of triton.language are called (tl.full, not the @jit tl.zeros; tl.reduce
# with the standard sum combiner, not the @jit tl.sum): Triton decorates its own @jit helpers
# once, when it is imported, as compiled or interpreted functions, and the interpreter cannot call
# compiled ones; builtins work in both modes whatever the import order.
# ----------------------------------------------------------------------------------------------


def _ska_fwd_kernel(
    x_ptr, w_ptr, y_ptr, scale_ptr, shift_ptr,
    H, W, HW, CW, G,
    sxn, sxc, sxh, sxw,
    swn, swc, swt, swh, sww,
    syn, syc, syh, syw,
    K: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_CW: tl.constexpr, BLOCK_P: tl.constexpr,
    DENSE: tl.constexpr, EVEN_C: tl.constexpr, BN_ADD: tl.constexpr, ACC: tl.constexpr,
):
    """y[n, g Cw + cw, p] = sum_t x[n, g Cw + cw, p + s_t] * w[n, cw, t, p] (+ fused BN and residual)."""
    pid_p = tl.program_id(0)
    pid_cw = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)

    g = tl.arange(0, BLOCK_G)[:, None, None]
    cw = pid_cw * BLOCK_CW + tl.arange(0, BLOCK_CW)[None, :, None]
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)[None, None, :]
    i = p // W
    j = p - i * W
    c = g * CW + cw
    pmask = p < HW
    if EVEN_C:  # G == BLOCK_G and CW % BLOCK_CW == 0: masks depend on the pixel only
        cmask = g < BLOCK_G
        wmask = pmask
        m = pmask
    else:
        cmask = (g < G) & (cw < CW)
        wmask = (cw < CW) & pmask
        m = cmask & pmask
    if DENSE:  # rows dense in x, w and y: the pixel offset is p * stride_w, contiguous in p
        xpix = p * sxw
        wpix = p * sww
        ypix = p * syw
    else:
        xpix = i * sxh + j * sxw
        wpix = i * swh + j * sww
        ypix = i * syh + j * syw
    x_ptrs = x_ptr + n * sxn + (c * sxc + xpix)
    w_ptrs = w_ptr + n * swn + (cw * swc + wpix)

    CENTER = (K * K) // 2
    xc = tl.load(x_ptrs, mask=m, other=0.0).to(ACC)
    acc = xc * tl.load(w_ptrs + CENTER * swt, mask=wmask, other=0.0).to(ACC)
    for t in tl.static_range(K * K):
        if t != CENTER:
            DY = t // K - K // 2
            DX = t % K - K // 2
            tm = m
            if DY < 0:
                tm = tm & (i >= -DY)
            if DY > 0:
                tm = tm & (i < H - DY)
            if DX < 0:
                tm = tm & (j >= -DX)
            if DX > 0:
                tm = tm & (j < W - DX)
            xv = tl.load(x_ptrs + (DY * sxh + DX * sxw), mask=tm, other=0.0).to(ACC)
            wv = tl.load(w_ptrs + t * swt, mask=wmask, other=0.0).to(ACC)
            acc += xv * wv
    if BN_ADD:
        sc = tl.load(scale_ptr + c, mask=cmask, other=0.0).to(ACC)
        sh = tl.load(shift_ptr + c, mask=cmask, other=0.0).to(ACC)
        acc = acc * sc + sh + xc
    tl.store(y_ptr + n * syn + (c * syc + ypix), acc.to(y_ptr.dtype.element_ty), mask=m)


def _ska_bwd_kernel(
    gy_ptr, x_ptr, w_ptr, dx_ptr, dw_ptr,
    H, W, HW, CW, G,
    sgn, sgc, sgh, sgw,
    sxn, sxc, sxh, sxw,
    swn, swc, swt, swh, sww,
    sdn, sdc, sdh, sdw,
    svn, svc, svt, svh, svw,
    K: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_CW: tl.constexpr, BLOCK_P: tl.constexpr,
    DENSE: tl.constexpr, EVEN_C: tl.constexpr, NEED_DX: tl.constexpr, NEED_DW: tl.constexpr, ACC: tl.constexpr,
):
    """dx (gather of gy * w through every tap) and dw (sum over the G sharing channels, in-tile)."""
    pid_p = tl.program_id(0)
    pid_cw = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)

    g = tl.arange(0, BLOCK_G)[:, None, None]
    cw = pid_cw * BLOCK_CW + tl.arange(0, BLOCK_CW)[None, :, None]
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)[None, None, :]
    i = p // W
    j = p - i * W
    c = g * CW + cw
    pmask = p < HW
    if EVEN_C:
        wmask = pmask
        m = pmask
    else:
        wmask = (cw < CW) & pmask
        m = (g < G) & wmask
    if DENSE:
        gpix = p * sgw
        xpix = p * sxw
        wpix = p * sww
        dpix = p * sdw
        vpix = p * svw
    else:
        gpix = i * sgh + j * sgw
        xpix = i * sxh + j * sxw
        wpix = i * swh + j * sww
        dpix = i * sdh + j * sdw
        vpix = i * svh + j * svw
    gy_ptrs = gy_ptr + n * sgn + (c * sgc + gpix)
    x_ptrs = x_ptr + n * sxn + (c * sxc + xpix)
    w_ptrs = w_ptr + n * swn + (cw * swc + wpix)
    dw_ptrs = dw_ptr + n * svn + (cw * svc + vpix)

    if NEED_DW:
        gyc = tl.load(gy_ptrs, mask=m, other=0.0).to(ACC)
    if NEED_DX:
        dxacc = tl.full([BLOCK_G, BLOCK_CW, BLOCK_P], 0.0, ACC)
    for t in tl.static_range(K * K):
        DY = t // K - K // 2
        DX = t % K - K // 2
        if NEED_DX:
            # output pixel q - s_t must exist: i - DY in [0, H), j - DX in [0, W)
            bm = pmask
            if DY > 0:
                bm = bm & (i >= DY)
            if DY < 0:
                bm = bm & (i < H + DY)
            if DX > 0:
                bm = bm & (j >= DX)
            if DX < 0:
                bm = bm & (j < W + DX)
            gv = tl.load(gy_ptrs - (DY * sgh + DX * sgw), mask=m & bm, other=0.0).to(ACC)
            wv = tl.load(w_ptrs + (t * swt - DY * swh - DX * sww), mask=wmask & bm, other=0.0).to(ACC)
            dxacc += gv * wv
        if NEED_DW:
            # input pixel p + s_t must exist
            fm = m
            if DY < 0:
                fm = fm & (i >= -DY)
            if DY > 0:
                fm = fm & (i < H - DY)
            if DX < 0:
                fm = fm & (j >= -DX)
            if DX > 0:
                fm = fm & (j < W - DX)
            xv = tl.load(x_ptrs + (DY * sxh + DX * sxw), mask=fm, other=0.0).to(ACC)
            dwt = tl.reduce(gyc * xv, 0, tl.standard._sum_combine, keep_dims=True)
            tl.store(dw_ptrs + t * svt, dwt.to(dw_ptr.dtype.element_ty), mask=wmask)
    if NEED_DX:
        tl.store(dx_ptr + n * sdn + (c * sdc + dpix), dxacc.to(dx_ptr.dtype.element_ty), mask=m)


# ----------------------------------------------------------------------------------------------
# compiled or interpreted, chosen per call
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _interpret_env(on: bool) -> Iterator[None]:
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old


@functools.cache
def jit_kernel(fn: Callable[..., Any], interpret: bool, unaligned: tuple[str, ...] = ()) -> Any:
    """``triton.jit(fn)``, compiled or interpreted. Triton decides that when it decorates, from
    ``TRITON_INTERPRET``; deciding here per call keeps the module importable in any order.
    ``unaligned`` names arguments whose 16-byte alignment Triton must not specialise on."""
    with _interpret_env(interpret):
        return triton.jit(fn, do_not_specialize_on_alignment=list(unaligned))


# Tensor pointers are not specialised on alignment. The unshifted accesses (centre tap, w, y)
# would otherwise be vectorised while the shifted taps cannot be; Triton then gives them two
# register layouts and converts every tap through shared memory (and Triton 3.6 even picks the
# channel axis as the fastest one for the scalar loads: uncoalesced). With alignment unknown and
# contiguity known (pixel offset p * stride_w) every access uses one scalar layout whose fastest
# axis is the pixel (NCHW: a warp reads 32 consecutive pixels, 128 B in fp32) or the channel
# (channels_last, stride_c == 1 is still specialised), and no conversion is needed in NCHW.
_FWD_UNALIGNED = ("x_ptr", "w_ptr", "y_ptr", "scale_ptr", "shift_ptr")
_BWD_UNALIGNED = ("gy_ptr", "x_ptr", "w_ptr", "dx_ptr", "dw_ptr")



def interpreting(device: torch.device) -> bool:
    """Run Triton kernels interpreted? Yes under TRITON_INTERPRET=1; CPU tensors need it."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    if device.type != "cuda":
        raise RuntimeError(f"ska triton backend: tensors on {device} need a CUDA device "
                           "or TRITON_INTERPRET=1 (the Triton interpreter)")
    return False


@contextlib.contextmanager
def device_of(t: torch.Tensor) -> Iterator[None]:
    """Make ``t``'s CUDA device current (Triton launches on the current device)."""
    if t.is_cuda:
        with torch.cuda.device(t.device):
            yield
    else:
        yield


def _acc(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def _tile(x: torch.Tensor, cw: int, block_p: int | None = None,
          block_cw: int | None = None) -> tuple[int, int, int, int]:
    """(BLOCK_G, BLOCK_CW, BLOCK_P, num_warps) for x (N, C, H, W) with Cw weight channels.

    About 1024 outputs per program for 4-byte dtypes, 2048 for 16-bit ones (equal bytes), 512 for
    fp64. channels_last (stride_c == 1): all weight channels of a pixel in one tile (coalesced
    along C); otherwise the pixel axis is the long one (coalesced along W).
    """
    n, c, h, w = x.shape
    hw = h * w
    bg = _pow2(c // cw)
    target = {1: 1024, 2: 1024, 4: 1024, 8: 512}[x.element_size()]
    target = max(target, bg)
    cl = x.stride(1) == 1 and c > 1
    if cl:
        bcw = block_cw or min(_pow2(cw), max(1, target // bg))
        bp = block_p or min(_pow2(hw), max(1, target // (bg * bcw)))
    else:
        bp = block_p or min(_pow2(hw), max(16, target // bg))
        bcw = block_cw or min(_pow2(cw), max(1, target // (bg * bp)))
    elems = bg * bcw * bp
    num_warps = 8 if elems >= 4096 else 4 if elems >= 512 else 2 if elems >= 128 else 1
    return bg, bcw, bp, num_warps


def _dense(*ts: torch.Tensor) -> bool:
    """Every tensor's rows are dense (stride_h == W * stride_w): pixel offset = p * stride_w."""
    return all(t.stride(-2) == t.shape[-1] * t.stride(-1) for t in ts)


def _even_c(c: int, cw: int, bg: int, bcw: int) -> bool:
    """No channel padding in the tile (true for LSNet: G = 8): channel masks can be dropped."""
    return c // cw == bg and cw % bcw == 0


Launch = tuple[tuple[int, int, int], tuple[Any, ...], dict[str, Any]]


def fwd_launch(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None = None,
               shift: torch.Tensor | None = None, block_p: int | None = None,
               block_cw: int | None = None) -> Launch:
    """(grid, args, kwargs) of the forward kernel writing y (scale/shift: the fused tail)."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    bg, bcw, bp, warps = _tile(x, cw, block_p, block_cw)
    bn = scale is not None
    args = (x, w, y, scale if bn else x, shift if bn else x, h, wd, h * wd, cw, c // cw,
            *x.stride(), *w.stride(), *y.stride())
    kwargs = dict(K=math.isqrt(kk), BLOCK_G=bg, BLOCK_CW=bcw, BLOCK_P=bp, DENSE=_dense(x, w, y),
                  EVEN_C=_even_c(c, cw, bg, bcw), BN_ADD=bn, ACC=_acc(x.dtype), num_warps=warps, enable_fp_fusion=True)
    return (triton.cdiv(h * wd, bp), triton.cdiv(cw, bcw), n), args, kwargs


def bwd_launch(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, dx: torch.Tensor | None,
               dw: torch.Tensor | None, block_p: int | None = None, block_cw: int | None = None) -> Launch:
    """(grid, args, kwargs) of the backward kernel writing dx and/or dw (at least one given)."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    bg, bcw, bp, warps = _tile(x, cw, block_p, block_cw)
    dxa = dx if dx is not None else x
    dwa = dw if dw is not None else w
    args = (gy, x, w, dxa, dwa, h, wd, h * wd, cw, c // cw,
            *gy.stride(), *x.stride(), *w.stride(), *dxa.stride(), *dwa.stride())
    kwargs = dict(K=math.isqrt(kk), BLOCK_G=bg, BLOCK_CW=bcw, BLOCK_P=bp, DENSE=_dense(gy, x, w, dxa, dwa),
                  EVEN_C=_even_c(c, cw, bg, bcw), NEED_DX=dx is not None, NEED_DW=dw is not None,
                  ACC=_acc(x.dtype), num_warps=warps, enable_fp_fusion=True)
    return (triton.cdiv(h * wd, bp), triton.cdiv(cw, bcw), n), args, kwargs


def fwd_kernel(interpret: bool) -> Any:
    """The forward kernel, compiled or interpreted (launch with :func:`fwd_launch`'s arguments)."""
    return jit_kernel(_ska_fwd_kernel, interpret, _FWD_UNALIGNED)


def bwd_kernel(interpret: bool) -> Any:
    """The backward kernel, compiled or interpreted (launch with :func:`bwd_launch`'s arguments)."""
    return jit_kernel(_ska_bwd_kernel, interpret, _BWD_UNALIGNED)


def _launch_fwd(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None,
                block_p: int | None, block_cw: int | None) -> torch.Tensor:
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    grid, args, kwargs = fwd_launch(x, w, y, scale, shift, block_p, block_cw)
    kernel = fwd_kernel(interpreting(x.device))
    with device_of(x):
        kernel[grid](*args, **kwargs)
    return y


def forward(x: torch.Tensor, w: torch.Tensor, *, block_p: int | None = None,
            block_cw: int | None = None) -> torch.Tensor:
    """SKA forward; y has x's dtype and memory format. ``block_*`` override the tile (tests)."""
    return _launch_fwd(x, w, None, None, block_p, block_cw)


def forward_bn_add(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, *,
                   block_p: int | None = None, block_cw: int | None = None) -> torch.Tensor:
    """Fused inference LSConv tail ``x + ska(x, w) * scale[c] + shift[c]`` in one pass (fp32 math;
    scale and shift may be of another floating dtype than x)."""
    scale = scale.to(device=x.device).contiguous()
    shift = shift.to(device=x.device).contiguous()
    return _launch_fwd(x, w, scale, shift, block_p, block_cw)


def backward(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, need_dx: bool = True, need_dw: bool = True,
             *, block_p: int | None = None, block_cw: int | None = None
             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dx, dw) of the SKA forward for output gradient gy, both from one kernel pass."""
    if not (need_dx or need_dw):
        return None, None
    dx = torch.empty_like(x) if need_dx else None
    dw = torch.empty_like(w) if need_dw else None
    if x.numel() == 0:
        if dw is not None:
            dw.zero_()
        return dx, dw
    grid, args, kwargs = bwd_launch(gy, x, w, dx, dw, block_p, block_cw)
    kernel = bwd_kernel(interpreting(x.device))
    with device_of(x):
        kernel[grid](*args, **kwargs)
    return dx, dw
