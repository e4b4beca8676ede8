"""EfficientViT (MSRA): memory-efficient ViT with cascaded group attention (CGA).

Liu, Xinyu, Houwen Peng, Ningxin Zheng, Yuqing Yang, Han Hu, Yixuan Yuan. "EfficientViT: Memory
Efficient Vision Transformer with Cascaded Group Attention." CVPR 2023 (arXiv:2305.07027).
(Not MIT's EfficientViT of the same name.)

Layout (paper Fig. 2/Table 1 and its released code): an overlapping patch embedding of four 3x3
stride-2 Conv2d_BN with ReLU (stride 16); three stages of EfficientViT blocks in the *sandwich*
layout ``dw -> FFN -> attention -> dw -> FFN`` (each residual; dw is a 3x3 depthwise Conv2d_BN,
FFN a 1x1 x2 / ReLU / 1x1 pair); attention is cascaded group attention in local windows: head i
sees channel split i plus the previous head's output, has its own 1x1 q/k/v projection, a
depthwise conv (kernel ``kernels[i]``) on q and a LeViT-style learned relative-position bias,
and the head outputs are concatenated and projected (ReLU + 1x1 Conv2d_BN); stages 2 and 3 start
with a subsample block (``dw -> FFN``, an inverted-residual patch merging with SE at 4x width
and stride 2, then ``dw -> FFN``); the classifier is pooling and a BN+Linear head.

Checkpoints: the module names are timm's (``efficientvit_msra``) except inside its ConvBN and
BNLinear, whose ``conv`` and ``linear`` are ``c`` and ``l`` here (the ``lsnet.layers`` names);
``TIMM_RENAMES`` renames those, so a timm state dict loads unchanged.

Counting: ``params_m`` and ``gmacs_224_fvcore`` are both reproduced on the unfused model (fvcore
counts each BatchNorm as one MAC per element). Attention biases are built for the window
(``min(window, resolution)``), so a model built for a smaller ``img_size`` has the same
parameters whenever its stage resolutions are at least the window. ``lsnet.fuse`` folds every BN
and the residual depthwise convs.

Input size: ``img_size`` is an int or an ``(H, W)`` pair. Each attention is built for its stage's ``h x w``
map; the window is ``(min(window, h), min(window, w))`` per axis and the bias table is built for that
(possibly rectangular) window (LeViT offsets, ``M = wh * ww``): the official rule ``min(window_resolution,
resolution)`` of the classification and downstream (detection) code, per axis. For a square ``img_size`` it
is exactly the official table; maps at least 7 on each side (every stage at 800x1333 and 512x512) get the
official 7x7 window and its 49-entry table, as the downstream code uses with the 224 checkpoint's biases
unchanged. A map larger than the window is zero-padded to whole windows, as the official code does.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import load_pretrained, stride2
from lsnet.layers import FFN, BN_Linear, Conv2d_BN, Residual, SqueezeExcite, to_hw
from lsnet.model import attention_bias_idxs


class CascadedGroupAttention(nn.Module):
    """Cascaded group attention over a ``resolution`` x ``resolution`` (or ``(H, W)``) grid (one window)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int | tuple[int, int],
                 kernels: tuple[int, ...]):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        self.val_dim = int(attn_ratio * key_dim)
        self.resolution = resolution
        self.qkvs = nn.ModuleList(Conv2d_BN(dim // num_heads, 2 * key_dim + self.val_dim) for _ in range(num_heads))
        self.dws = nn.ModuleList(Conv2d_BN(key_dim, key_dim, k, 1, k // 2, groups=key_dim) for k in kernels[:num_heads])
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(self.val_dim * num_heads, dim, bn_weight_init=0))
        idxs, m = attention_bias_idxs(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, m))
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        feats_in = x.chunk(self.num_heads, dim=1)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        outs = []
        feat = feats_in[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:
                feat = feat + feats_in[i]
            q, k, v = qkv(feat).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            q = dw(q)
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
            attn = ((q.transpose(-2, -1) @ k) * self.scale + bias[i]).softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(b, self.val_dim, h, w)
            outs.append(feat)
        return self.proj(torch.cat(outs, 1))


class LocalWindowAttention(nn.Module):
    """CGA applied in non-overlapping windows (zero-padded at the border) on a ``resolution`` (int or ``(H, W)``)
    map; the window is ``min(window, H) x min(window, W)``."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int | tuple[int, int],
                 window: int, kernels: tuple[int, ...]):
        super().__init__()
        self.resolution, self.window = to_hw(resolution, "resolution"), window
        self.window_hw = (min(window, self.resolution[0]), min(window, self.resolution[1]))
        self.attn = CascadedGroupAttention(dim, key_dim, num_heads, attn_ratio, self.window_hw, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if (h, w) != self.resolution:
            raise ValueError(f"EfficientViT attention was built for a {self.resolution[0]}x{self.resolution[1]} map "
                             f"but got {h}x{w} (tensor {tuple(x.shape)}); create the model with the img_size (H, W) "
                             f"you run it at")
        wh, ww = self.window_hw
        if h <= wh and w <= ww:
            return self.attn(x)
        x = x.permute(0, 2, 3, 1)
        pad_b, pad_r = (wh - h % wh) % wh, (ww - w % ww) % ww
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // wh, pw // ww
        x = x.view(b, nh, wh, nw, ww, c).transpose(2, 3).reshape(b * nh * nw, wh, ww, c).permute(0, 3, 1, 2)
        x = self.attn(x)
        x = x.permute(0, 2, 3, 1).reshape(b, nh, nw, wh, ww, c).transpose(2, 3).reshape(b, ph, pw, c)
        return x[:, :h, :w].permute(0, 3, 1, 2).contiguous()


def dw_ffn(dim: int, drop: float = 0.0) -> nn.Sequential:
    """The ``dw -> FFN`` half-sandwich (both residual)."""
    return nn.Sequential(Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim), drop),
                         Residual(FFN(dim, 2 * dim), drop))


class EfficientViTBlock(nn.Module):
    """Sandwich block: residual dw, FFN, local-window CGA, dw, FFN."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int | tuple[int, int],
                 window: int, kernels: tuple[int, ...], drop: float = 0.0):
        super().__init__()
        self.dw0 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0), drop)
        self.ffn0 = Residual(FFN(dim, 2 * dim), drop)
        attn = LocalWindowAttention(dim, key_dim, num_heads, attn_ratio, resolution, window, kernels)
        self.mixer = Residual(attn, drop)
        self.dw1 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0), drop)
        self.ffn1 = Residual(FFN(dim, 2 * dim), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class PatchMerging(nn.Module):
    """Inverted-residual subsampling: 1x1 to 4x, ReLU, 3x3 s2 depthwise, ReLU, SE, 1x1 to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hid = 4 * dim
        self.conv1 = Conv2d_BN(dim, hid)
        self.act = nn.ReLU()
        self.conv2 = Conv2d_BN(hid, hid, 3, 2, 1, groups=hid)
        self.se = SqueezeExcite(hid, 0.25)
        self.conv3 = Conv2d_BN(hid, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


class EfficientViT(nn.Module):
    """EfficientViT (MSRA) backbone and BN+Linear classifier."""

    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: tuple[int, ...] = (64, 128, 192), key_dim: tuple[int, ...] = (16, 16, 16),
                 depth: tuple[int, ...] = (1, 2, 3), num_heads: tuple[int, ...] = (4, 4, 4),
                 window_size: tuple[int, ...] = (7, 7, 7), kernels: tuple[int, ...] = (5, 5, 5, 5),
                 drop_path_rate: float = 0.0):
        super().__init__()
        hw = to_hw(img_size)
        if min(hw) < 16:
            raise ValueError(f"img_size must be at least 16 on each side (patch stride 16), got "
                             f"{img_size if isinstance(img_size, int) else f'{hw[0]}x{hw[1]}'}")
        d0 = embed_dim[0]
        chs = (in_chans, d0 // 8, d0 // 4, d0 // 2, d0)
        self.patch_embed = nn.Sequential()
        for i in range(4):
            if i:
                self.patch_embed.add_module(f"relu{i}", nn.ReLU())
            self.patch_embed.add_module(f"conv{i + 1}", Conv2d_BN(chs[i], chs[i + 1], 3, 2, 1))
        resolution = stride2(hw, 4)
        drops = iter(torch.linspace(0, drop_path_rate, sum(depth)).tolist())
        self.stages = nn.Sequential()
        prev = d0
        for i, (ed, kd, dpth, nh, ws) in enumerate(zip(embed_dim, key_dim, depth, num_heads, window_size)):
            stage = nn.Sequential()
            if i > 0:
                stage.add_module("downsample", nn.Sequential(OrderedDict(
                    res1=dw_ffn(prev), patchmerge=PatchMerging(prev, ed), res2=dw_ffn(ed))))
                resolution = stride2(resolution)
            stage.add_module("blocks", nn.Sequential(*(
                EfficientViTBlock(ed, kd, nh, ed / (kd * nh), resolution, ws, kernels, next(drops))
                for _ in range(dpth))))
            self.stages.append(stage)
            prev = ed
        self.head = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes, self.img_size = num_classes, img_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.patch_embed(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@dataclass(frozen=True)
class EfficientViTConfig:
    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    kernels: tuple[int, ...]
    key_dim: tuple[int, ...] = (16, 16, 16)
    window_size: tuple[int, ...] = (7, 7, 7)


CONFIGS = {
    "efficientvit_m0": EfficientViTConfig((64, 128, 192), (1, 2, 3), (4, 4, 4), (5, 5, 5, 5)),
    "efficientvit_m1": EfficientViTConfig((128, 144, 192), (1, 2, 3), (2, 3, 3), (7, 5, 3, 3)),
    "efficientvit_m2": EfficientViTConfig((128, 192, 224), (1, 2, 3), (4, 3, 2), (7, 5, 3, 3)),
    "efficientvit_m3": EfficientViTConfig((128, 240, 320), (1, 2, 3), (4, 3, 4), (5, 5, 5, 5)),
    "efficientvit_m4": EfficientViTConfig((128, 256, 384), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3)),
    "efficientvit_m5": EfficientViTConfig((192, 288, 384), (1, 3, 4), (3, 3, 4), (7, 5, 3, 3)),
}
FAMILY = "efficientvit"


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> EfficientViT:
    """EfficientViT variant ``name``; attention is built for ``img_size`` (an int or an ``(H, W)`` pair)."""
    c = CONFIGS[name]
    model = EfficientViT(img_size, num_classes=num_classes, embed_dim=c.embed_dim, key_dim=c.key_dim, depth=c.depth,
                         num_heads=c.num_heads, window_size=c.window_size, kernels=c.kernels,
                         drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


TIMM_RENAMES = ((r"\.conv\.weight$", ".c.weight"), (r"^head\.linear\.", "head.l."))   # ConvBN conv, BNLinear linear


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
