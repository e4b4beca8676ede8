"""OpenVINO: the cell's ONNX file compiled for the CPU plugin with the inference precision pinned to
the cell's dtype (OpenVINO otherwise runs float32 models in bf16 on CPUs that support it) and the
precision it actually used recorded. The model is compiled for the cell's batch size (static shapes:
about twice as fast as a dynamic batch on the SKA graph); smaller batches (parity, the last batch of an
evaluation) are padded to it. Latency cells use the LATENCY hint and one synchronous request;
throughput cells the THROUGHPUT hint with as many asynchronous requests as the plugin asks for."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suites.engines.base import Engine, Step, at_batch, check_parity, eager_reference, pack, parity_input
from suites.engines import quantize
from suites.engines.onnxfile import exported
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.core.timing import CpuTimer

EXTRA = 'pip install -e ".[engines]"'
# int8: the quantised layers run in int8 whatever the hint; the hint pins the float remainder to f32
PRECISIONS = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "int8": "f32"}
CAPABILITY = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int8": "INT8"}


def _ov() -> Any:
    import openvino
    return openvino


class OpenVino(Engine):
    name = "openvino"
    quantizes = True              # --dtype int8: NNCF post-training quantisation (suites.engines.quantize)
    ska_translation = "shift"     # its products and sum compile into fused JIT subgraphs

    def unavailable(self) -> str | None:
        try:
            _ov()
        except ImportError:
            return f"openvino is not installed ({EXTRA})"
        return None

    def skip_reason(self, cell: Cell) -> str | None:
        if is_cuda(cell.device):
            return "OpenVINO's GPU plugin runs on Intel GPUs, not CUDA devices"
        if cell.cuda_graphs:
            return "--cuda-graphs is an eager-engine option"
        if cell.dtype == "amp":
            return "amp is PyTorch autocast; ask OpenVINO for float16 or bfloat16 instead"
        if cell.channels_last:
            return "channels_last is a PyTorch memory format; OpenVINO chooses its own layouts"
        if cell.dtype == "int8" and (reason := quantize.skip_reason(cell)):
            return reason
        if self.unavailable() is None:
            caps = _ov().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            if CAPABILITY[cell.dtype] not in caps:
                return f"this CPU's OpenVINO plugin has no {cell.dtype} support (capabilities: {', '.join(caps)})"
        return None

    def config(self, cell: Cell, throughput: bool) -> dict[str, Any]:
        hint = "THROUGHPUT" if throughput else "LATENCY"
        return {"INFERENCE_PRECISION_HINT": PRECISIONS[cell.dtype], "PERFORMANCE_HINT": hint,
                "INFERENCE_NUM_THREADS": cell.threads or torch.get_num_threads()}

    @contextlib.contextmanager
    def prepare(self, cell: Cell, ctx: Context, *, num_classes: int = 1000, checkpoint: str | None = None,
                throughput: bool = False, strict: bool = True) -> Iterator[Step]:
        ov = _ov()
        int8 = cell.dtype == "int8"
        x_ref = parity_input(cell)
        ref = None if int8 else eager_reference(cell, x_ref, num_classes=num_classes, checkpoint=checkpoint)
        # one float32 graph for every precision: the plugin runs it at the pinned inference precision
        path, params, ska = exported(cell.with_(dtype="float32"), ctx, num_classes=num_classes,
                                     checkpoint=checkpoint, ska=self.ska_translation)
        if int8:     # NNCF's int8 IR of the float32 export (kept beside it under artifacts/)
            quantized = quantize.quantize_openvino(cell, ctx, path, crop_ratio=quantize.crop_ratio_of(cell))
            path = quantized.path
        core = ov.Core()
        shape = [cell.batch_size, 3, *cell.hw]

        def compile_static(config: dict[str, Any]) -> Any:
            model = core.read_model(str(path))
            model.reshape(shape)
            return core.compile_model(model, "CPU", config)
        compiled = compile_static(self.config(cell, throughput))
        x = torch.randn(cell.batch_size, 3, *cell.hw).numpy()
        if throughput:
            run, per_run = self._async_run(ov, compiled, x)
        else:
            request = compiled.create_infer_request()
            run, per_run = (lambda: request.infer([x])), cell.batch_size
        parity_request = compiled.create_infer_request()

        def forward(inp: torch.Tensor) -> torch.Tensor:
            out = parity_request.infer([inp.numpy().astype(np.float32)])
            # every output, in the model's order (a backbone's feature maps are several)
            return pack([torch.from_numpy(np.array(out[port])).float() for port in compiled.outputs])
        infer = at_batch(forward, cell.batch_size)

        used = {k: _text(compiled.get_property(k)) for k in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                                                             "INFERENCE_NUM_THREADS", "NUM_STREAMS")}
        info = {"onnx": str(path), "openvino_version": ov.get_version(), "requested": self.config(cell, throughput),
                "used": used, "images_per_run": per_run, "static_shape": shape,
                "ska_translation": ska}
        if int8:
            info["int8"] = {**quantized.facts, "runtime_precisions": quantize.runtime_precisions(compiled)}
        def profile(runs: int, trace_dir: Path) -> list[tuple[str, str, float]]:
            """OpenVINO's per-layer counters (PERF_COUNT) of a compiled model of its own, over ``runs``."""
            prof = compile_static({**self.config(cell, throughput), "PERF_COUNT": True})
            request = prof.create_infer_request()
            request.infer([x])
            nodes = []
            for _ in range(runs):
                request.infer([x])
                nodes += [(p.node_name, p.node_type, p.real_time.total_seconds() * 1e6, p.exec_type)
                          for p in request.get_profiling_info() if p.status == p.Status.EXECUTED]
            (trace_dir / "openvino_perf_counters.json").write_text(json.dumps(nodes))
            return [n[:3] for n in nodes]

        step = Step(run=run, infer=infer, timer=CpuTimer(), params=params, info=info, images_per_run=per_run,
                    profile=profile)
        if int8:
            quantize.judge(cell, step, num_classes=num_classes, checkpoint=checkpoint,
                           crop_ratio=quantize.crop_ratio_of(cell), strict=strict)
        else:
            check_parity(cell, step, ref, x_ref, strict=strict)
        try:
            yield step
        finally:
            del compiled

    @staticmethod
    def _async_run(ov: Any, compiled: Any, x: np.ndarray) -> tuple[Any, int]:
        """Keep every request the plugin asks for busy: one run = one batch per request, all awaited."""
        n = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = ov.AsyncInferQueue(compiled, n)

        def run() -> None:
            for _ in range(n):
                queue.start_async([x])
            queue.wait_all()
        return run, n * x.shape[0]


def _text(value: Any) -> str:
    """A property as text: element types by their short name (``f32``, ``bf16``), the rest by str()."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


ENGINE = OpenVino()
