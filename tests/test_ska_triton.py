"""Triton SKA kernels against the reference: forward, gradients, fused tail, tiles, layouts, dtypes.

Runs on CPU under the Triton interpreter (``TRITON_INTERPRET=1``, set per test so the rest of the
suite is unaffected) and, where a GPU is present, compiled on CUDA. Shapes are tiny because the
interpreter executes every program in Python.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from lsnet.ops import ska, ska_bn_add, ska_reference  # noqa: E402
from lsnet.ops import ska_triton  # noqa: E402
from suites import ska_official  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# (rtol, atol) against a float64 reference computed from the same (rounded) inputs
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5),
       torch.float16: (2e-3, 2e-3), torch.bfloat16: (1e-2, 1e-2)}
GRAD_TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5),
            torch.float16: (4e-3, 4e-3), torch.bfloat16: (2e-2, 2e-2)}


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch) -> str:
    """CPU runs interpreted, CUDA compiled; the env var is restored after each test."""
    if request.param == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return request.param


def make(n: int, c: int, cw: int, h: int, w: int, k: int, dtype: torch.dtype, device: str,
         channels_last: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    wt = torch.randn(n, cw, k * k, h, w, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, wt


def ref_grads(x: torch.Tensor, w: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().to(torch.float64).clone().requires_grad_()
    wr = w.detach().to(torch.float64).clone().requires_grad_()
    ska_reference(xr, wr).backward(gy.to(torch.float64))
    return xr.grad, wr.grad


def close(actual: torch.Tensor, expected: torch.Tensor, tol: tuple[float, float]) -> None:
    torch.testing.assert_close(actual.to(torch.float64).cpu(), expected.to(torch.float64).cpu(),
                               rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64],
                         ids=str)
def test_forward_matches_reference(device, dtype, k, channels_last):
    x, w = make(2, 16, 4, 7, 9, k, dtype, device, channels_last)
    y = ska(x, w, "triton")
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    assert y.stride() == x.stride()  # same memory format, no copy
    close(y, ska_reference(x.double(), w.double()), TOL[dtype])


def test_weight_channel_is_c_mod_cw(device):
    """c % Cw, not c // (C / Cw): the two differ for these shapes, so a mix-up fails here."""
    x, w = make(1, 6, 3, 4, 5, 3, torch.float32, device)
    y = ska(x, w, "triton")
    for c in range(6):
        expect = ska_reference(x[:, c:c + 1], w[:, c % 3:c % 3 + 1])
        close(y[:, c:c + 1], expect, TOL[torch.float32])
    other = ska_reference(x[:, 1:2], w[:, 0:1])  # what c // 2 would give for channel 1
    assert not torch.allclose(y[:, 1:2].cpu(), other.cpu(), atol=1e-3)


def _backward_through_triton(x: torch.Tensor, w: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Backpropagate a random gy through the triton SKA (filling x.grad, w.grad); return the reference grads."""
    x.requires_grad_()
    w.requires_grad_()
    y = ska(x, w, "triton")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(y)
    y.backward(gy)
    return ref_grads(x, w, gy)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gradients_match_reference(device, dtype, k, channels_last):
    x, w = make(2, 12, 4, 7, 9, k, dtype, device, channels_last, seed=1)
    dx_ref, dw_ref = _backward_through_triton(x, w, seed=2)
    assert x.grad.stride() == x.stride() and w.grad.stride() == w.stride()
    close(x.grad, dx_ref, GRAD_TOL[dtype])
    close(w.grad, dw_ref, GRAD_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_gradients(device, dtype):
    x, w = make(2, 8, 4, 5, 6, 3, dtype, device, channels_last=dtype == torch.bfloat16, seed=3)
    dx_ref, dw_ref = _backward_through_triton(x, w, seed=4)
    assert x.grad.dtype == dtype and w.grad.dtype == dtype
    close(x.grad, dx_ref, GRAD_TOL[dtype])
    close(w.grad, dw_ref, GRAD_TOL[dtype])


@pytest.mark.parametrize("need", [(True, False), (False, True)], ids=["dx_only", "dw_only"])
def test_one_gradient_only(device, need):
    x, w = make(1, 8, 2, 6, 5, 3, torch.float32, device, seed=5)
    x.requires_grad_(need[0])
    w.requires_grad_(need[1])
    y = ska(x, w, "triton")
    gy = torch.randn_like(y)
    y.backward(gy)
    dx_ref, dw_ref = ref_grads(x, w, gy)
    if need[0]:
        assert w.grad is None
        close(x.grad, dx_ref, GRAD_TOL[torch.float32])
    else:
        assert x.grad is None
        close(w.grad, dw_ref, GRAD_TOL[torch.float32])


def test_gradcheck_float64(device):
    x, w = make(1, 4, 2, 3, 4, 3, torch.float64, device, seed=6)
    x.requires_grad_()
    w.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ska(a, b, "triton"), (x, w), fast_mode=True)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("block_p,block_cw", [(16, 2), (8, 4)])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_small_tiles_cross_borders(device, k, block_p, block_cw, channels_last):
    """Several pixel and weight-channel blocks, partial last blocks, G = 3 (not a power of two)."""
    x, w = make(1, 15, 5, 5, 7, k, torch.float32, device, channels_last, seed=7)
    gy = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64).to(x)
    kw = dict(block_p=block_p, block_cw=block_cw)
    close(ska_triton.forward(x, w, **kw), ska_reference(x.double(), w.double()), TOL[torch.float32])
    dx, dw = ska_triton.backward(gy, x, w, True, True, **kw)
    dx_ref, dw_ref = ref_grads(x, w, gy)
    close(dx, dx_ref, GRAD_TOL[torch.float32])
    close(dw, dw_ref, GRAD_TOL[torch.float32])


def test_strided_views(device):
    """Non-dense x (a column slice), a channels_last-style 5-D w view, a transposed gy: no copies."""
    g = torch.Generator().manual_seed(9)
    big = torch.randn(2, 8, 6, 11, generator=g).to(device)
    x = big[:, :, :, 1:8]                                        # rows not dense
    cv4 = torch.randn(2, 2 * 9, 6, 7, generator=g).to(device).to(memory_format=torch.channels_last)
    w = cv4.view(2, 2, 9, 6, 7)                                  # how LKP's view looks under NHWC
    assert not w.is_contiguous() and not x.is_contiguous()
    close(ska_triton.forward(x, w), ska_reference(x.double(), w.double()), TOL[torch.float32])
    gy = torch.randn(2, 8, 7, 6, generator=g).to(device).transpose(2, 3)
    dx, dw = ska_triton.backward(gy, x, w, True, True)
    dx_ref, dw_ref = ref_grads(x, w, gy)
    close(dx, dx_ref, GRAD_TOL[torch.float32])
    close(dw, dw_ref, GRAD_TOL[torch.float32])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_fused_bn_add(device, dtype, channels_last):
    x, w = make(2, 16, 4, 7, 9, 3, dtype, device, channels_last, seed=10)
    g = torch.Generator().manual_seed(11)
    scale = (1 + 0.1 * torch.randn(16, generator=g)).to(device)   # fp32 while x may be fp16
    shift = (0.1 * torch.randn(16, generator=g)).to(device)
    with torch.no_grad():
        y = ska_bn_add(x, w, scale, shift, "triton")
    assert y.dtype == dtype and y.stride() == x.stride()
    xd = x.double()
    expect = xd + ska_reference(xd, w.double()) * scale.double().view(1, -1, 1, 1) + shift.double().view(1, -1, 1, 1)
    close(y, expect, TOL[dtype])


def test_cpu_needs_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, w = make(1, 2, 1, 3, 3, 3, torch.float32, "cpu")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        ska_triton.forward(x, w)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        ska(x, w, "triton")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_official_design_matches_reference(device, dtype, k, channels_last):
    x, w = make(2, 12, 4, 5, 7, k, dtype, device, channels_last, seed=12)
    y = ska_official.forward(x, w)
    assert y.dtype == dtype and y.is_contiguous()
    close(y, ska_reference(x.double(), w.double()), TOL[dtype])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (compiled kernels at LSNet sizes)")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c,hw", [(128, 28), (256, 14), (384, 7)])
def test_cuda_lsnet_shapes(monkeypatch, dtype, channels_last, c, hw):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, w = make(4, c, c // 8, hw, hw, 3, dtype, "cuda", channels_last, seed=13)
    x.requires_grad_()
    w.requires_grad_()
    y = ska(x, w, "triton")
    close(y.detach(), ska_reference(x.detach().double(), w.detach().double()), TOL[dtype])
    close(ska_official.forward(x.detach(), w.detach()), y.detach(), TOL[dtype])
    gy = torch.randn_like(y)
    y.backward(gy)
    dx_ref, dw_ref = ref_grads(x, w, gy)
    close(x.grad, dx_ref, GRAD_TOL[dtype])
    close(w.grad, dw_ref, (GRAD_TOL[dtype][0], GRAD_TOL[dtype][1] * 4))  # sums of 8 products
