"""TensorRT through ONNX Runtime's TensorRT execution provider (CUDA fallback for nodes TensorRT does
not take); the engine build happens in the first call, which the timing loop never times. Needs a
CUDA device and an onnxruntime build with the provider (onnxruntime-gpu with TensorRT libraries)."""
from __future__ import annotations

from typing import Any

import torch

from suites.engines.onnxruntime import OnnxRuntime, _ort
from suites.core.cell import Cell
from suites.core.devices import is_cuda

PROVIDER = "TensorrtExecutionProvider"


class TensorRT(OnnxRuntime):
    name = "tensorrt"
    quantizes = False     # int8 in TensorRT needs its own calibrator (not built): --dtype int8 is a skipped row
    ska_translation = "shift"     # TensorRT fuses the point-wise chain; the conv form writes K*K copies of x

    def unavailable(self) -> str | None:
        why = super().unavailable()
        if why:
            return why
        if PROVIDER not in _ort().get_available_providers():
            return f"this onnxruntime build has no {PROVIDER} (install onnxruntime-gpu and TensorRT)"
        return None

    def provider(self, cell: Cell) -> str:
        return PROVIDER

    def skip_reason(self, cell: Cell) -> str | None:
        if not is_cuda(cell.device):
            return "TensorRT needs a CUDA device"
        return super().skip_reason(cell)

    def session(self, cell: Cell, path: str, profile_prefix: str | None = None) -> Any:
        ort = _ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        idx = torch.device(cell.device).index or 0
        trt = {"device_id": idx, "trt_fp16_enable": cell.dtype == "float16",
               "trt_engine_cache_enable": True, "trt_engine_cache_path": str(path.rsplit("/", 1)[0])}
        return ort.InferenceSession(path, sess_options=so, providers=[PROVIDER, self.provider_cuda],
                                    provider_options=[trt, {"device_id": idx}])


ENGINE = TensorRT()
