"""SKA ops benchmark with a roofline: every backend at LSNet stage shapes, against the copy bandwidth.

    python -m suites.ska_bench --device cuda --dtype float32 float16 bfloat16 --out results/ska_bench
    python -m suites.ska_bench --device cpu --batch 8 --threads 4

For each LSNet-T/S/B stage that has LSConv blocks (x (N, C, R, R), w (N, C/8, 9, R, R); on CUDA
batch 256 by default, which includes LSNet-B stage 1, the issue's target shape) and each mode:

* ``fwd``: ``ska(x, w)``; ``bn_add``: the fused inference tail ``x + ska(x, w) * scale + shift``;
* ``fwd_bwd``: forward and backward (dx and dw) through autograd,

it times the backends ``reference``, ``torch``, ``triton`` and, forward only, ``official`` (a
re-creation of the official flat kernel design, :mod:`suites.ska_official`). Triton rows are
``skipped`` on CPU: the interpreter is a correctness tool, not a benchmark.

Roofline columns: ``bytes`` counts every tensor once (forward: x, w, y; fused tail: x, w, y and
scale/shift; backward adds gy, x, w, dx, dw), ``flops`` is 2 K^2 per output per pass (forward
2 K^2, backward 4 K^2), ``gbps = bytes / median time`` and ``pct_copy_bw`` its share of the copy
bandwidth measured in the same run (a large device-to-device ``copy_``, bytes read + written per
second; on CPU a large memcpy). ``vs_official`` is the official-design time over this row's time.

GPU timing: ``triton.testing.do_bench`` (warm-up, L2 flushed before every sample, CUDA events),
median and 10/90th percentiles. CPU timing: ``torch.utils.benchmark`` (``blocked_autorange``).
Writes ``ska_bench.csv``, ``ska_bench.json`` (rows plus environment) and ``env.json`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lsnet.model import CONFIGS
from lsnet.ops import ska, ska_bn_add, ska_reference
from suites.devices import device_name, is_cuda
from suites.results import environment, now_iso, write_env

BACKENDS = ("reference", "torch", "triton", "official")
MODES = ("fwd", "bn_add", "fwd_bwd")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
COLUMNS = ("device", "device_name", "dtype", "shape", "batch", "C", "Cw", "H", "W", "K", "channels_last",
           "backend", "mode", "status", "ms_p50", "ms_p10", "ms_p90", "n_samples", "bytes", "flops",
           "gbps", "pct_copy_bw", "tflops", "flop_per_byte", "vs_official", "error")


@dataclass(frozen=True)
class Shape:
    """One SKA problem: x (N, C, H, W), w (N, Cw, K*K, H, W)."""
    name: str
    n: int
    c: int
    cw: int
    h: int
    w: int
    k: int = 3

    @property
    def outputs(self) -> int:
        return self.n * self.c * self.h * self.w


def lsnet_shapes(batch: int, resolution: int = 224) -> list[Shape]:
    """Stages of LSNet-T/S/B with at least one LSConv (odd block index), at ``resolution``."""
    shapes = []
    for model, cfg in CONFIGS.items():
        r = resolution // 8
        for stage, (dim, depth) in enumerate(zip(cfg.embed_dim, cfg.depth), start=1):
            if stage > 1:
                r = (r - 1) // 2 + 1
            if stage <= 3 and depth >= 2:
                shapes.append(Shape(f"{model}.stage{stage}", batch, dim, dim // 8, r, r))
    return shapes


def tensor_bytes(shape: Shape, mode: str, elem: int) -> int:
    """Bytes that a pass must move at least once: forward x + w + y; backward gy + x + w + dx + dw."""
    x = shape.n * shape.c * shape.h * shape.w * elem
    w = shape.n * shape.cw * shape.k ** 2 * shape.h * shape.w * elem
    fwd = 2 * x + w
    if mode == "fwd":
        return fwd
    if mode == "bn_add":
        return fwd + 2 * shape.c * 4
    if mode == "fwd_bwd":
        return fwd + 3 * x + 2 * w
    raise ValueError(f"unknown mode {mode!r}")


def flops(shape: Shape, mode: str) -> int:
    """2 K^2 per output for the forward (a multiply and an add per tap), 4 K^2 for dx plus dw."""
    per = {"fwd": 2, "bn_add": 2, "fwd_bwd": 6}[mode] * shape.k ** 2
    return per * shape.outputs + (3 * shape.outputs if mode == "bn_add" else 0)


@dataclass
class Row:
    device: str
    device_name: str
    dtype: str
    shape: str
    batch: int
    C: int
    Cw: int
    H: int
    W: int
    K: int
    channels_last: bool
    backend: str
    mode: str
    status: str = "ok"
    ms_p50: float | None = None
    ms_p10: float | None = None
    ms_p90: float | None = None
    n_samples: int | None = None
    bytes: int | None = None
    flops: int | None = None
    gbps: float | None = None
    pct_copy_bw: float | None = None
    tflops: float | None = None
    flop_per_byte: float | None = None
    vs_official: float | None = None
    error: str = ""
    samples_ms: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------


def time_fn(fn: Callable[[], Any], device: str, min_time: float,
            grad_to_none: Sequence[torch.Tensor] | None = None) -> tuple[float, float, float, list[float]]:
    """(median, p10, p90, samples) in ms. Warm-up calls are never timed."""
    if is_cuda(device):
        from triton.testing import do_bench
        rep = max(1, int(min_time * 1000))
        q = do_bench(fn, warmup=max(1, rep // 4), rep=rep, grad_to_none=list(grad_to_none or []),
                     quantiles=[0.5, 0.1, 0.9])
        return float(q[0]), float(q[1]), float(q[2]), []
    from torch.utils import benchmark
    fn()
    fn()
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
                        ).blocked_autorange(min_run_time=min_time)
    per_call = [t * 1e3 for t in m.times]  # blocked_autorange: mean time per call in each block
    s = sorted(per_call)
    pick = lambda q: s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]  # noqa: E731
    return m.median * 1e3, pick(0.1), pick(0.9), per_call


def copy_bandwidth(device: str, megabytes: int, min_time: float) -> tuple[float, float]:
    """(GB/s, ms) of ``dst.copy_(src)`` over ``megabytes`` MB: bytes read + written per second."""
    n = megabytes * 2 ** 20 // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    ms = time_fn(lambda: dst.copy_(src), device, min_time)[0]
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9, ms


# ----------------------------------------------------------------------------------------------
# cells
# ----------------------------------------------------------------------------------------------


def skip_reason(backend: str, mode: str, device: str) -> str | None:
    on_gpu = is_cuda(device)
    if backend in ("triton", "official") and not on_gpu:
        return "Triton kernels are benchmarked on CUDA only (the CPU interpreter is not a benchmark)"
    if backend == "triton" and not _has_triton():
        return "triton is not installed"
    if backend == "official" and mode != "fwd":
        return "the official-design kernel is forward only"
    return None


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, channels_last: bool, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=g, device=device, dtype=dtype)
    w = torch.randn(shape.n, shape.cw, shape.k ** 2, shape.h, shape.w, generator=g, device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, w


def cell_fn(backend: str, mode: str, x: torch.Tensor, w: torch.Tensor
            ) -> tuple[Callable[[], Any], list[torch.Tensor]]:
    """The timed callable and the tensors whose .grad it fills."""
    if mode == "fwd":
        if backend == "official":
            from suites import ska_official
            return (lambda: ska_official.forward(x, w)), []
        if backend == "reference":
            return (lambda: ska_reference(x, w)), []
        return (lambda: ska(x, w, backend)), []
    if mode == "bn_add":
        c = x.shape[1]
        scale = torch.rand(c, device=x.device) + 0.5
        shift = torch.randn(c, device=x.device)
        return (lambda: ska_bn_add(x, w, scale, shift, backend)), []
    xg = x.detach().clone().requires_grad_()
    wg = w.detach().clone().requires_grad_()
    gy = torch.randn_like(x)
    if backend == "reference":
        return (lambda: ska_reference(xg, wg).backward(gy)), [xg, wg]
    return (lambda: ska(xg, wg, backend).backward(gy)), [xg, wg]


def run_cell(row: Row, shape: Shape, dtype: torch.dtype, device: str, min_time: float, copy_gbps: float) -> Row:
    reason = skip_reason(row.backend, row.mode, device)
    row.bytes = tensor_bytes(shape, row.mode, torch.empty((), dtype=dtype).element_size())
    row.flops = flops(shape, row.mode)
    row.flop_per_byte = round(row.flops / row.bytes, 3)
    if reason:
        row.status, row.error = "skipped", reason
        return row
    try:
        x, w = make_inputs(shape, dtype, device, row.channels_last)
        fn, grads = cell_fn(row.backend, row.mode, x, w)
        with torch.inference_mode(row.mode != "fwd_bwd"):
            p50, p10, p90, samples = time_fn(fn, device, min_time, grads)
    except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - needs a GPU
        row.status, row.error = "oom", str(e).splitlines()[0]
        return row
    except Exception as e:  # a failed cell is a row, never a lost sweep
        row.status, row.error = "error", f"{type(e).__name__}: {e}".splitlines()[0][:300]
        return row
    finally:
        if is_cuda(device):
            torch.cuda.empty_cache()
    row.ms_p50, row.ms_p10, row.ms_p90 = round(p50, 5), round(p10, 5), round(p90, 5)
    row.n_samples, row.samples_ms = len(samples) or None, samples
    row.gbps = round(row.bytes / (p50 * 1e-3) / 1e9, 3)
    row.pct_copy_bw = round(100 * row.gbps / copy_gbps, 1) if copy_gbps else None
    row.tflops = round(row.flops / (p50 * 1e-3) / 1e12, 4)
    return row


def format_table(rows: Sequence[Row]) -> str:
    cols = ("shape", "dtype", "channels_last", "mode", "backend", "status", "ms_p50", "gbps", "pct_copy_bw",
            "vs_official")
    table = [cols] + [tuple("" if getattr(r, c) is None else str(getattr(r, c)) for c in cols) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(wd) for v, wd in zip(line, widths)) for line in table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m suites.ska_bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", nargs="+", default=None, choices=sorted(DTYPES),
                   help="default: float32 (CPU), float32 float16 bfloat16 (CUDA)")
    p.add_argument("--batch", type=int, default=None, help="default: 256 on CUDA, 8 on CPU")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--shapes", nargs="+", default=None, help="e.g. lsnet_b.stage1 (default: all)")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--channels-last", choices=("no", "yes", "both"), default="no")
    p.add_argument("--min-time", type=float, default=None, help="seconds per cell (default 0.5 CPU, 0.2 CUDA)")
    p.add_argument("--copy-mb", type=int, default=None, help="copy-bandwidth buffer (default 1024 CUDA, 256 CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--out", default="results/ska_bench")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run the benchmark (see the module docstring); returns the rows it wrote."""
    args = parse_args(argv)
    if is_cuda(args.device) and not torch.cuda.is_available():
        raise SystemExit("ska_bench: --device cuda but no CUDA device is available")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> list[Row]:
    device = args.device
    gpu = is_cuda(device)
    dtypes = args.dtype or (["float32", "float16", "bfloat16"] if gpu else ["float32"])
    batch = args.batch or (256 if gpu else 8)
    min_time = args.min_time if args.min_time is not None else (0.2 if gpu else 0.5)
    args.copy_mb = args.copy_mb or (1024 if gpu else 256)
    shapes = lsnet_shapes(batch, args.resolution)
    if args.shapes:
        unknown = set(args.shapes) - {s.name for s in shapes}
        if unknown:
            raise SystemExit(f"ska_bench: unknown shapes {sorted(unknown)}; "
                             f"choose from {[s.name for s in shapes]}")
        shapes = [s for s in shapes if s.name in args.shapes]
    layouts = {"no": [False], "yes": [True], "both": [False, True]}[args.channels_last]
    if gpu:
        torch.cuda.set_device(torch.device(device))
        os.environ.pop("TRITON_INTERPRET", None)  # compiled kernels, not the interpreter

    started = now_iso()
    copy_gbps, copy_ms = copy_bandwidth(device, args.copy_mb, min_time)
    name = device_name(device)
    print(f"ska_bench: {name}, copy bandwidth {copy_gbps:.1f} GB/s ({args.copy_mb} MB, {copy_ms:.3f} ms), "
          f"batch {batch}, threads {torch.get_num_threads()}", flush=True)
    rows: list[Row] = [Row(device, name, "float32", "copy", 1, 0, 0, 0, 0, 0, False, "copy", "memcpy",
                           ms_p50=round(copy_ms, 5), bytes=2 * args.copy_mb * 2 ** 20,
                           gbps=round(copy_gbps, 2), pct_copy_bw=100.0)]
    for dname in dtypes:
        for shape in shapes:
            for cl in layouts:
                cells = []
                for mode in args.modes:
                    for backend in args.backends:
                        row = Row(device, name, dname, shape.name, shape.n, shape.c, shape.cw, shape.h, shape.w,
                                  shape.k, cl, backend, mode)
                        cells.append(run_cell(row, shape, DTYPES[dname], device, min_time, copy_gbps))
                official = {r.mode: r.ms_p50 for r in cells if r.backend == "official" and r.status == "ok"}
                for r in cells:
                    if r.status == "ok" and official.get(r.mode):
                        r.vs_official = round(official[r.mode] / r.ms_p50, 2)
                rows.extend(cells)
                print(format_table(cells), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ska_bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    env = environment([device], torch.get_num_threads(), sys.argv, started)
    env.update(end_time=now_iso(), device=device, copy_gbps=copy_gbps, copy_ms=copy_ms, copy_mb=args.copy_mb)
    write_env(out, env)
    with open(out / "ska_bench.json", "w") as f:
        json.dump({"env": env, "rows": [asdict(r) for r in rows]}, f, indent=1, default=str)
    print()
    print(format_table(rows))
    print(f"\nwrote {out / 'ska_bench.csv'} and {out / 'ska_bench.json'}")
    return rows


if __name__ == "__main__":
    main()
