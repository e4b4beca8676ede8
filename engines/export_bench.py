"""Side-by-side timing of the SKA ONNX translation against the unfold export it replaces.

``python -m engines.export_bench [--threads 2]`` exports (a) the SKA op alone at LSNet-T stage-1
shapes (x 16x128x28x28, Cw 16) and (b) LSNet-T (fused, 224 px) twice: with the shift-and-add
translation and with the unfold reference, runs each in ONNX Runtime (CPU provider) and OpenVINO
(CPU, f32) beside eager PyTorch, alternating candidates round by round, and prints medians in ms.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import lsnet
from engines.onnx_export import export_onnx
from lsnet.ops import ska, ska_onnx


class _SkaOp(torch.nn.Module):
    def __init__(self, backend: str):
        super().__init__()
        self.backend = backend

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska(x, w, self.backend)


def _export_op(backend: str, x: torch.Tensor, w: torch.Tensor, path: Path) -> Path:
    ska_onnx.register()
    with torch.no_grad():
        torch.onnx.export(_SkaOp(backend), (x, w), str(path), input_names=["x", "w"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "w": {0: "n"}, "y": {0: "n"}}, opset_version=ska_onnx.OPSET,
                          dynamo=False)
    return path


def _runners(path: Path, feeds: dict[str, np.ndarray], threads: int) -> dict[str, Callable[[], object]]:
    import onnxruntime as ort
    import openvino as ov
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_NUM_THREADS": threads})
    request, inputs = compiled.create_infer_request(), list(feeds.values())
    return {"onnxruntime": lambda: sess.run(None, feeds), "openvino": lambda: request.infer(inputs)}


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int = 15) -> dict[str, float]:
    """Median ms of each callable, called once per round in turn (drift hits every candidate alike)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m engines.export_bench", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="lsnet-export-bench-"))
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(16, 128, 28, 28, generator=g), torch.randn(16, 16, 9, 28, 28, generator=g)
    fns: dict[str, Callable[[], object]] = {"eager torch": lambda: ska(x, w, "torch")}
    for name, backend in (("shift-add", "torch"), ("unfold", "reference")):
        path = _export_op(backend, x, w, tmp / f"ska_{name}.onnx")
        fns |= {f"{eng} {name}": fn for eng, fn in _runners(path, {"x": x.numpy(), "w": w.numpy()},
                                                             args.threads).items()}
    with torch.inference_mode():
        print("SKA op, x 16x128x28x28, Cw 16 (ms):", _fmt(interleaved_medians(fns, args.rounds)))
    for batch in (1, 16):
        torch.manual_seed(0)
        model = lsnet.fuse(lsnet.create_model("lsnet_t").eval())
        xb = torch.randn(batch, 3, 224, 224)
        fns = {"eager": lambda: model(xb)}
        for name, backend in (("shift-add", "torch"), ("unfold", "reference")):
            path = export_onnx(lsnet.set_ska_backend(model, backend), tmp / f"t_{name}.onnx", fused=False)
            fns |= {f"{eng} {name}": fn for eng, fn in _runners(path, {"x": xb.numpy()}, args.threads).items()}
        lsnet.set_ska_backend(model, "auto")
        with torch.inference_mode():
            print(f"LSNet-T fused, batch {batch} (ms):", _fmt(interleaved_medians(fns, args.rounds)))


def _fmt(medians: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in medians.items())


if __name__ == "__main__":
    main()
