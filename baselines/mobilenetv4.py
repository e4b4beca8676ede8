"""MobileNetV4: Universal Inverted Bottleneck (UIB) and Mobile MQA blocks for the mobile ecosystem.

Qin, Danfeng, Chas Leichner, Manolis Delakis, Marco Fornoni, Shixin Luo, Fan Yang, Weijun Wang, Colby
Banbury, Chengxi Ye, Berkin Akin, Vaibhav Aggarwal, Tenghui Zhu, Daniele Moro, Andrew Howard.
"MobileNetV4: Universal Models for the Mobile Ecosystem." ECCV 2024 (arXiv:2404.10518).

Layout (the paper's architecture tables, as timm's ``_gen_mobilenet_v4`` builds them): a 3x3 stride-2
conv + BN + ReLU stem; five stages of blocks, each stage's first block carrying its stride: ``Conv`` (k x k
conv + BN + act, no residual), ``ER`` (FusedIB: k x k expansion conv, BN, act, 1x1 projection, BN), ``UIB`` (an
optional depthwise conv before the expansion, the 1x1 expansion, an optional depthwise conv after it,
the 1x1 projection: IB, ConvNeXt-like, ExtraDW and FFN are its four instances) and, in the hybrid
variants, ``MQA`` (BN, then multi-query attention: one shared key and value head, with an optional
3x3 stride-2 depthwise conv + BN downsampling of the keys and values). Residual blocks add the input
when stride and width allow; the hybrids scale every UIB/MQA branch by a layer scale. The head is
global average pooling, a 1x1 conv to 1280 channels, BN, ReLU and a Linear classifier. Every BN has
eps 1e-5; every conv pads ``k // 2`` and the attention is global, so any input size works (stride 32).

Counting: ``params_m`` and ``gmacs_224_fvcore`` are those of the unfused model, which runs timm's ops (the
attention itself is ``F.scaled_dot_product_attention`` as in timm, which fvcore does not count). ``lsnet.fuse``
folds every BN into the conv before it, each MQA's pre-norm into the query (and, without kv
downsampling, the key and value) projections, and every layer scale into the projection before it.

Module names are timm's (``conv_stem``/``bn1``, ``blocks.i.j.*``, ``conv_head``/``norm_head``,
``classifier``), so timm's released checkpoints load unchanged (no ``TIMM_RENAMES``).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import LayerScale2d, load_pretrained, to_hw
from lsnet.layers import _bn_scale_shift, drop_path, make_divisible

FAMILY = "mobilenetv4"


@dataclass(frozen=True)
class Conv:
    """timm ``cn``: ``k`` x ``k`` conv (stride ``s``) + BN + act to ``c`` channels, no residual."""
    k: int
    s: int
    c: int


@dataclass(frozen=True)
class ER:
    """timm ``er`` (FusedIB): ``k`` x ``k`` conv to ``e`` x the input width, act, 1x1 projection to ``c``."""
    k: int
    s: int
    e: float
    c: int


@dataclass(frozen=True)
class UIB:
    """timm ``uir``: depthwise ``start`` (0: none), 1x1 expansion x ``e``, depthwise ``mid`` (0: none), 1x1
    projection to ``c``; ``r`` repeats (only the first strided)."""
    start: int
    mid: int
    s: int
    e: float
    c: int
    r: int = 1


@dataclass(frozen=True)
class MQA:
    """timm ``mqa``: ``heads`` query heads of ``key_dim``, one key/value head, keys and values downsampled
    by a 3x3 depthwise conv of stride ``kv_stride`` (1: none); ``c`` output channels."""
    heads: int
    key_dim: int
    kv_stride: int
    c: int
    r: int = 1


Block = Conv | ER | UIB | MQA


# --- inference folding helpers -----------------------------------------------------------------------

@torch.no_grad()
def _fold_bn(owner: nn.Module, conv_name: str, bn_name: str) -> None:
    """In place: fold ``owner.<bn_name>`` (eval mode) into ``owner.<conv_name>``, leaving the BN's activation."""
    conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
    if not isinstance(bn, nn.BatchNorm2d):
        return  # already folded
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale[:, None, None, None])
    fused.bias.copy_(shift if conv.bias is None else shift + conv.bias * scale)
    setattr(owner, conv_name, fused)
    setattr(owner, bn_name, getattr(bn, "act", nn.Identity()))


@torch.no_grad()
def _fold_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A 1x1 conv equal to ``conv(x * scale + shift)`` (per input channel)."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=True, device=conv.weight.device,
                      dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale[None, :, None, None])
    fused.bias.copy_(conv.weight[:, :, 0, 0] @ shift + (0 if conv.bias is None else conv.bias))
    return fused


@torch.no_grad()
def _scale_output(conv: nn.Conv2d, gamma: torch.Tensor) -> None:
    """In place: ``conv`` becomes ``gamma * conv(x)`` (per output channel)."""
    conv.weight.mul_(gamma[:, None, None, None])
    if conv.bias is not None:
        conv.bias.mul_(gamma)


# --- layers ---------------------------------------------------------------------------------------------

class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d then an activation (timm's layout: the BN's own state keys; the act has none)."""

    def __init__(self, channels: int, act_layer: type[nn.Module] | None = None):
        super().__init__(channels)
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class ConvNormAct(nn.Module):
    """Conv (no bias, pad ``k // 2``) + BN (+ act); folds to one biased conv (+ act)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 act_layer: type[nn.Module] | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = BatchNormAct2d(cout, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def fuse(self) -> ConvNormAct:
        _fold_bn(self, "conv", "bn")
        return self


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel (a folded BN that cannot enter the zero-padded conv after it)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone())
        self.shift = nn.Parameter(shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


# --- blocks ---------------------------------------------------------------------------------------------

class ConvBnAct(nn.Module):
    """``Conv`` block: k x k conv + BN + act, no residual."""

    def __init__(self, cin: int, spec: Conv, stride: int, act_layer: type[nn.Module]):
        super().__init__()
        self.conv = nn.Conv2d(cin, spec.c, spec.k, stride, spec.k // 2, bias=False)
        self.bn1 = BatchNormAct2d(spec.c, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv(x))

    def fuse(self) -> ConvBnAct:
        _fold_bn(self, "conv", "bn1")
        return self


class EdgeResidual(nn.Module):
    """``ER`` block (FusedIB): k x k expansion conv + BN + act, 1x1 projection + BN, residual if shapes allow."""

    def __init__(self, cin: int, spec: ER, stride: int, act_layer: type[nn.Module], drop_path: float = 0.0):
        super().__init__()
        mid = make_divisible(cin * spec.e)
        self.conv_exp = nn.Conv2d(cin, mid, spec.k, stride, spec.k // 2, bias=False)
        self.bn1 = BatchNormAct2d(mid, act_layer)
        self.conv_pwl = nn.Conv2d(mid, spec.c, 1, bias=False)
        self.bn2 = BatchNormAct2d(spec.c)
        self.has_skip = stride == 1 and cin == spec.c
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pwl(self.bn1(self.conv_exp(x))))
        return drop_path(y, self.drop_path, self.training) + x if self.has_skip else y

    def fuse(self) -> EdgeResidual:
        _fold_bn(self, "conv_exp", "bn1")
        _fold_bn(self, "conv_pwl", "bn2")
        return self


class UniversalInvertedResidual(nn.Module):
    """``UIB`` block: [dw start + BN] -> 1x1 + BN + act -> [dw mid + BN + act] -> 1x1 + BN -> [layer scale],
    plus the input when stride and width allow. The stride sits on ``dw_mid`` if present, else ``dw_start``."""

    def __init__(self, cin: int, spec: UIB, stride: int, act_layer: type[nn.Module],
                 layer_scale: float | None = None, drop_path: float = 0.0):
        super().__init__()
        mid = make_divisible(cin * spec.e)
        self.dw_start = (ConvNormAct(cin, cin, spec.start, 1 if spec.mid else stride, groups=cin)
                         if spec.start else nn.Identity())
        self.pw_exp = ConvNormAct(cin, mid, 1, act_layer=act_layer)
        self.dw_mid = (ConvNormAct(mid, mid, spec.mid, stride, groups=mid, act_layer=act_layer)
                       if spec.mid else nn.Identity())
        self.pw_proj = ConvNormAct(mid, spec.c, 1)
        self.layer_scale = LayerScale2d(spec.c, layer_scale) if layer_scale is not None else nn.Identity()
        self.has_skip = stride == 1 and cin == spec.c
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x)))))
        return drop_path(y, self.drop_path, self.training) + x if self.has_skip else y

    def fuse(self) -> UniversalInvertedResidual:
        self.pw_proj.fuse()
        if isinstance(self.layer_scale, LayerScale2d):
            _scale_output(self.pw_proj.conv, self.layer_scale.gamma)
            self.layer_scale = nn.Identity()
        return self


class MultiQueryAttention2d(nn.Module):
    """Multi-query attention on an NCHW map: ``heads`` query heads, one key and one value head (each
    optionally downsampled by a depthwise conv + BN), 1x1 projections without bias. ``kv_norm`` is
    where the fused form applies the block's pre-norm to the key/value input (identity until then)."""

    def __init__(self, dim: int, heads: int, key_dim: int, kv_stride: int = 1, dw_kernel_size: int = 3):
        super().__init__()
        self.num_heads, self.key_dim, self.kv_stride = heads, key_dim, kv_stride
        self.kv_norm: nn.Module = nn.Identity()
        self.query = nn.Sequential(OrderedDict(proj=nn.Conv2d(dim, heads * key_dim, 1, bias=False)))
        for name in ("key", "value"):
            layers = OrderedDict()
            if kv_stride > 1:
                layers["down_conv"] = nn.Conv2d(dim, dim, dw_kernel_size, kv_stride, dw_kernel_size // 2,
                                                groups=dim, bias=False)
                layers["norm"] = nn.BatchNorm2d(dim)
            layers["proj"] = nn.Conv2d(dim, key_dim, 1, bias=False)
            setattr(self, name, nn.Sequential(layers))
        self.output = nn.Sequential(OrderedDict(proj=nn.Conv2d(heads * key_dim, dim, 1, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.query(x).reshape(b, self.num_heads, self.key_dim, h * w).transpose(-1, -2)
        kv_in = self.kv_norm(x)
        k = self.key(kv_in).flatten(2).transpose(1, 2).unsqueeze(1)   # (B, 1, P, key_dim): one shared head
        v = self.value(kv_in).flatten(2).transpose(1, 2).unsqueeze(1)
        o = F.scaled_dot_product_attention(q, k, v)                   # (B, heads, HW, key_dim)
        return self.output(o.transpose(-1, -2).reshape(b, -1, h, w))


class MobileAttention(nn.Module):
    """``MQA`` block: ``x + layer_scale(attn(norm(x)))``, the pre-norm a BN without activation (``spec.c``
    is the input width: the block is always residual)."""

    def __init__(self, dim: int, spec: MQA, layer_scale: float | None = None, drop_path: float = 0.0):
        super().__init__()
        self.norm = BatchNormAct2d(dim)
        self.attn = MultiQueryAttention2d(dim, spec.heads, spec.key_dim, spec.kv_stride)
        self.layer_scale = LayerScale2d(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(self.layer_scale(self.attn(self.norm(x))), self.drop_path, self.training) + x

    @torch.no_grad()
    def fuse(self) -> MobileAttention:
        a = self.attn
        if isinstance(self.norm, nn.BatchNorm2d):
            scale, shift = _bn_scale_shift(self.norm)
            a.query.proj = _fold_input_affine(a.query.proj, scale, shift)
            if a.kv_stride > 1:  # the depthwise downsampling zero-pads: the norm stays an affine in front
                a.kv_norm = ChannelAffine(scale, shift)
            else:
                a.key.proj = _fold_input_affine(a.key.proj, scale, shift)
                a.value.proj = _fold_input_affine(a.value.proj, scale, shift)
            self.norm = nn.Identity()
        if a.kv_stride > 1:
            _fold_bn(a.key, "down_conv", "norm")
            _fold_bn(a.value, "down_conv", "norm")
        if isinstance(self.layer_scale, LayerScale2d):
            _scale_output(a.output.proj, self.layer_scale.gamma)
            self.layer_scale = nn.Identity()
        return self


# --- model ----------------------------------------------------------------------------------------------

class MobileNetV4(nn.Module):
    """MobileNetV4 backbone and classifier (conv head after pooling)."""

    def __init__(self, stages: tuple[tuple[Block, ...], ...], stem: int = 32, num_features: int = 1280,
                 layer_scale: float | None = None, act_layer: type[nn.Module] = nn.ReLU, in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.0):
        super().__init__()
        self.conv_stem = nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(stem, act_layer)
        specs = [(i, s, j) for i, stage in enumerate(stages) for s in stage for j in range(getattr(s, "r", 1))]
        self.blocks = nn.Sequential(*(nn.Sequential() for _ in stages))
        cin = stem
        for idx, (i, spec, j) in enumerate(specs):
            drop = drop_path_rate * idx / len(specs)
            stride = spec.s if (j == 0 and len(self.blocks[i]) == 0) else 1
            if isinstance(spec, Conv):
                block = ConvBnAct(cin, spec, stride, act_layer)
            elif isinstance(spec, ER):
                block = EdgeResidual(cin, spec, stride, act_layer, drop)
            elif isinstance(spec, UIB):
                block = UniversalInvertedResidual(cin, spec, stride, act_layer, layer_scale, drop)
            else:
                block = MobileAttention(cin, spec, layer_scale, drop)
            self.blocks[i].append(block)
            cin = spec.c
        self.conv_head = nn.Conv2d(cin, num_features, 1, bias=False)
        self.norm_head = BatchNormAct2d(num_features, act_layer)
        self.classifier = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.forward_features(x), 1)
        return self.classifier(self.norm_head(self.conv_head(x)).flatten(1))

    def fuse(self) -> MobileNetV4:
        _fold_bn(self, "conv_stem", "bn1")
        _fold_bn(self, "conv_head", "norm_head")
        return self


@dataclass(frozen=True)
class MobileNetV4Config:
    stages: tuple[tuple[Block, ...], ...]
    layer_scale: float | None = None  # hybrids: 1e-5 (init value of the layer scales)


_HEAD_STAGE = (Conv(1, 1, 960),)

CONFIGS = {
    "mobilenetv4_conv_small": MobileNetV4Config((
        (Conv(3, 2, 32), Conv(1, 1, 32)),
        (Conv(3, 2, 96), Conv(1, 1, 64)),
        (UIB(5, 5, 2, 3, 96), UIB(0, 3, 1, 2, 96, r=4), UIB(3, 0, 1, 4, 96)),
        (UIB(3, 3, 2, 6, 128), UIB(5, 5, 1, 4, 128), UIB(0, 5, 1, 4, 128), UIB(0, 5, 1, 3, 128),
         UIB(0, 3, 1, 4, 128, r=2)),
        _HEAD_STAGE)),
    "mobilenetv4_conv_medium": MobileNetV4Config((
        (ER(3, 2, 4, 48),),
        (UIB(3, 5, 2, 4, 80), UIB(3, 3, 1, 2, 80)),
        (UIB(3, 5, 2, 6, 160), UIB(3, 3, 1, 4, 160, r=2), UIB(3, 5, 1, 4, 160), UIB(3, 3, 1, 4, 160),
         UIB(3, 0, 1, 4, 160), UIB(0, 0, 1, 2, 160), UIB(3, 0, 1, 4, 160)),
        (UIB(5, 5, 2, 6, 256), UIB(5, 5, 1, 4, 256), UIB(3, 5, 1, 4, 256, r=2), UIB(0, 0, 1, 4, 256),
         UIB(3, 0, 1, 4, 256), UIB(3, 5, 1, 2, 256), UIB(5, 5, 1, 4, 256), UIB(0, 0, 1, 4, 256, r=2),
         UIB(5, 0, 1, 2, 256)),
        _HEAD_STAGE)),
    "mobilenetv4_hybrid_medium": MobileNetV4Config((
        (ER(3, 2, 4, 48),),
        (UIB(3, 5, 2, 4, 80), UIB(3, 3, 1, 2, 80)),
        (UIB(3, 5, 2, 6, 160), UIB(0, 0, 1, 2, 160), UIB(3, 3, 1, 4, 160), UIB(3, 5, 1, 4, 160),
         MQA(4, 64, 2, 160), UIB(3, 3, 1, 4, 160), MQA(4, 64, 2, 160), UIB(3, 0, 1, 4, 160),
         MQA(4, 64, 2, 160), UIB(3, 3, 1, 4, 160), MQA(4, 64, 2, 160), UIB(3, 0, 1, 4, 160)),
        (UIB(5, 5, 2, 6, 256), UIB(5, 5, 1, 4, 256), UIB(3, 5, 1, 4, 256, r=2), UIB(0, 0, 1, 2, 256),
         UIB(3, 5, 1, 2, 256), UIB(0, 0, 1, 2, 256), UIB(0, 0, 1, 4, 256), MQA(4, 64, 1, 256),
         UIB(3, 0, 1, 4, 256), MQA(4, 64, 1, 256), UIB(5, 5, 1, 4, 256), MQA(4, 64, 1, 256),
         UIB(5, 0, 1, 4, 256), MQA(4, 64, 1, 256), UIB(5, 0, 1, 4, 256)),
        _HEAD_STAGE), layer_scale=1e-5),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> MobileNetV4:
    """MobileNetV4 variant ``name`` (fully convolutional, global attention: ``img_size`` is accepted for
    the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    cfg = CONFIGS[name]
    model = MobileNetV4(cfg.stages, layer_scale=cfg.layer_scale, num_classes=num_classes,
                        drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
