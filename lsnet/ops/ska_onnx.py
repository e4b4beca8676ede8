"""ONNX translations of ``lsnet::ska`` and ``lsnet::ska_bn_add`` for the TorchScript-based exporter.

Two translations, each the fastest in one engine (measured side by side on 2 CPU cores, see
``lsnet-bench export-bench``); both are exact (sums of the same K*K products) and take any
batch and spatial size:

- ``shift``: view x as (N, C/Cw, Cw, H, W), make each of the K*K shifted copies with one ``Pad``
  whose pads are negative on the side it crops (no padded intermediate; the centre tap is x
  itself), multiply each by its weight tap (broadcast over the C/Cw channel groups) and add them
  with one ``Sum``. OpenVINO compiles the products and the sum into fused JIT subgraphs.
- ``conv``: the K*K shifted copies of x from one depthwise ``Conv`` with one-hot kernels, one
  ``Mul`` with the weights broadcast over the groups and one ``ReduceSum`` over the taps: six
  nodes instead of 3*K*K, which is what ONNX Runtime pays for (a fixed cost per node).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

OPSET = 17
TRANSLATIONS = ("shift", "conv")


def _ints(g, values: list[int]):
    return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))


def _static(value, dims: slice) -> list[int]:
    from torch.onnx import symbolic_helper
    sizes = (symbolic_helper._get_tensor_sizes(value) or [])[dims]
    if not sizes or None in sizes:
        raise ValueError(f"ska ONNX export needs static channel counts and kernel size; got {sizes}")
    return sizes


def _sizes(x, w) -> tuple[int, int, int, int]:
    """(C, Cw, K*K, K) of an SKA call, checked to be static."""
    (c,) = _static(x, slice(1, 2))
    cw, kk = _static(w, slice(1, 3))
    return c, cw, kk, math.isqrt(kk)


def _grouped_shape(g, like, leading: list[int]):
    """Shape ``leading + like.shape[2:]`` (the spatial size of ``like``, which may be dynamic)."""
    hw = g.op("Slice", g.op("Shape", like), _ints(g, [2]), _ints(g, [4]), _ints(g, [0]))
    return g.op("Concat", _ints(g, leading), hw, axis_i=0)


def shift_graph(g, x, w):
    """``ska(x, w)`` as K*K shifted copies of x (Pad with negative pads crops one side and pads the
    other; the centre tap is x itself), each multiplied by its weight tap and summed once."""
    c, cw, kk, k = _sizes(x, w)
    p = k // 2
    xg = g.op("Reshape", x, _grouped_shape(g, x, [-1, c // cw, cw]))
    taps = g.op("Split", g.op("Unsqueeze", w, _ints(g, [1])), _ints(g, [1] * kk), axis_i=3, outputs=kk)
    products = []
    for t in range(kk):
        dy, dx = t // k - p, t % k - p                  # shifted[h, w] = x[h + dy, w + dx], zero outside
        shifted = xg if dy == dx == 0 else g.op("Pad", xg, _ints(g, [0, 0, 0, -dy, -dx, 0, 0, 0, dy, dx]))
        products.append(g.op("Mul", shifted, g.op("Squeeze", taps[t], _ints(g, [3]))))
    return g.op("Reshape", g.op("Sum", *products), g.op("Shape", x))


def conv_graph(g, x, w):
    """``ska(x, w)`` as one depthwise one-hot Conv (the K*K shifted copies), a Mul and a ReduceSum."""
    c, cw, kk, k = _sizes(x, w)
    onehot = torch.eye(kk).view(kk, 1, k, k).repeat(c, 1, 1, 1)       # output channel c*K*K + t: tap t of c
    shifted = g.op("Conv", x, g.op("Constant", value_t=onehot), group_i=c, kernel_shape_i=[k, k],
                   pads_i=[k // 2] * 4)
    shifted = g.op("Reshape", shifted, _grouped_shape(g, x, [-1, c // cw, cw, kk]))
    products = g.op("Mul", shifted, g.op("Unsqueeze", w, _ints(g, [1])))
    return g.op("Reshape", g.op("ReduceSum", products, _ints(g, [3]), keepdims_i=0), g.op("Shape", x))


GRAPHS: dict[str, Callable] = {"shift": shift_graph, "conv": conv_graph}


def _bn_add(graph: Callable, g, x, w, scale, shift):
    (c,) = _static(x, slice(1, 2))
    per_channel = _ints(g, [1, c, 1, 1])
    y = g.op("Mul", graph(g, x, w), g.op("Reshape", scale, per_channel))
    return g.op("Add", g.op("Add", y, g.op("Reshape", shift, per_channel)), x)


def register(opset: int = OPSET, translation: str = "shift") -> None:
    """Teach the TorchScript-based ONNX exporter both SKA ops in ``translation`` (replaces an earlier one)."""
    from torch.onnx import register_custom_op_symbolic
    if translation not in GRAPHS:
        raise ValueError(f"unknown SKA translation {translation!r}; choose from {', '.join(TRANSLATIONS)}")
    graph = GRAPHS[translation]
    register_custom_op_symbolic("lsnet::ska", lambda g, x, w, backend: graph(g, x, w), opset)
    register_custom_op_symbolic("lsnet::ska_bn_add",
                                lambda g, x, w, scale, shift, backend: _bn_add(graph, g, x, w, scale, shift), opset)
