"""FLOPs suite: parameters and MACs per image with fvcore (SKA and attention matmuls handled),
cross-checked with ``torch.utils.flop_counter.FlopCounterMode``; both counts are recorded."""
from __future__ import annotations

from typing import Any

import torch

from suites.core import modelprep
from suites.core.cell import Cell, Context
from suites.core.counting import count_params, flop_counter_macs, fvcore_macs
from suites.core.registry import Suite, register


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    """Counts on the CPU in float32 at ``cell.resolution`` (H x W; counts do not depend on device or batch),
    of the model the cell's task runs (classifier, backbone, or backbone + Semantic FPN); features and segment
    rows also record their output shapes (``feature_shapes``)."""
    model = modelprep.build_model(cell.with_(device="cpu", dtype="float32", channels_last=False, cuda_graphs=False))
    fv = fvcore_macs(model, cell.resolution)
    fc = flop_counter_macs(model, cell.resolution)
    facts: dict[str, Any] = {}
    if cell.task != "classify":
        with torch.inference_mode():
            facts = modelprep.task_facts(cell, model, model.eval()(torch.randn(1, 3, *cell.hw)))
    return {"params_m": count_params(model) / 1e6, "gmacs": fv / 1e9,
            "extra": {"macs_fvcore": fv, "macs_flop_counter": fc, "params": count_params(model),
                      "counter_agreement": fc / fv if fv else None, "counted_on": "cpu float32",
                      "input_hw": list(cell.hw), "torch": torch.__version__, **facts}}


SUITE = register(Suite("flops", run, __name__, "parameters and MACs per image (fvcore, FlopCounterMode)",
                       plan="per_model", mode=None))
