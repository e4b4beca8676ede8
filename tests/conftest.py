"""Shared test fixtures: the test data folder and the deterministic parameter rule of the reference logits."""
from __future__ import annotations

import copy
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

DATA = Path(__file__).parent / "data"


def rule_tensor(key: str, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """The deterministic parameter rule (float64) behind the reference logits, for one floating tensor:
    a generator seeded with the key's CRC-32 draws the values."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    if key.endswith(("running_mean", "bias")):
        return 0.01 * r
    if "attention_biases" in key:
        return 0.5 * r
    if r.dim() == 1:
        return 0.7 + 0.05 * r
    return r / r[0].numel() ** 0.5


def deterministic_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The rule applied to every floating tensor of ``model``'s state dict (integer tensors unchanged)."""
    return {k: rule_tensor(k, v.shape) if v.is_floating_point() else v for k, v in sorted(model.state_dict().items())}


def rule_state_from_manifest(manifest: dict[str, list[int]], integer_keys: tuple[str, ...] = ("num_batches_tracked",)
                             ) -> dict[str, torch.Tensor]:
    """The rule applied to a state-dict manifest (key -> shape): the state dict its reference logits used;
    integer tensors (BatchNorm's ``num_batches_tracked``) are zeros."""
    return {k: torch.zeros(shape, dtype=torch.long) if k.endswith(integer_keys) else rule_tensor(k, tuple(shape))
            for k, shape in sorted(manifest.items())}


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
