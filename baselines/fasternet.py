"""FasterNet: partial convolution (PConv) for networks that run at high FLOPS.

Chen, Jierun, Shiu-hong Kao, Hao He, Weipeng Zhuo, Song Wen, Chul-Ho Lee, S.-H. Gary Chan. "Run,
Don't Walk: Chasing Higher FLOPS for Faster Neural Networks." CVPR 2023 (arXiv:2303.03667).

Layout (paper Fig. 4 and its released code): a 4x4 stride-4 conv+BN patch embedding; four stages,
stages 2-4 begin with a 2x2 stride-2 conv+BN patch merging that doubles the width; each FasterNet
block is a partial 3x3 conv over the first ``dim / 4`` channels (the rest pass untouched), then a
residual ``1x1 (x2) + BN + act + 1x1`` MLP; the head is global pooling, a 1x1 conv to 1280
channels, the activation and a Linear classifier. T0 and T1 use GELU, T2 ReLU; layer scale is off
for the T models (and not implemented).

Counting: ``params_m`` and ``gmacs_224_fvcore`` are reproduced on the unfused model. ``lsnet.fuse``
folds every BN (the partial conv has no BN and stays as it is).

Module names follow timm's (``stages.i.downsample``, ``stages.i.blocks.j.spatial_mixing`` / ``mlp``,
``conv_head``, ``classifier``) with lsnet's layers inside; ``TIMM_RENAMES`` maps timm's keys onto them, so
timm's released checkpoints load unchanged.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import load_pretrained, to_hw
from lsnet.layers import Conv2d_BN, Residual

FAMILY = "fasternet"


class PartialConv3(nn.Module):
    """3x3 conv over the first ``dim // n_div`` channels; the others are passed through."""

    def __init__(self, dim: int, n_div: int = 4):
        super().__init__()
        self.dim_conv3 = dim // n_div
        self.dim_untouched = dim - self.dim_conv3
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.split([self.dim_conv3, self.dim_untouched], dim=1)
        return torch.cat((self.partial_conv3(x1), x2), 1)


def fasternet_block(dim: int, n_div: int = 4, mlp_ratio: float = 2.0, act_layer: type[nn.Module] = nn.ReLU,
                    drop: float = 0.0) -> Residual:
    """``x + mlp(pconv(x))``: partial conv, then 1x1 expand + BN + act and 1x1 project."""
    hid = int(dim * mlp_ratio)
    return Residual(nn.Sequential(OrderedDict(
        spatial_mixing=PartialConv3(dim, n_div),
        mlp=nn.Sequential(Conv2d_BN(dim, hid), act_layer(), nn.Conv2d(hid, dim, 1, bias=False)))), drop)


class FasterNet(nn.Module):
    """FasterNet backbone and conv-head classifier."""

    def __init__(self, embed_dim: int = 96, depth: tuple[int, ...] = (1, 2, 8, 2), mlp_ratio: float = 2.0,
                 n_div: int = 4, feature_dim: int = 1280, act_layer: type[nn.Module] = nn.ReLU, in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.0):
        super().__init__()
        self.patch_embed = Conv2d_BN(in_chans, embed_dim, 4, 4)
        drops = iter(torch.linspace(0, drop_path_rate, sum(depth)).tolist())
        self.stages = nn.Sequential()
        dim = embed_dim
        for i, dpth in enumerate(depth):
            stage = nn.Sequential()
            if i > 0:
                stage.add_module("downsample", Conv2d_BN(dim, 2 * dim, 2, 2))
                dim *= 2
            stage.add_module("blocks", nn.Sequential(*(
                fasternet_block(dim, n_div, mlp_ratio, act_layer, next(drops)) for _ in range(dpth))))
            self.stages.append(stage)
        self.conv_head = nn.Conv2d(dim, feature_dim, 1, bias=False)
        self.act = act_layer()
        self.classifier = nn.Linear(feature_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.stages(self.patch_embed(x)), 1)
        return self.classifier(self.act(self.conv_head(x)).flatten(1))


@dataclass(frozen=True)
class FasterNetConfig:
    embed_dim: int
    act_layer: type[nn.Module]
    depth: tuple[int, ...] = (1, 2, 8, 2)


CONFIGS = {
    "fasternet_t0": FasterNetConfig(40, nn.GELU),
    "fasternet_t1": FasterNetConfig(64, nn.GELU),
    "fasternet_t2": FasterNetConfig(96, nn.ReLU),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> FasterNet:
    """FasterNet variant ``name`` (fully convolutional: ``img_size`` is accepted for the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    c = CONFIGS[name]
    model = FasterNet(c.embed_dim, c.depth, act_layer=c.act_layer, num_classes=num_classes,
                      drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


TIMM_RENAMES = (  # timm's key names -> ours, applied in order on load (baselines.checkpoint)
    (r"\.(proj|reduction)\.weight$", ".c.weight"), (r"\.norm\.", ".bn."), (r"(blocks\.\d+)\.", r"\1.m."),
    (r"\.mlp\.0\.", ".mlp.0.c."), (r"\.mlp\.1\.", ".mlp.0.bn."), (r"\.mlp\.3\.", ".mlp.2."))


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
