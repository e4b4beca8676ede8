"""pytest-benchmark: the SKA op and LSNet fused forward on CPU with 2 threads (issue targets).

Targets: SKA ``auto`` (torch) at x (16, 128, 28, 28), Cw 16 at least 5x faster than the unfold
reference; LSNet-T fused at batch 16 at least 1.25x faster than with the unfold SKA, batch 1 no
slower. Compare the ``ska-forward`` and ``lsnet_t-fused-bs*`` groups in the benchmark table.
"""
from __future__ import annotations

import pytest
import torch

import lsnet
from lsnet.ops import ska


def _ska_inputs(n=16, c=128, h=28, w=28, cw=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, h, w, generator=g), torch.randn(n, cw, 9, h, w, generator=g)


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_ska_forward(benchmark, backend):
    benchmark.group = "ska-forward (16,128,28,28) Cw16"
    x, w = _ska_inputs()
    with torch.inference_mode():
        y = benchmark(ska, x, w, backend)
    assert y.shape == x.shape


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_ska_forward_backward(benchmark, backend):
    benchmark.group = "ska-forward-backward (16,128,28,28) Cw16"
    x, w = _ska_inputs()
    x.requires_grad_(True)
    w.requires_grad_(True)
    gy = torch.randn_like(x)

    def step():
        return torch.autograd.grad(ska(x, w, backend), (x, w), gy)

    dx, dw = benchmark(step)
    assert dx.shape == x.shape and dw.shape == w.shape


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("shape", [(16, 128, 14, 14, 16), (16, 256, 7, 7, 32)], ids=["t-stage2", "t-stage3"])
def test_ska_lsnet_t_stages(benchmark, shape, backend):
    benchmark.group = f"ska-forward lsnet_t {'stage2' if shape[2] == 14 else 'stage3'}, batch 16"
    x, w = _ska_inputs(*shape)
    with torch.inference_mode():
        benchmark(ska, x, w, backend)


def _fused(name: str, ska_backend: str = "auto") -> torch.nn.Module:
    torch.manual_seed(0)
    return lsnet.set_ska_backend(lsnet.fuse(lsnet.create_model(name).eval()), ska_backend)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("ska_backend", ["auto", "reference"], ids=["ska-auto", "ska-unfold"])
def test_lsnet_t_fused(benchmark, batch, ska_backend):
    benchmark.group = f"lsnet_t-fused-bs{batch}"
    model = _fused("lsnet_t", ska_backend)
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        out = benchmark.pedantic(model, (x,), rounds=5 if batch > 1 else 15, warmup_rounds=1)
    assert out.shape == (batch, 1000)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("name", ["lsnet_s", "lsnet_b"])
def test_lsnet_sb_fused(benchmark, name, batch):
    benchmark.group = f"{name}-fused"
    model = _fused(name)
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        out = benchmark.pedantic(model, (x,), rounds=3 if batch > 1 else 8, warmup_rounds=1)
    assert out.shape == (batch, 1000)
