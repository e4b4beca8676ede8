"""SKA op: every CPU backend equals the unfold reference, in values and gradients, and stays lean."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lsnet.ops import available_backends, ska, ska_bn_add, ska_reference
from lsnet.ops import ska_torch

SHAPES = [  # (N, C, H, W, Cw, K)
    (2, 16, 7, 9, 4, 3),
    (1, 8, 5, 5, 8, 5),
    (3, 6, 4, 11, 1, 3),
    (1, 12, 6, 3, 3, 7),
    (2, 4, 3, 3, 2, 1),
    (1, 10, 1, 2, 5, 3),
]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def make(n, c, h, w, cw, k, dtype=torch.float64, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)
    wt = torch.randn(n, cw, k * k, h, w, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)
    return x, wt


def naive(x, w):
    """Loop form of the definition, for the reference itself."""
    n, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = int(kk ** 0.5)
    p = k // 2
    y = torch.zeros_like(x)
    for a in range(k):
        for b in range(k):
            for i in range(h):
                for j in range(wd):
                    ii, jj = i + a - p, j + b - p
                    if 0 <= ii < h and 0 <= jj < wd:
                        y[:, :, i, j] += x[:, :, ii, jj] * w[:, torch.arange(c) % cw, a * k + b, i, j]
    return y


def test_reference_matches_definition():
    x, w = make(2, 6, 4, 5, 3, 3)
    torch.testing.assert_close(ska_reference(x, w), naive(x, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", ["torch"])
def test_forward_and_gradients_equal_reference(shape, backend):
    x, w = make(*shape, requires_grad=True)
    gy = torch.randn(x.shape, dtype=x.dtype)
    y_ref = ska_reference(x, w)
    dx_ref, dw_ref = torch.autograd.grad(y_ref, (x, w), gy)
    y = ska(x, w, backend)
    dx, dw = torch.autograd.grad(y, (x, w), gy)
    for got, want in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES[:4])
def test_gradcheck_torch_backend(shape):
    x, w = make(*shape, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ska(a, b, "torch"), (x, w), fast_mode=True)


def test_gradient_of_one_input_only():
    x, w = make(2, 8, 5, 5, 4, 3)
    w.requires_grad_(True)
    (dw,) = torch.autograd.grad(ska(x, w, "torch").sum(), (w,))
    (dw_ref,) = torch.autograd.grad(ska_reference(x, w).sum(), (w,))
    torch.testing.assert_close(dw, dw_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_memory_formats(dtype, channels_last):
    x, w = make(2, 16, 9, 7, 4, 3, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = ska(x, w, "torch")
    assert y.dtype == dtype and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    want = ska_reference(x.double(), w.double())
    torch.testing.assert_close(y.double(), want, rtol=TOL[dtype], atol=TOL[dtype] * 10)


def test_auto_picks_torch_on_cpu_and_reference_is_always_there():
    assert available_backends("cpu")[:2] == ["reference", "torch"]
    x, w = make(1, 4, 3, 3, 2, 3)
    torch.testing.assert_close(ska(x, w), ska(x, w, "torch"))


@pytest.mark.parametrize("x_shape,w_shape,match", [
    ((2, 16, 7, 7), (2, 5, 9, 7, 7), "not a multiple"),
    ((2, 16, 7, 7), (2, 4, 8, 7, 7), "odd K"),
    ((2, 16, 7, 7), (2, 4, 4, 7, 7), "odd K"),
    ((2, 16, 7, 7), (1, 4, 9, 7, 7), "batch and spatial"),
    ((2, 16, 7, 7), (2, 4, 9, 7, 6), "batch and spatial"),
    ((16, 7, 7), (2, 4, 9, 7, 7), "4-D"),
])
def test_bad_shapes_name_the_shapes(x_shape, w_shape, match):
    with pytest.raises(ValueError, match=match) as e:
        ska(torch.randn(x_shape), torch.randn(w_shape))
    assert str(tuple(x_shape)) in str(e.value) and str(tuple(w_shape)) in str(e.value)


def test_bad_dtype_and_backend():
    with pytest.raises(ValueError, match="dtype"):
        ska(torch.randn(1, 4, 3, 3), torch.randn(1, 2, 9, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown backend"):
        ska(torch.randn(1, 4, 3, 3), torch.randn(1, 2, 9, 3, 3), "cuda_magic")


@pytest.mark.parametrize("grad", [False, True])
def test_ska_bn_add_equals_composition(grad):
    x, w = make(2, 16, 6, 5, 4, 3, requires_grad=grad)
    scale, shift = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    want = ska_reference(x, w) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1) + x
    with torch.set_grad_enabled(grad):
        got = ska_bn_add(x, w, scale, shift, "torch")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="one value per channel"):
        ska_bn_add(x, w, scale[:4], shift, "torch")


class _AllocationLog(TorchDispatchMode):
    """Records the bytes of every new storage that an op returns (views share their input's)."""

    def __init__(self, *known: torch.Tensor):
        super().__init__()
        self.storages = {t.untyped_storage().data_ptr(): 0 for t in known}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.storages.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return out

    @property
    def new_bytes(self) -> int:
        return sum(self.storages.values())


def test_torch_backend_allocates_only_the_output():
    """No (N, C, K*K, H, W) unfold, no padded x, no per-channel copy of w: the output is the only buffer."""
    x, w = make(2, 32, 10, 10, 4, 3, dtype=torch.float32)
    with _AllocationLog(x, w) as log:
        ska_torch.forward(x, w)
    assert log.new_bytes == x.numel() * 4
    with _AllocationLog(x, w) as ref_log:
        ska_reference(x, w)
    assert ref_log.new_bytes >= 9 * x.numel() * 4  # the reference does materialise the unfold


def test_torch_backward_allocates_at_most_one_output_extra():
    x, w = make(2, 32, 10, 10, 4, 3, dtype=torch.float32)
    gy = torch.randn_like(x)
    with _AllocationLog(x, w, gy) as log:
        ska_torch.backward(gy, x, w)
    # dx, dw and one output-sized product per tap, freed before the next one
    assert log.new_bytes <= (x.numel() + w.numel() + 9 * x.numel()) * 4


def test_compiled_training_gradients_equal_eager():
    """torch.compile of a training step through the SKA op gives eager's gradients: the backward is
    one opaque op whose declared output layout matches what the backend returns."""
    import copy

    from lsnet.model import LSConv
    torch.manual_seed(0)
    block = LSConv(32).train()
    x = torch.randn(2, 32, 8, 8)
    eager, compiled = copy.deepcopy(block), torch.compile(copy.deepcopy(block))
    grads = []
    for mod in (eager, compiled):
        mod(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in mod.parameters()]))
    assert ((grads[0] - grads[1]).norm() / grads[0].norm()).item() < 1e-4
