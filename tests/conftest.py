"""Shared test fixtures: the test data folder and the deterministic parameter rule of the reference logits."""
from __future__ import annotations

import copy
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

DATA = Path(__file__).parent / "data"


def deterministic_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The deterministic parameter rule (float64) behind the reference logits of LSNet-T: per key, a
    generator seeded with the key's CRC-32 draws the values."""
    out = {}
    for k, v in sorted(model.state_dict().items()):
        if not v.is_floating_point():
            out[k] = v
            continue
        g = torch.Generator().manual_seed(zlib.crc32(k.encode()))
        r = torch.randn(v.shape, generator=g, dtype=torch.float64)
        if k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(v.shape, generator=g, dtype=torch.float64)
        elif k.endswith(("running_mean", "bias")):
            out[k] = 0.01 * r
        elif "attention_biases" in k:
            out[k] = 0.5 * r
        elif v.dim() == 1:
            out[k] = 0.7 + 0.05 * r
        else:
            out[k] = r / r[0].numel() ** 0.5
    return out


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def deterministic():
    """Load the deterministic parameters into a model (made float64) and return it in eval mode."""
    def apply(model: nn.Module) -> nn.Module:
        model = model.double()
        model.load_state_dict(deterministic_state(model))
        return model.eval()
    return apply


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture
def rel_err():
    """Max absolute difference of two tensors relative to the largest magnitude of the second."""
    return _rel_err


@pytest.fixture
def fuse_check(deterministic):
    """Give ``model`` the deterministic float64 parameters, fuse a copy, run both on one random batch
    of ``size`` x ``size`` images; return (fused model, unfused output, relative error of the fused)."""
    def check(model: nn.Module, size: int) -> tuple[nn.Module, torch.Tensor, float]:
        import lsnet
        model = deterministic(model)
        x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = model(x)
            fused = lsnet.fuse(copy.deepcopy(model))
            return fused, ref, _rel_err(fused(x), ref)
    return check


@pytest.fixture(autouse=True)
def _one_thread():
    """Unit tests run single-threaded: small float64 depthwise convs stall with several threads on
    busy 2-core machines (seconds instead of milliseconds). Benchmarks set their own count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
