"""ONNX Runtime: the cell's model exported to ONNX (kept under ``artifacts/``), run by an inference
session: the CPU execution provider on CPUs; on CUDA the CUDA provider with I/O binding (inputs and
outputs stay on the GPU). Session options (threads, graph optimisation level) are set and recorded."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from suites.engines.base import Engine, Step, check_parity, eager_reference, pack, parity_input
from suites.engines import quantize
from suites.engines.onnxfile import exported
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.core.timing import CpuTimer

EXTRA = 'pip install -e ".[engines]"'


def _ort() -> Any:
    import onnxruntime
    return onnxruntime


class OnnxRuntime(Engine):
    name = "onnxruntime"
    quantizes = True              # --dtype int8: static QDQ quantisation (suites.engines.quantize)
    provider_cpu, provider_cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    ska_translation = "conv"      # fewest nodes: ONNX Runtime pays a fixed cost per node
    # int8: the conv form's one-hot unfold convolutions become grouped QLinearConvs, ONNX Runtime's slowest
    # int8 kernel (4 of them took a quarter of LSNet-T's int8 time); the shift form quantises to faster code
    ska_translation_int8 = "shift"

    def unavailable(self) -> str | None:
        try:
            _ort()
        except ImportError:
            return f"onnxruntime is not installed ({EXTRA})"
        return None

    def provider(self, cell: Cell) -> str:
        return self.provider_cuda if is_cuda(cell.device) else self.provider_cpu

    def skip_reason(self, cell: Cell) -> str | None:
        if cell.cuda_graphs:
            return "--cuda-graphs is an eager-engine option"
        if cell.dtype in ("amp", "bfloat16"):
            return f"{cell.dtype} is not an ONNX Runtime precision here (export float32, or float16 on CUDA)"
        if cell.dtype == "int8" and (reason := quantize.skip_reason(cell)):
            return reason
        if cell.dtype == "float16" and not is_cuda(cell.device):
            return "float16 on ONNX Runtime's CPU execution provider falls back to slow reference kernels; " \
                   "use float32 on CPUs"
        if cell.channels_last:
            return "channels_last is a PyTorch memory format; ONNX Runtime chooses its own layouts"
        if self.unavailable() is None and self.provider(cell) not in _ort().get_available_providers():
            return f"{self.provider(cell)} is not in this onnxruntime build (onnxruntime-gpu provides it)"
        return None

    def session(self, cell: Cell, path: str, profile_prefix: str | None = None) -> Any:
        ort = _ort()
        so = ort.SessionOptions()
        if profile_prefix:
            so.enable_profiling, so.profile_file_prefix = True, profile_prefix
        so.intra_op_num_threads = cell.threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options = [{"device_id": torch.device(cell.device).index or 0}] if is_cuda(cell.device) else [{}]
        return ort.InferenceSession(path, sess_options=so, providers=[self.provider(cell)], provider_options=options)

    @contextlib.contextmanager
    def prepare(self, cell: Cell, ctx: Context, *, num_classes: int = 1000, checkpoint: str | None = None,
                throughput: bool = False, strict: bool = True) -> Iterator[Step]:
        int8 = cell.dtype == "int8"
        x_ref = parity_input(cell)
        ref = None if int8 else eager_reference(cell, x_ref, num_classes=num_classes, checkpoint=checkpoint)
        path, params, ska = exported(cell, ctx, num_classes=num_classes, checkpoint=checkpoint,
                                     ska=self.ska_translation_int8 if int8 else self.ska_translation)
        if int8:     # the float32 export quantised (kept beside it under artifacts/)
            quantized = quantize.quantize_onnx(cell, ctx, path, crop_ratio=quantize.crop_ratio_of(cell))
            path = quantized.path
        sess = self.session(cell, str(path))
        name = sess.get_inputs()[0].name
        np_dtype = "float16" if cell.dtype == "float16" else "float32"
        x = torch.randn(cell.batch_size, 3, *cell.hw).numpy().astype(np_dtype)
        if is_cuda(cell.device):
            run = self._bound_run(sess, name, x, cell)
        else:
            run = lambda: sess.run(None, {name: x})  # noqa: E731

        def infer(inp: torch.Tensor) -> torch.Tensor:
            # every output (a backbone's feature maps are several), in the model's order
            return pack([torch.from_numpy(o).float() for o in sess.run(None, {name: inp.numpy().astype(np_dtype)})])

        so = sess.get_session_options()
        info = {"onnx": str(path), "providers": sess.get_providers(), "ort_version": _ort().__version__,
                "intra_op_threads": so.intra_op_num_threads, "graph_optimization": str(so.graph_optimization_level),
                "ska_translation": ska}
        if int8:
            info["int8"] = quantized.facts
        def profile(runs: int, trace_dir: Path) -> list[tuple[str, str, float]]:
            """ONNX Runtime's profiler on a session of its own: every node's kernel time over ``runs``."""
            prof = self.session(cell, str(path), profile_prefix=str(trace_dir / "onnxruntime"))
            prof.run(None, {name: x})          # the first run is not profiled below
            for _ in range(runs):
                prof.run(None, {name: x})
            events = json.loads(Path(prof.end_profiling()).read_text())
            runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
            first_end = runs_seen[0]["ts"] + runs_seen[0]["dur"] if runs_seen else -1
            return [(e["name"].removesuffix("_kernel_time"), e["args"].get("op_name", ""), float(e["dur"]))
                    for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                    and e["ts"] > first_end]

        step = Step(run=run, infer=infer, timer=CpuTimer(), params=params, info=info,
                    profile=None if is_cuda(cell.device) else profile)
        if int8:
            quantize.judge(cell, step, num_classes=num_classes, checkpoint=checkpoint,
                           crop_ratio=quantize.crop_ratio_of(cell), strict=strict)
        else:
            check_parity(cell, step, ref, x_ref, strict=strict)
        try:
            yield step
        finally:
            del sess

    @staticmethod
    def _bound_run(sess: Any, name: str, x: Any, cell: Cell) -> Any:
        """I/O binding: the input lives on the GPU, the output is allocated there; ``Run`` blocks until done."""
        dev = torch.device(cell.device)
        xt = torch.from_numpy(x).to(dev)
        binding = sess.io_binding()
        binding.bind_input(name, "cuda", dev.index or 0, x.dtype, list(xt.shape), xt.data_ptr())
        for out in sess.get_outputs():       # every output stays on the GPU (features: one per map)
            binding.bind_output(out.name, "cuda", dev.index or 0)

        def run() -> Any:
            sess.run_with_iobinding(binding)
            return xt
        return run


ENGINE = OnnxRuntime()
