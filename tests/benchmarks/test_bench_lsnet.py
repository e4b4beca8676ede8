"""pytest-benchmark: the SKA op and fused models on CPU with 2 threads, the variants the gate does not
time (the gated ones are in ``test_bench_cases.py``, in the same groups).

Targets: SKA ``torch`` at x (16, 128, 28, 28), Cw 16 at least 5x faster than the unfold reference;
LSNet-T fused at batch 16 at least 1.25x faster than with the unfold SKA, batch 1 no slower. Compare
the backends within each group of the benchmark table: ``ska_forward n=16 c=128 h=28 cw=16``,
``ska_forward n=16 c=128 h=14 cw=16`` (LSNet-T stage 2, with the gate's ``ska_torch_forward``),
``fused_forward name=lsnet_t batch=1 resolution=224`` (with the gate's ``lsnet_t_fused_bs1``), ...
"""
from __future__ import annotations

from functools import partial

import pytest
import torch

from suites.gate.cases import fused_forward, params, ska_forward, ska_forward_backward

BACKENDS = ("reference", "torch")
SKA = {"28px": (16, 128, 28, 16), "t-stage2": (16, 128, 14, 16), "t-stage3": (16, 256, 7, 32)}

SKA_FORWARD = {f"{shape}-{backend}": partial(ska_forward, *SKA[shape], backend)
               for shape in SKA for backend in BACKENDS
               if (shape, backend) != ("t-stage2", "torch")}      # that one is the gate's ska_torch_forward
SKA_FORWARD_BACKWARD = {f"28px-{backend}": partial(ska_forward_backward, *SKA["28px"], backend)
                        for backend in BACKENDS}
FUSED = {
    "lsnet_t-bs1-ska-unfold": partial(fused_forward, "lsnet_t", 1, ska_backend="reference"),
    "lsnet_t-bs16": partial(fused_forward, "lsnet_t", 16),
    "lsnet_t-bs16-ska-unfold": partial(fused_forward, "lsnet_t", 16, ska_backend="reference"),
    **{f"{name}-bs{batch}": partial(fused_forward, name, batch)
       for name in ("lsnet_s", "lsnet_b") for batch in (1, 16)},
}
VARIANTS = {**SKA_FORWARD, **SKA_FORWARD_BACKWARD, **FUSED}


@pytest.mark.parametrize("variant", SKA_FORWARD)
def test_ska_forward(timed, variant):
    p = params(SKA_FORWARD[variant])
    assert timed(SKA_FORWARD[variant]).shape == (p["n"], p["c"], p["h"], p["h"])


@pytest.mark.parametrize("variant", SKA_FORWARD_BACKWARD)
def test_ska_forward_backward(timed, variant):
    p = params(SKA_FORWARD_BACKWARD[variant])
    dx, dw = timed(SKA_FORWARD_BACKWARD[variant])
    assert dx.shape == (p["n"], p["c"], p["h"], p["h"]) and dw.shape == (p["n"], p["cw"], 9, p["h"], p["h"])


@pytest.mark.parametrize("variant", FUSED)
def test_fused(timed, variant):
    case = FUSED[variant]
    batch = params(case)["batch"]
    out = timed(case, rounds=3 if batch > 1 else 8)
    assert isinstance(out, torch.Tensor) and out.shape == (batch, 1000)
