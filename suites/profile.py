"""Profile suite: a torch.profiler trace (TensorBoard via torch-tb-profiler: ``tensorboard --logdir
OUT/profile``) and a per-operator table whose time shares are grouped by kind: conv, SKA,
attention, norm, elementwise, other.

Each operator's *self* time is charged to the kind of the outermost operator it runs under (the
call the model made), so the aten ops inside ``lsnet::ska_bn_add`` count as SKA and the kernels
of ``aten::conv2d`` as conv. On CUDA, device (kernel) time is used; on CPU, CPU time.
"""
from __future__ import annotations

import contextlib
import csv
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, schedule, tensorboard_trace_handler

from suites import engines
from suites.engines.base import Step
from suites.core.schema import OP_KINDS
from suites.core.cell import Cell, Context
from suites.core.devices import is_cuda
from suites.core.registry import Suite, register

WAIT, WARMUP, ACTIVE = 1, 2, 5

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ska", re.compile(r"lsnet::ska")),
    ("conv", re.compile(r"conv|mkldnn_convolution|cudnn_convolution|thnn_conv|slow_conv")),
    ("attention", re.compile(r"scaled_dot_product|_flash_attention|_efficient_attention|::bmm\b|::baddbmm\b|"
                             r"::matmul\b|::softmax\b|::_softmax\b|::einsum\b")),
    ("norm", re.compile(r"batch_norm|layer_norm|group_norm|instance_norm|rms_norm|::norm\b")),
    ("elementwise", re.compile(r"::(add|add_|sub|sub_|mul|mul_|div|div_|addcmul|addcmul_|relu|relu_|gelu|silu|"
                               r"silu_|sigmoid|sigmoid_|hardswish|hardswish_|hardsigmoid|hardsigmoid_|tanh|clamp|"
                               r"clamp_|clamp_min|exp|neg|pow|sqrt|rsqrt|where|copy_|to|_to_copy|fill_|zero_|"
                               r"threshold|leaky_relu|mean|sum|adaptive_avg_pool2d|_adaptive_avg_pool2d)\b")),
)


# ONNX / OpenVINO operator types by kind (deployment engines report node types, not aten ops).
_NODE_KINDS = {
    "conv": ("Conv", "ConvTranspose", "Convolution", "GroupConvolution", "FusedConv", "NhwcFusedConv"),
    "attention": ("MatMul", "FusedMatMul", "Softmax", "SoftMax", "Einsum", "Attention", "ScaledDotProductAttention"),
    "norm": ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "MVN",
             "NormalizeL2"),
    "elementwise": ("Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Multiply",
                    "Subtract", "Divide", "Eltwise", "Swish", "Gelu", "Tanh", "Erf", "Exp", "Neg", "Sqrt", "Pow",
                    "Where", "Clamp", "ReduceMean", "ReduceSum", "GlobalAveragePool", "AdaptiveAvgPool"),
}
_NODE_KIND = {t: k for k, types in _NODE_KINDS.items() for t in types}


def node_kind(node_name: str, op_type: str) -> str:
    """The kind of one node of an exported graph: SKA by the module path in its name, else by op type."""
    if "ska" in node_name.lower():
        return "ska"
    return _NODE_KIND.get(op_type, "other")


def node_tables(nodes: list[tuple[str, str, float]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-operator rows, per-kind rows) from an engine's (node name, op type, time us) records,
    operators grouped by op type and kind, in the same form as :func:`operator_tables`."""
    per_op: dict[tuple[str, str], dict[str, Any]] = {}
    for name, op_type, t in nodes:
        kind = node_kind(name, op_type)
        row = per_op.setdefault((op_type, kind), {"op": op_type, "kind": kind, "calls": 0, "self_time_us": 0.0})
        row["calls"] += 1
        row["self_time_us"] += t
    return _shares(per_op)


def op_kind(name: str) -> str:
    """The kind of one operator name (``aten::conv2d`` -> conv, ``lsnet::ska_bn_add`` -> ska, ...)."""
    for kind, pattern in _RULES:
        if pattern.search(name):
            return kind
    return "other"


def _is_op(name: str) -> bool:
    return "::" in name


def _outermost_op(event: Any) -> Any:
    top, node = (event if _is_op(event.name) else None), event.cpu_parent
    while node is not None:
        if _is_op(node.name):
            top = node
        node = node.cpu_parent
    return top


def _self_time_us(event: Any, device: bool) -> float:
    if device:
        for attr in ("self_device_time_total", "self_cuda_time_total"):
            if hasattr(event, attr):
                return float(getattr(event, attr))
        return 0.0
    return float(event.self_cpu_time_total)


def operator_tables(events: list[Any], device: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-operator rows, per-kind rows) from profiler function events, each with time and share."""
    per_op: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in events:
        top = _outermost_op(ev)
        if top is None:
            continue
        kind = op_kind(top.name)
        t = _self_time_us(ev, device)
        row = per_op.setdefault((ev.name, kind), {"op": ev.name, "kind": kind, "calls": 0, "self_time_us": 0.0,
                                                  "shapes": "", "_top_us": -1.0})
        row["calls"] += 1
        row["self_time_us"] += t
        shapes = getattr(ev, "input_shapes", None)
        if shapes and t > row["_top_us"]:   # the input shapes of the op's most expensive call
            row["shapes"], row["_top_us"] = str(shapes), t
    for row in per_op.values():
        row.pop("_top_us")
    return _shares(per_op)


def _shares(per_op: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    total = sum(r["self_time_us"] for r in per_op.values()) or 1.0
    ops = sorted(per_op.values(), key=lambda r: -r["self_time_us"])
    for r in ops:
        r["share"] = r["self_time_us"] / total
    kinds: dict[str, dict[str, Any]] = {k: {"kind": k, "calls": 0, "self_time_us": 0.0} for k in OP_KINDS}
    for r in ops:
        kinds[r["kind"]]["calls"] += r["calls"]
        kinds[r["kind"]]["self_time_us"] += r["self_time_us"]
    kind_rows = list(kinds.values())
    for r in kind_rows:
        r["share"] = r["self_time_us"] / total
    return ops, kind_rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["op", "kind", "calls", "self_time_us", "share"])
        w.writeheader()
        w.writerows(rows)


def cell_label(cell: Cell) -> str:
    parts = [cell.model, cell.engine, cell.device.replace(":", ""), cell.dtype, f"bs{cell.batch_size}",
             f"r{cell.resolution_text}", *([cell.task] if cell.task != "classify" else [])]
    parts += [flag for flag, on in (("cl", cell.channels_last), ("graphs", cell.cuda_graphs),
                                    ("unfused", not cell.fused)) if on]
    return "_".join(parts)


# the profiler library's own log lines (Kineto writes them to file descriptor 2 at every start and stop)
_PROFILER_LOG = re.compile(rb"^(USDT|STAGE):\d{4}-\d\d-\d\d [\d:]+ \d+:\d+ \w+\.cpp:\d+\] ")


@contextlib.contextmanager
def without_profiler_log() -> Iterator[None]:
    """Within the block, standard error is held back; afterwards everything but the profiler library's
    own log lines reaches it, in order."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held:
                if not _PROFILER_LOG.match(line):
                    os.write(2, line)


def _torch_profile(step: Step, trace_dir: Path, label: str, on_gpu: bool) -> list[Any]:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with without_profiler_log(), torch.profiler.profile(activities=activities, schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE),
                                on_trace_ready=tensorboard_trace_handler(str(trace_dir), worker_name=label),
                                record_shapes=True) as prof:
        for _ in range(WAIT + WARMUP + ACTIVE):
            step.run()
            step.timer.sync()
            prof.step()
    return list(prof.events())


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    out_root = (ctx.run_dir or Path(".")) / "profile"
    label = cell_label(cell)
    trace_dir = out_root / label
    trace_dir.mkdir(parents=True, exist_ok=True)
    on_gpu = is_cuda(cell.device) and engines.get(cell.engine).torch_native
    with engines.get(cell.engine).prepare(cell, ctx) as step:
        step.run()  # first call (compile / capture) outside the profile
        if step.profile is not None:   # the engine's own profiler (exported graphs)
            ops, kinds = node_tables(step.profile(ACTIVE, trace_dir))
        else:
            ops, kinds = operator_tables(_torch_profile(step, trace_dir, label, on_gpu), device=on_gpu)
    _write_csv(out_root / f"{label}_ops.csv", ops)
    _write_csv(out_root / f"{label}_kinds.csv", kinds)
    traces = sorted(p.name for p in trace_dir.iterdir())
    return {"params_m": step.params / 1e6, "parity_rel": step.parity_rel,
            "extra": {**{k: v for k, v in step.info.items() if k.startswith("feature_")},
                      "trace_dir": str(trace_dir), "traces": traces, "profiled_steps": ACTIVE,
                      "time_basis": "device" if on_gpu else "cpu",
                      "kinds": {r["kind"]: {"share": r["share"], "self_time_us": r["self_time_us"], "calls": r["calls"]}
                                for r in kinds},
                      "top_ops": ops[:25]}}


def console_summary(rows: list[dict[str, Any]]) -> str:
    """One line per profiled cell: self time per forward and the operator kinds' shares, largest first."""
    lines = []
    for r in rows:
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        kinds = extra.get("kinds") or {}
        if r.get("status") != "ok" or not kinds:
            continue
        per_forward_ms = sum(k["self_time_us"] for k in kinds.values()) / 1e3 / (extra.get("profiled_steps") or ACTIVE)
        shares = ", ".join(f"{name} {100 * k['share']:.0f}%" for name, k in
                           sorted(kinds.items(), key=lambda kv: -kv[1]["share"]) if k["share"] >= 0.005)
        task = f" [{r['task']}]" if r.get("task") not in (None, "classify") else ""
        lines.append(f"  {r['model']}{task} {r.get('engine')} {r.get('device')} {r.get('dtype')} bs{r.get('batch_size')}: "
                     f"{per_forward_ms:.3g} ms {extra.get('time_basis', 'cpu')} time per forward; {shares}")
    return "profile (self time by operator kind; traces under the run folder's profile/):\n" + "\n".join(lines) \
        if lines else ""


SUITE = register(Suite("profile", run, __name__, "per-operator time shares by kind (torch.profiler traces, "
                       "or the engine's own profiler)", console_summary=console_summary))
