"""Shared building blocks for LSNet and the baselines, each with an exact ``fuse()``.

Every module that can be folded for inference defines ``fuse() -> nn.Module`` returning an
equivalent module; :func:`lsnet.fuse` walks a model and applies them. Names of submodules are
the state-dict prefixes of the official releases (``c``/``bn``, ``l``, ``m``, ``fc1``/``fc2``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` so that ``bn(x) == x * scale + shift`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class Conv2d_BN(nn.Sequential):
    """Conv2d (without bias unless ``bias``) followed by BatchNorm2d; fuses into one biased Conv2d.

    ``bias=True`` is only for models whose release keeps a redundant conv bias before the BN (StarNet).
    """

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, dilation: int = 1,
                 groups: int = 1, bn_weight_init: float = 1.0, bias: bool = False):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, dilation, groups, bias=bias))
        self.add_module("bn", nn.BatchNorm2d(b))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        c = self.c
        scale, shift = _bn_scale_shift(self.bn)
        conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                         c.groups, bias=True, device=c.weight.device, dtype=c.weight.dtype)
        conv.weight.copy_(c.weight * scale[:, None, None, None])
        conv.bias.copy_(shift if c.bias is None else shift + c.bias * scale)
        return conv


class BN_Linear(nn.Sequential):
    """BatchNorm1d followed by Linear (the classifier head); fuses into one Linear."""

    def __init__(self, a: int, b: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(a))
        self.add_module("l", nn.Linear(a, b, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        scale, shift = _bn_scale_shift(self.bn)
        l = self.l
        b = shift @ l.weight.T + (l.bias if l.bias is not None else 0)
        lin = nn.Linear(l.in_features, l.out_features, device=l.weight.device, dtype=l.weight.dtype)
        lin.weight.copy_(l.weight * scale[None, :])
        lin.bias.copy_(b)
        return lin


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth of a residual branch ``x`` (identity unless training with ``p > 0``)."""
    if not training or p == 0:
        return x
    keep = torch.rand(x.size(0), *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
    return x * keep.ge_(p).div_(1 - p)


class Residual(nn.Module):
    """``x + m(x)``, with per-sample stochastic depth (rate ``drop``) in training."""

    def __init__(self, m: nn.Module, drop: float = 0.0):
        super().__init__()
        self.m = m
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + drop_path(self.m(x), self.drop, self.training)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        """A depthwise ``Conv2d_BN`` body folds, with the identity, into one conv; else unchanged."""
        m = self.m
        if not (isinstance(m, Conv2d_BN) and m.c.groups == m.c.in_channels == m.c.out_channels):
            return self
        conv = m.fuse()
        kh, kw = conv.kernel_size
        conv.weight[:, 0, kh // 2, kw // 2] += 1
        return conv


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (timm layout): mean -> fc1 -> ReLU -> fc2 -> sigmoid gate."""

    def __init__(self, channels: int, rd_ratio: float = 0.25, rd_divisor: int = 8):
        super().__init__()
        rd = make_divisible(channels * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * s.sigmoid()


class RepVGGDW(nn.Module):
    """Re-parameterisable depthwise block: ``conv_kxk_bn(x) + conv1x1(x) + x``, optionally then a BN.

    ``post_bn=False`` is LSNet's form (``conv1`` is a Conv2d_BN, no trailing BN). ``post_bn=True`` is
    RepViT's (``conv1`` is a biased depthwise Conv2d and ``bn`` normalises the sum). Both fuse into
    one depthwise ``kernel_size`` conv.
    """

    def __init__(self, ed: int, kernel_size: int = 3, post_bn: bool = False):
        super().__init__()
        self.conv = Conv2d_BN(ed, ed, kernel_size, 1, kernel_size // 2, groups=ed)
        if post_bn:
            self.conv1 = nn.Conv2d(ed, ed, 1, 1, 0, groups=ed)
            self.bn = nn.BatchNorm2d(ed)
        else:
            self.conv1 = Conv2d_BN(ed, ed, 1, 1, 0, groups=ed)
        self.dim, self.post_bn = ed, post_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + self.conv1(x) + x
        return self.bn(y) if self.post_bn else y

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv = self.conv.fuse()
        conv1 = self.conv1.fuse() if isinstance(self.conv1, Conv2d_BN) else self.conv1
        k = conv.kernel_size[0] // 2
        identity = torch.zeros_like(conv.weight)
        identity[:, 0, k, k] = 1
        conv.weight.add_(F.pad(conv1.weight, [k, k, k, k]) + identity)
        conv.bias.add_(conv1.bias)
        if self.post_bn:
            scale, shift = _bn_scale_shift(self.bn)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias.mul_(scale).add_(shift)
        return conv


class FFN(nn.Module):
    """Pointwise feed-forward: Conv2d_BN -> act -> Conv2d_BN (second BN initialised to 0).

    LSNet and EfficientViT use ReLU (the default), RepViT uses GELU. Wrap in :class:`Residual`.
    """

    def __init__(self, ed: int, h: int, act_layer: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.pw1 = Conv2d_BN(ed, h)
        self.act = act_layer()
        self.pw2 = Conv2d_BN(h, ed, bn_weight_init=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


def to_hw(img_size: int | tuple[int, int] | list[int], what: str = "img_size") -> tuple[int, int]:
    """``img_size`` as an ``(H, W)`` pair: an int ``n`` is ``(n, n)``; a pair of positive ints is kept."""
    if isinstance(img_size, bool):
        raise ValueError(f"{what} must be an int or an (H, W) pair of ints, got {img_size!r}")
    if isinstance(img_size, int):
        hw = (img_size, img_size)
    elif isinstance(img_size, (tuple, list, torch.Size)) and len(img_size) == 2 \
            and all(isinstance(v, int) and not isinstance(v, bool) for v in img_size):
        hw = (int(img_size[0]), int(img_size[1]))
    else:
        raise ValueError(f"{what} must be an int or an (H, W) pair of ints, got {img_size!r}")
    if min(hw) < 1:
        raise ValueError(f"{what} must be positive, got {hw[0]}x{hw[1]}")
    return hw


def stride2_hw(hw: tuple[int, int], times: int = 1) -> tuple[int, int]:
    """``(H, W)`` after ``times`` KxK stride-2 convs padded K // 2 (each side ``(n - 1) // 2 + 1``)."""
    h, w = hw
    for _ in range(times):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return h, w


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going below ``round_limit * v`` (timm rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def fuse(model: nn.Module) -> nn.Module:
    """Replace, in place and recursively, every submodule that has ``fuse()`` by its fused form.

    Returns the (possibly replaced) model. Dtype and device are kept: fused modules are created
    on the device and in the dtype of the weights they fold.
    """
    if hasattr(model, "fuse"):
        fused = model.fuse()
        if fused is not model:
            return fuse(fused)
    for name, child in model.named_children():
        fused = fuse(child)
        if fused is not child:
            setattr(model, name, fused)
    return model
