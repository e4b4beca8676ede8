"""What each precision a cell can ask for (:data:`suites.core.schema.DTYPES`) means to the harness."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from suites.core.schema import DTYPES


@dataclass(frozen=True)
class Precision:
    """``weights``: the dtype of the model's parameters and inputs; ``parity_tol``: the largest relative
    error from eager float32 an engine's output may show; ``autocast``: float32 weights with the forward
    under autocast (float16 on CUDA, bfloat16 on CPU); ``quantized``: float32 weights that an engine
    quantises to int8 after export."""
    name: str
    weights: torch.dtype
    parity_tol: float
    autocast: bool = False
    quantized: bool = False     # int8: post-training quantisation by an engine (ONNX Runtime, OpenVINO)

    @property
    def half(self) -> bool:
        """Pure 16-bit: the weights themselves are float16 or bfloat16."""
        return self.weights in (torch.float16, torch.bfloat16)


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("float32", torch.float32, 1e-4),
    Precision("float16", torch.float16, 5e-2),
    Precision("bfloat16", torch.bfloat16, 5e-2),
    Precision("amp", torch.float32, 5e-2, autocast=True),
    # float32 weights exported, then quantised by the engine; parity_tol bounds the relative logit error
    # only (gross breakage): int8 is judged by top-1 agreement (suites.engines.quantize.judge)
    Precision("int8", torch.float32, 1.0, quantized=True),
)}
if tuple(PRECISIONS) != DTYPES:
    raise ImportError(f"suites.core.precision describes {tuple(PRECISIONS)} but the schema's DTYPES are {DTYPES}")
