"""Side-by-side timing of the SKA ONNX translations against the unfold export they replace.

``lsnet-bench export-bench [--threads 2] [--rounds 30]`` exports (a) the SKA op alone at the
shapes of LSNet's stage-1 SKA at batch 16 (x 16x128x28x28, Cw 16) and (b) LSNet-T (fused, 224 px) in
every translation of :mod:`lsnet.ops.ska_onnx` and as the unfold reference, runs each in ONNX Runtime
(CPU provider) and OpenVINO (CPU, f32, compiled for the batch size, as the engines do) beside eager
PyTorch, calling every candidate once per round in turn so that the machine's drift hits all alike,
and prints each median with the median of the per-round ratios against the unfold export and eager.
ONNX Runtime's threads do not spin between calls here, so they take no CPU from their neighbours.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

import lsnet
from suites.engines.onnx_export import export_onnx
from lsnet.ops import ska, ska_onnx

ENGINES = ("onnxruntime", "openvino")
EXPORTS = (*ska_onnx.TRANSLATIONS, "unfold")     # "unfold": the reference backend traced as it is


class _SkaOp(torch.nn.Module):
    def __init__(self, backend: str):
        super().__init__()
        self.backend = backend

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska(x, w, self.backend)


def _export_op(export: str, x: torch.Tensor, w: torch.Tensor, path: Path) -> Path:
    ska_onnx.register(translation="shift" if export == "unfold" else export)
    with torch.no_grad():
        torch.onnx.export(_SkaOp("reference" if export == "unfold" else "torch"), (x, w), str(path),
                          input_names=["x", "w"], output_names=["y"], opset_version=ska_onnx.OPSET, dynamo=False,
                          dynamic_axes={"x": {0: "n"}, "w": {0: "n"}, "y": {0: "n"}})
    return path


def _export_model(model: torch.nn.Module, export: str, path: Path) -> Path:
    lsnet.set_ska_backend(model, "reference" if export == "unfold" else "torch")
    try:
        return export_onnx(model, path, fused=False, ska="shift" if export == "unfold" else export)
    finally:
        lsnet.set_ska_backend(model, "auto")


def _runners(path: Path, feeds: dict[str, np.ndarray], threads: int) -> dict[str, Callable[[], object]]:
    """One callable per engine running the file on ``feeds``, each checked to run."""
    import onnxruntime as ort
    import openvino as ov
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({name: list(a.shape) for name, a in feeds.items()})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_NUM_THREADS": threads})
    request, inputs = compiled.create_infer_request(), list(feeds.values())
    return {"onnxruntime": lambda: sess.run(None, feeds), "openvino": lambda: request.infer(inputs)}


def interleaved(fns: dict[str, Callable[[], object]], rounds: int = 30) -> dict[str, list[float]]:
    """ms of each callable, called once per round in turn (after one untimed call each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int = 30) -> dict[str, float]:
    """Median ms of each callable, timed by :func:`interleaved`."""
    return {k: statistics.median(v) for k, v in interleaved(fns, rounds).items()}


def paired_ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of ``times[num] / times[den]`` (both measured in the same round)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def report(title: str, times: dict[str, list[float]], eager: str) -> list[str]:
    """Lines: each candidate's median, and per translation its ratio to the unfold export and to eager."""
    lines = [f"{title}  (median ms over {len(times[eager])} rounds; ratios are medians of per-round ratios)",
             f"  {eager:<24} {statistics.median(times[eager]):8.2f}"]
    for engine in ENGINES:
        for export in EXPORTS:
            key = f"{engine} {export}"
            line = f"  {key:<24} {statistics.median(times[key]):8.2f}"
            if export != "unfold":
                line += (f"   unfold/this {paired_ratio(times, f'{engine} unfold', key):5.2f}x"
                         f"   this/eager {paired_ratio(times, key, eager):5.2f}x")
            lines.append(line)
    return lines


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:   # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """``lsnet-bench export-bench [--threads 2] [--rounds 30] [--batch-sizes 1,16]``; prints the timings."""
    p = _OneLineParser(prog="lsnet-bench export-bench", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--batch-sizes", default="1,16", help="LSNet-T batch sizes (comma-separated)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="lsnet-export-bench-"))
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(16, 128, 28, 28, generator=g), torch.randn(16, 16, 9, 28, 28, generator=g)
    fns: dict[str, Callable[[], object]] = {"eager torch": lambda: ska(x, w, "torch")}
    for export in EXPORTS:
        path = _export_op(export, x, w, tmp / f"ska_{export}.onnx")
        runners = _runners(path, {"x": x.numpy(), "w": w.numpy()}, args.threads)
        fns |= {f"{engine} {export}": fn for engine, fn in runners.items()}
    with torch.inference_mode():
        print("\n".join(report("SKA op, x 16x128x28x28, Cw 16", interleaved(fns, args.rounds), "eager torch")))
    torch.manual_seed(0)
    model = lsnet.fuse(lsnet.create_model("lsnet_t").eval())
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        xb = torch.randn(batch, 3, 224, 224)
        fns = {"eager": lambda: model(xb)}
        for export in EXPORTS:
            path = _export_model(model, export, tmp / f"lsnet_t_{export}.onnx")
            fns |= {f"{engine} {export}": fn for engine, fn in _runners(path, {"x": xb.numpy()}, args.threads).items()}
        with torch.inference_mode():
            print("\n".join(report(f"LSNet-T fused, batch {batch}", interleaved(fns, args.rounds), "eager")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
