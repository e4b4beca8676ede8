"""SHViT: single-head vision transformer with a memory-efficient macro design.

Yun, Seokju, Youngmin Ro. "SHViT: Single-Head Vision Transformer with Memory Efficient Macro
Design." CVPR 2024 (arXiv:2401.16456).

Layout (paper Fig. 4 and its released code): a 16x16 patchify stem of four 3x3 stride-2
Conv2d_BN with ReLU; three stages of blocks ``residual dw3x3 -> [residual single-head attention]
-> residual FFN``, the attention only in stages 2 and 3 (stage 1 has none); single-head
self-attention (SHSA) takes the first ``pdim`` channels only, normalises them with a one-group
GroupNorm, projects to q, k (``qk_dim`` 16 each) and v (``pdim``), attends without position bias,
concatenates the untouched channels back and projects all channels (ReLU + 1x1 Conv2d_BN);
stages 2 and 3 start with ``dw -> FFN``, an inverted-residual patch merging with SE at 4x width,
then ``dw -> FFN``; the classifier is pooling and a BN+Linear head.

Checkpoints: the module names are timm's (``shvit``), so a timm state dict loads unchanged.

Counting: ``params_m`` and ``gmacs_224_fvcore`` are reproduced on the unfused model. The model is
fully convolutional in the attention sense (no position bias), so any ``img_size`` works.
``lsnet.fuse`` folds every BN and the residual depthwise convs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import load_pretrained, to_hw
from baselines.efficientvit import PatchMerging, dw_ffn
from lsnet.layers import FFN, BN_Linear, Conv2d_BN, Residual

FAMILY = "shvit"


class SHSA(nn.Module):
    """Single-head self-attention on the first ``pdim`` channels; all channels are projected."""

    def __init__(self, dim: int, qk_dim: int, pdim: int):
        super().__init__()
        self.scale, self.qk_dim, self.dim, self.pdim = qk_dim ** -0.5, qk_dim, dim, pdim
        self.pre_norm = nn.GroupNorm(1, pdim)
        self.qkv = Conv2d_BN(pdim, 2 * qk_dim + pdim)
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(dim, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = x.split([self.pdim, self.dim - self.pdim], dim=1)
        q, k, v = self.qkv(self.pre_norm(x1)).split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
        attn = ((q.transpose(-1, -2) @ k) * self.scale).softmax(dim=-1)
        x1 = (v @ attn.transpose(-1, -2)).reshape(b, self.pdim, h, w)
        return self.proj(torch.cat([x1, x2], dim=1))


class SHViTBlock(nn.Module):
    """Residual dw3x3 (BN init 0), optional residual SHSA, residual FFN."""

    def __init__(self, dim: int, qk_dim: int, pdim: int, attention: bool, drop: float = 0.0):
        super().__init__()
        self.conv = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0), drop)
        self.mixer = Residual(SHSA(dim, qk_dim, pdim), drop) if attention else nn.Identity()
        self.ffn = Residual(FFN(dim, 2 * dim), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(self.conv(x)))


class SHViT(nn.Module):
    """SHViT backbone and BN+Linear classifier."""

    def __init__(self, embed_dim: tuple[int, ...] = (128, 256, 384), partial_dim: tuple[int, ...] = (32, 64, 96),
                 depth: tuple[int, ...] = (1, 2, 3), attention: tuple[bool, ...] = (False, True, True),
                 qk_dim: tuple[int, ...] = (16, 16, 16), in_chans: int = 3, num_classes: int = 1000,
                 drop_path_rate: float = 0.0):
        super().__init__()
        d0 = embed_dim[0]
        self.patch_embed = nn.Sequential(
            Conv2d_BN(in_chans, d0 // 8, 3, 2, 1), nn.ReLU(), Conv2d_BN(d0 // 8, d0 // 4, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(d0 // 4, d0 // 2, 3, 2, 1), nn.ReLU(), Conv2d_BN(d0 // 2, d0, 3, 2, 1))
        drops = iter(torch.linspace(0, drop_path_rate, sum(depth)).tolist())
        self.stages = nn.Sequential()
        prev = d0
        for ed, pd, qk, dpth, att in zip(embed_dim, partial_dim, qk_dim, depth, attention):
            stage = nn.Sequential()
            if ed != prev:
                stage.add_module("downsample", nn.Sequential(*dw_ffn(prev), PatchMerging(prev, ed), *dw_ffn(ed)))
            stage.add_module("blocks", nn.Sequential(*(SHViTBlock(ed, qk, pd, att, next(drops)) for _ in range(dpth))))
            self.stages.append(stage)
            prev = ed
        self.head = BN_Linear(prev, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.stages(self.patch_embed(x)), 1).flatten(1))


@dataclass(frozen=True)
class SHViTConfig:
    embed_dim: tuple[int, ...]
    partial_dim: tuple[int, ...]
    depth: tuple[int, ...]


CONFIGS = {
    "shvit_s1": SHViTConfig((128, 224, 320), (32, 48, 68), (2, 4, 5)),
    "shvit_s2": SHViTConfig((128, 308, 448), (32, 66, 96), (2, 4, 5)),
    "shvit_s3": SHViTConfig((192, 352, 448), (48, 75, 96), (3, 5, 5)),
    "shvit_s4": SHViTConfig((224, 336, 448), (48, 72, 96), (4, 7, 6)),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> SHViT:
    """SHViT variant ``name`` (no position bias: ``img_size`` is accepted for the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    c = CONFIGS[name]
    model = SHViT(c.embed_dim, c.partial_dim, c.depth, num_classes=num_classes, drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
