"""EfficientFormerV2: a hybrid ViT searched for MobileNet size and speed.

Li, Yanyu, Ju Hu, Yang Wen, Georgios Evangelidis, Kamyar Salahi, Yanzhi Wang, Sergey Tulyakov, Jian Ren.
"Rethinking Vision Transformers for MobileNet Size and Speed." ICCV 2023 (arXiv:2212.08059).

Layout (the paper's Fig. 2 and the released code, as timm's ``efficientformer_v2``), every conv biased
and followed by BN (eps 1e-5), GELU throughout:
- stem: two 3x3 stride-2 conv+BN+GELU (stride 4).
- four stages; stages 2-4 start with a 3x3 stride-2 conv+BN; in stage 4 an attention-downsampling
  branch is added to it: queries from a local-global pooling (3x3 stride-2 depthwise conv plus a
  stride-2 subsample, then a 1x1 conv+BN) attend over the full-resolution keys/values (8 heads,
  key dim 16, value dim 64), plus a stride-2 depthwise conv on the values, GELU, 1x1 projection.
- blocks: ``x + ls2 * FFN(x)``, the FFN a 1x1 expand, a 3x3 depthwise conv (each conv+BN+GELU) and a
  1x1 conv+BN; the last ``num_vit`` blocks of stages 3 and 4 first add ``x + ls1 * MHSA(x)``: 8 heads
  of key dim 32 and value dim 128, a learned relative-position bias per head (LeViT offsets over
  the attention grid), talking-head 1x1 convs before and after the softmax, a 3x3 depthwise conv on
  the values added to the output, GELU and a 1x1 projection; in stage 3 it attends on a stride-2
  depthwise-conv map and upsamples the result bilinearly. Layer scales start at 1e-5.
- head: BN on the last map, global average pooling, ``head`` and distillation ``head_dist`` Linears
  whose mean is the output (in training as well, as timm's default).
The attention grids are bound to ``img_size`` (biases and index tables are built for it).

Input size: ``img_size`` is an int or an ``(H, W)`` pair, and every attention builds its bias table for its
rectangular grid as timm's ``efficientformer_v2`` does (``to_2tuple(resolution)``; offsets ``(|dy|, |dx|)``
indexed ``|dy| * W + |dx|``, ``M = H * W``; the stride-2 queries of the downsampling attention sit at
``(2i, 2j)``). A square ``img_size`` gives exactly the tables of the classification release. The official
downstream code (snap-research/EfficientFormer ``detection``/``segmentation``) instead keeps the 224 tables
(``attention_biases_seg``) and bicubically resizes the gathered ``(heads, N, N)`` bias to the actual attention
size in every forward; this module builds the grid's table instead (same attention cost, no per-forward
interpolation). The strided stage-3 attention needs an even stage-3 map on both axes.

Counting: ``params_m`` and ``gmacs_224_fvcore`` are the unfused model's, distillation head included.
``lsnet.fuse`` folds every BN into its conv, the layer scales into the last conv of their branch, the
query subsample into the local depthwise conv, and the final BN and both heads into one Linear.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from baselines._common import LayerScale2d, load_pretrained, stride2
from lsnet.layers import _bn_scale_shift, Conv2d_BN, drop_path, stride2_hw, to_hw
from lsnet.model import attention_bias_idxs

FAMILY = "efficientformerv2"


TIMM_RENAMES = ((r"\.conv\.(weight|bias)$", r".c.\1"),)   # timm's conv+BN names its conv ``conv``, ours ``c``


class ConvNormAct(Conv2d_BN):
    """Biased conv, BN, activation; fuses into one conv and the activation."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, groups: int = 1,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__(a, b, ks, stride, ks // 2, groups=groups, bias=True)
        self.add_module("act", act_layer())

    def fuse(self) -> nn.Sequential:
        return nn.Sequential(super().fuse(), self.act)


def _conv_bn(a: int, b: int, ks: int = 1, stride: int = 1, groups: int = 1) -> Conv2d_BN:
    return Conv2d_BN(a, b, ks, stride, ks // 2, groups=groups, bias=True)


@torch.no_grad()
def _scaled(conv: nn.Conv2d, gamma: torch.Tensor) -> nn.Conv2d:
    """``conv`` with its output channels multiplied by ``gamma`` (a layer scale folded in)."""
    conv.weight.mul_(gamma[:, None, None, None])
    conv.bias.mul_(gamma)
    return conv


class Attention2d(nn.Module):
    """MHSA with talking heads, a relative-position bias and a local value conv, on an R x R (or ``(H, W)``) grid.

    With ``stride`` the keys, queries and values come from a stride-``stride`` depthwise conv+BN of
    the input and the output is upsampled bilinearly back to the input size.
    """

    def __init__(self, dim: int, resolution: int | tuple[int, int], key_dim: int = 32, num_heads: int = 8,
                 attn_ratio: int = 4, stride: int | None = None, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        resolution = self.in_resolution = to_hw(resolution, "resolution")
        if stride is not None:
            if resolution[0] % stride or resolution[1] % stride:
                raise ValueError(f"EfficientFormerV2 strided attention needs a map size divisible by {stride}, "
                                 f"got {resolution[0]}x{resolution[1]}; choose an img_size that gives an even "
                                 f"stage-3 map on both axes")
            resolution = (math.ceil(resolution[0] / stride), math.ceil(resolution[1] / stride))
            self.stride_conv = _conv_bn(dim, dim, 3, stride, groups=dim)
            self.upsample = nn.Upsample(scale_factor=stride, mode="bilinear")
        else:
            self.stride_conv = self.upsample = None
        self.resolution = resolution
        self.dh = attn_ratio * key_dim * num_heads
        kh = key_dim * num_heads
        self.q = _conv_bn(dim, kh)
        self.k = _conv_bn(dim, kh)
        self.v = _conv_bn(dim, self.dh)
        self.v_local = _conv_bn(self.dh, self.dh, 3, groups=self.dh)
        self.talking_head1 = nn.Conv2d(num_heads, num_heads, 1)
        self.talking_head2 = nn.Conv2d(num_heads, num_heads, 1)
        self.act = act_layer()
        self.proj = _conv_bn(self.dh, dim)
        idxs, m = attention_bias_idxs(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, m))
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if (h, w) != self.in_resolution:
            raise ValueError(f"EfficientFormerV2 attention was built for a {self.in_resolution[0]}x"
                             f"{self.in_resolution[1]} map but got {h}x{w} (tensor {tuple(x.shape)}); create the "
                             f"model with the img_size (H, W) you run it at")
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        (rh, rw), n = self.resolution, self.resolution[0] * self.resolution[1]
        q = self.q(x).reshape(b, self.num_heads, -1, n).transpose(-2, -1)
        k = self.k(x).reshape(b, self.num_heads, -1, n)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(b, self.num_heads, -1, n).transpose(-2, -1)
        attn = (q @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        attn = self.talking_head2(self.talking_head1(attn).softmax(dim=-1))
        x = (attn @ v).transpose(-2, -1).reshape(b, self.dh, rh, rw) + v_local
        if self.upsample is not None:
            x = self.upsample(x)
        return self.proj(self.act(x))


class LocalGlobalQuery(nn.Module):
    """``proj(local(x) + x[::2, ::2])``: a 3x3 stride-2 depthwise conv plus a stride-2 subsample."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.local = nn.Conv2d(in_dim, in_dim, 3, 2, 1, groups=in_dim)
        self.proj = _conv_bn(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.local(x) + x[:, :, ::2, ::2])

    @torch.no_grad()
    def fuse(self) -> nn.Sequential:
        """The subsample is the centre tap of the stride-2 depthwise kernel."""
        local = nn.Conv2d(self.local.in_channels, self.local.out_channels, 3, 2, 1, groups=self.local.groups,
                          device=self.local.weight.device, dtype=self.local.weight.dtype)
        local.weight.copy_(self.local.weight)
        local.weight[:, 0, 1, 1] += 1
        local.bias.copy_(self.local.bias)
        return nn.Sequential(local, self.proj)


class Attention2dDownsample(nn.Module):
    """Attention downsampling: stride-2 local-global queries over full-resolution keys and values."""

    def __init__(self, dim: int, out_dim: int, resolution: int | tuple[int, int], key_dim: int = 16,
                 num_heads: int = 8, attn_ratio: int = 4, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        self.resolution = to_hw(resolution, "resolution")
        self.resolution2 = stride2_hw(self.resolution)
        self.dh = attn_ratio * key_dim * num_heads
        kh = key_dim * num_heads
        self.q = LocalGlobalQuery(dim, kh)
        self.k = _conv_bn(dim, kh)
        self.v = _conv_bn(dim, self.dh)
        self.v_local = _conv_bn(self.dh, self.dh, 3, 2, groups=self.dh)
        self.act = act_layer()
        self.proj = _conv_bn(self.dh, out_dim)
        h, w = self.resolution
        ys, xs = torch.arange(h), torch.arange(w)
        k_pos = torch.stack((ys.repeat_interleave(w), xs.repeat(h)))
        qy, qx = torch.arange(0, h, 2), torch.arange(0, w, 2)
        q_pos = torch.stack((qy.repeat_interleave(len(qx)), qx.repeat(len(qy))))
        rel = (q_pos[:, :, None] - k_pos[:, None, :]).abs()
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, h * w))
        self.register_buffer("attention_bias_idxs", rel[0] * w + rel[1], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if (h, w) != self.resolution:
            raise ValueError(f"EfficientFormerV2 attention was built for a {self.resolution[0]}x{self.resolution[1]} "
                             f"map but got {h}x{w} (tensor {tuple(x.shape)}); create the model with the img_size "
                             f"(H, W) you run it at")
        n, (r2h, r2w) = h * w, self.resolution2
        q = self.q(x).reshape(b, self.num_heads, -1, r2h * r2w).transpose(-2, -1)
        k = self.k(x).reshape(b, self.num_heads, -1, n)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(b, self.num_heads, -1, n).transpose(-2, -1)
        attn = ((q @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs]).softmax(dim=-1)
        x = (attn @ v).transpose(-2, -1).reshape(b, self.dh, r2h, r2w) + v_local
        return self.proj(self.act(x))


class Downsample(nn.Module):
    """3x3 stride-2 conv+BN, plus (``use_attn``) the attention-downsampling branch."""

    def __init__(self, in_chs: int, out_chs: int, resolution: int | tuple[int, int], use_attn: bool = False,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv = _conv_bn(in_chs, out_chs, 3, 2)
        self.attn = Attention2dDownsample(in_chs, out_chs, resolution, act_layer=act_layer) if use_attn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return self.attn(x) + out if self.attn is not None else out


class ConvMlp(nn.Module):
    """1x1 expand, 3x3 depthwise (both conv+BN+GELU), 1x1 conv+BN."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = ConvNormAct(dim, hidden, 1, act_layer=act_layer)
        self.mid = ConvNormAct(hidden, hidden, 3, groups=hidden, act_layer=act_layer)
        self.fc2 = _conv_bn(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.mid(self.fc1(x)))


class EfficientFormerV2Block(nn.Module):
    """Optional ``x + ls1 * attention(x)``, then ``x + ls2 * FFN(x)`` (stochastic depth on both)."""

    def __init__(self, dim: int, mlp_ratio: float, resolution: int | tuple[int, int], use_attn: bool,
                 stride: int | None = None,
                 drop: float = 0.0, layer_scale_init_value: float = 1e-5, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        if use_attn:
            self.token_mixer = Attention2d(dim, resolution, stride=stride, act_layer=act_layer)
            self.ls1 = LayerScale2d(dim, layer_scale_init_value)
        else:
            self.token_mixer = self.ls1 = None
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer)
        self.ls2 = LayerScale2d(dim, layer_scale_init_value)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.token_mixer is not None:
            x = x + drop_path(self.ls1(self.token_mixer(x)), self.drop, self.training)
        return x + drop_path(self.ls2(self.mlp(x)), self.drop, self.training)

    @torch.no_grad()
    def fuse(self) -> EfficientFormerV2Block:
        """Fold each layer scale into the last conv of its branch (in place)."""
        if isinstance(self.ls2, LayerScale2d):
            self.mlp.fc2 = _scaled(self.mlp.fc2.fuse(), self.ls2.gamma)
            self.ls2 = nn.Identity()
        if isinstance(self.ls1, LayerScale2d):
            self.token_mixer.proj = _scaled(self.token_mixer.proj.fuse(), self.ls1.gamma)
            self.ls1 = nn.Identity()
        return self


class EfficientFormerV2(nn.Module):
    """EfficientFormerV2 backbone and (distillation) classifier, built for ``img_size``."""

    def __init__(self, depths: tuple[int, ...], embed_dims: tuple[int, ...],
                 mlp_ratios: tuple[float | tuple[float, ...], ...], num_vit: int,
                 img_size: int | tuple[int, int] = 224,
                 in_chans: int = 3, num_classes: int = 1000, distillation: bool = True,
                 drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-5,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        d0 = embed_dims[0]
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvNormAct(in_chans, d0 // 2, 3, 2, act_layer=act_layer))
        self.stem.add_module("conv2", ConvNormAct(d0 // 2, d0, 3, 2, act_layer=act_layer))
        resolution = stride2(to_hw(img_size), 2)
        drops = iter(torch.linspace(0, drop_path_rate, sum(depths)).tolist())
        self.stages = nn.Sequential()
        prev = d0
        for i, (depth, dim, ratios) in enumerate(zip(depths, embed_dims, mlp_ratios)):
            stage = nn.Sequential()
            if i > 0:
                stage.add_module("downsample", Downsample(prev, dim, resolution, use_attn=i >= 3, act_layer=act_layer))
                resolution = stride2(resolution)
            ratios = ratios if isinstance(ratios, tuple) else (ratios,) * depth
            blocks = nn.Sequential(*(
                EfficientFormerV2Block(dim, ratios[j], resolution, use_attn=i >= 2 and j >= depth - num_vit,
                                       stride=2 if i == 2 else None, drop=next(drops),
                                       layer_scale_init_value=layer_scale_init_value, act_layer=act_layer)
                for j in range(depth)))
            stage.add_module("blocks", blocks)
            self.stages.append(stage)
            prev = dim
        self.norm = nn.BatchNorm2d(prev)
        self.head = nn.Linear(prev, num_classes) if num_classes > 0 else nn.Identity()
        self.head_dist = (nn.Linear(prev, num_classes) if num_classes > 0 else nn.Identity()) if distillation else None
        for m in (self.head, self.head_dist):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.num_classes, self.img_size = num_classes, img_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.head_dist is None:
            return self.head(x)
        return (self.head(x) + self.head_dist(x)) / 2

    @torch.no_grad()
    def fuse(self) -> EfficientFormerV2:
        """Fold the final BN (it commutes with pooling) and the two heads into one Linear (in place)."""
        if not (isinstance(self.norm, nn.BatchNorm2d) and isinstance(self.head, nn.Linear)):
            return self
        heads = [h for h in (self.head, self.head_dist) if h is not None]
        weight = sum(h.weight for h in heads) / len(heads)
        bias = sum(h.bias for h in heads) / len(heads)
        scale, shift = _bn_scale_shift(self.norm)
        fc = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
        fc.weight.copy_(weight * scale[None, :])
        fc.bias.copy_(bias + weight @ shift)
        self.norm, self.head, self.head_dist = nn.Identity(), fc, None
        return self


@dataclass(frozen=True)
class EfficientFormerV2Config:
    depths: tuple[int, ...]
    embed_dims: tuple[int, ...]
    mlp_ratios: tuple[float | tuple[float, ...], ...]
    num_vit: int


CONFIGS = {
    "efficientformerv2_s0": EfficientFormerV2Config(
        (2, 2, 6, 4), (32, 48, 96, 176), (4, 4, (4, 3, 3, 3, 4, 4), (4, 3, 3, 4)), 2),
    "efficientformerv2_s1": EfficientFormerV2Config(
        (3, 3, 9, 6), (32, 48, 120, 224), (4, 4, (4, 4, 3, 3, 3, 3, 4, 4, 4), (4, 4, 3, 3, 4, 4)), 2),
    "efficientformerv2_s2": EfficientFormerV2Config(
        (4, 4, 12, 8), (32, 64, 144, 288),
        (4, 4, (4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4), (4, 4, 3, 3, 3, 3, 4, 4)), 4),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, distillation: bool = True,
          drop_path_rate: float = 0.0, pretrained: str | None = None) -> EfficientFormerV2:
    """EfficientFormerV2 variant ``name``; its attention is built for ``img_size`` (an int or an ``(H, W)`` pair)."""
    c = CONFIGS[name]
    model = EfficientFormerV2(c.depths, c.embed_dims, c.mlp_ratios, c.num_vit, img_size, num_classes=num_classes,
                              distillation=distillation, drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
