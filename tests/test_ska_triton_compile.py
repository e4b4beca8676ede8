"""The compiled (GPU) path of the SKA Triton kernels, checked without a GPU.

Triton's whole compiler (Python AST -> TTIR -> TTGIR -> LLVM -> PTX -> cubin via the bundled
ptxas) runs on the CPU. With a stand-in driver that reports an sm_90 (H100/H200) target, these
tests compile the kernels exactly as a launch on an H200 would, at LSNet shapes, and check the
properties the design relies on: it compiles for every dtype/layout/flag combination, the NCHW
forward keeps one register layout (no shared-memory layout conversions), and nothing uses atomics.
They need Triton's internals (driver registry, ``warmup``); if those differ they skip, saying why.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
import torch

triton = pytest.importorskip("triton")

from lsnet.ops import ska_triton  # noqa: E402
from suites import ska_official  # noqa: E402


class _Sm90Driver:
    """Just enough of a Triton driver for ``JITFunction.warmup`` to compile for sm_90."""

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget
        return GPUTarget("cuda", 90, 32)

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def get_device_interface(self):
        return torch.cuda

    def map_python_to_cpp_type(self, ty: str) -> str:
        from triton.backends.nvidia.driver import ty_to_cpp
        return ty_to_cpp(ty)

    def is_active(self) -> bool:
        return True


@contextlib.contextmanager
def sm90() -> Iterator[None]:
    try:
        from triton.runtime import driver
        previous = driver._active
    except (ImportError, AttributeError) as e:  # pragma: no cover - depends on the Triton version
        pytest.skip(f"this Triton's driver registry differs ({e!r})")
    driver.set_active(_Sm90Driver())
    try:
        yield
    finally:
        driver._active = previous


def compile_for_sm90(fn, unaligned: tuple[str, ...], launch) -> dict:
    """Compile a fresh (uncached) JITFunction of fn for sm_90; returns the compiled asm dict."""
    kernel = ska_triton.jit_kernel.__wrapped__(fn, False, unaligned)
    grid, args, kwargs = launch
    with sm90():
        try:
            compiled = kernel.warmup(*args, grid=grid, **kwargs)
        except (AttributeError, TypeError, NotImplementedError) as e:  # pragma: no cover
            if "Sm90Driver" in repr(e) or "driver" in str(e).lower():
                pytest.skip(f"this Triton needs more of the driver to compile ({e!r})")
            raise
    return compiled.asm


ATOMIC = re.compile(r"\b(atom|red)\.")
LSNET_B_STAGE1 = (2, 128, 16, 28, 28)  # x (N, C, H, W) and Cw, batch 2 (compilation does not run it)


def tensors(dtype: torch.dtype, channels_last: bool, k: int = 3, shape=LSNET_B_STAGE1):
    n, c, cw, h, w = shape
    x = torch.empty(n, c, h, w, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, torch.empty(n, cw, k * k, h, w, dtype=dtype)


@pytest.mark.parametrize("dtype,channels_last,bn", [
    (torch.float32, False, False), (torch.float16, False, True), (torch.bfloat16, True, False),
])
def test_forward_compiles_for_sm90(dtype, channels_last, bn):
    x, w = tensors(dtype, channels_last)
    scale = torch.empty(x.shape[1]) if bn else None
    asm = compile_for_sm90(ska_triton._ska_fwd_kernel, ska_triton._FWD_UNALIGNED,
                           ska_triton.fwd_launch(x, w, torch.empty_like(x), scale, scale))
    assert ".target sm_90" in asm["ptx"] and asm["cubin"]
    assert not ATOMIC.search(asm["ptx"])
    if not channels_last:
        # the bandwidth design: one register layout for all taps, nothing through shared memory
        assert "convert_layout" not in asm["ttgir"]
        assert "ld.shared" not in asm["ptx"]


@pytest.mark.parametrize("dtype,need", [(torch.float32, (True, True)), (torch.bfloat16, (True, True)),
                                        (torch.float16, (False, True)), (torch.float64, (True, False))])
def test_backward_compiles_for_sm90_without_atomics(dtype, need):
    x, w = tensors(dtype, False, k=5 if dtype == torch.float64 else 3)
    dx = torch.empty_like(x) if need[0] else None
    dw = torch.empty_like(w) if need[1] else None
    asm = compile_for_sm90(ska_triton._ska_bwd_kernel, ska_triton._BWD_UNALIGNED,
                           ska_triton.bwd_launch(torch.empty_like(x), x, w, dx, dw))
    assert not ATOMIC.search(asm["ptx"])
    assert "convert_layout" not in asm["ttgir"]


def test_official_design_compiles_for_sm90():
    x, w = tensors(torch.float32, False)
    asm = compile_for_sm90(ska_official._official_fwd_kernel, (),
                           ska_official.fwd_launch(x, w, torch.empty_like(x)))
    assert ".target sm_90" in asm["ptx"]
