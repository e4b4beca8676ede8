"""Parameter and MAC counting: fvcore (the published protocol) cross-checked with FlopCounterMode.

Both counters are taught the SKA op (``lsnet::ska``: K*K multiply-adds per output element).
fvcore counts attention matmuls by default; FlopCounterMode counts FLOPs (2 per MAC).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

import lsnet.ops.ska  # noqa: F401  (registers lsnet::ska)
from suites.core.schema import parse_resolution


def _ska_macs(x_shape: list[int], w_shape: list[int]) -> int:
    return math.prod(x_shape) * w_shape[2]


def _fvcore_ska_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape
    return _ska_macs(get_shape(inputs[0]), get_shape(inputs[1]))


def _fvcore_ska_bn_add_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape
    x_shape = get_shape(inputs[0])
    return _ska_macs(x_shape, get_shape(inputs[1])) + 2 * math.prod(x_shape)  # + folded BN, as fvcore counts BN


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@contextmanager
def _eval_one_image(model: nn.Module, resolution: int | tuple[int, int]) -> Iterator[torch.Tensor]:
    """Yield one random image (1, 3, H, W) for ``model`` (its dtype and device; ``resolution`` one int for a
    square image or (H, W)) with the model in eval mode and no autograd; the training flag is restored."""
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield torch.randn(1, 3, *parse_resolution(resolution), dtype=p.dtype, device=p.device)
    finally:
        model.train(was_training)


def fvcore_macs(model: nn.Module, resolution: int | tuple[int, int] = 224) -> int:
    """MACs of one image at ``resolution`` (int or (H, W)) by fvcore, with SKA counted as K*K MACs per output;
    a model returning several outputs (a backbone's feature maps) counts everything computed for them."""
    from fvcore.nn import FlopCountAnalysis
    with _eval_one_image(model, resolution) as x:
        fca = FlopCountAnalysis(model, x).set_op_handle(
            "lsnet::ska", _fvcore_ska_handle, "lsnet::ska_bn_add", _fvcore_ska_bn_add_handle)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(fca.total())


def flop_counter_macs(model: nn.Module, resolution: int | tuple[int, int] = 224) -> int:
    """MACs of one image by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), SKA included."""
    from torch.utils.flop_counter import FlopCounterMode
    with _eval_one_image(model, resolution) as x, FlopCounterMode(display=False, custom_mapping=_FLOP_MAPPING) as fc:
        model(x)
    return fc.get_total_flops() // 2


def _ska_flops(x_shape, w_shape, backend, *args, out_shape=None, **kwargs) -> int:
    return 2 * _ska_macs(list(x_shape), list(w_shape))


def _ska_bn_add_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * (_ska_macs(list(x_shape), list(w_shape)) + 2 * math.prod(x_shape))


_FLOP_MAPPING = {torch.ops.lsnet.ska.default: _ska_flops, torch.ops.lsnet.ska_bn_add.default: _ska_bn_add_flops}
