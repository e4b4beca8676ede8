"""RepViT: a mobile CNN redesigned with ViT macro/micro choices, re-parameterisable for inference.

Wang, Ao, Hui Chen, Zijia Lin, Jungong Han, Guiguang Ding. "RepViT: Revisiting Mobile CNN From ViT
Perspective." CVPR 2024 (arXiv:2307.09283).

Layout (as the paper's Fig. 1/Table, its released code and timm's ``repvit``): stem of two 3x3
stride-2 Conv2d_BN with GELU between (total stride 4); four stages, the first without downsampling;
every block is a token mixer (RepVGG-style depthwise 3x3 + 1x1 + identity with a trailing BN,
optionally followed by squeeze-excite, SE on every other block starting with the first of a stage)
and a residual channel mixer (1x1 expand x2, GELU, 1x1); a downsample is a RepViT block without SE,
a 3x3 stride-2 depthwise Conv2d_BN, a 1x1 Conv2d_BN to the new width and a residual MLP; the
classifier is global average pooling and a BN+Linear head with a distillation head (averaged at
inference).

Checkpoints: the module names are timm's, so a timm state dict loads unchanged.

Counting: parameters are the unfused model's with the distillation head, as published
(``params_m``); ``gmacs_224_fvcore`` is reproduced by fvcore on the unfused model (fvcore counts
each BatchNorm as one MAC per element, which is why the published figure is slightly above the
fused one). ``lsnet.fuse`` folds every BN, the RepVGG branches with their post-BN, and merges the
two heads into one Linear.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from baselines._common import DistillHead, load_pretrained, to_hw
from lsnet.layers import Conv2d_BN, drop_path, RepVGGDW, SqueezeExcite

FAMILY = "repvit"


class RepViTMlp(nn.Module):
    """Pointwise MLP: Conv2d_BN -> act -> Conv2d_BN (second BN initialised to 0); the residual is the caller's."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv1 = Conv2d_BN(dim, hidden)
        self.act = act_layer()
        self.conv2 = Conv2d_BN(hidden, dim, bn_weight_init=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class RepViTBlock(nn.Module):
    """Token mixer (RepVGGDW with post-BN, optional SE) then residual channel mixer (MLP, GELU)."""

    def __init__(self, dim: int, mlp_ratio: int = 2, kernel_size: int = 3, use_se: bool = False,
                 act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.token_mixer = RepVGGDW(dim, kernel_size, post_bn=True)
        self.se = SqueezeExcite(dim, 0.25) if use_se else nn.Identity()
        self.channel_mixer = RepViTMlp(dim, dim * mlp_ratio, act_layer)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + drop_path(self.channel_mixer(x), self.drop, self.training)


class RepViTDownsample(nn.Module):
    """RepViT block (no SE), depthwise stride-2 Conv2d_BN, 1x1 Conv2d_BN to ``out_dim``, residual MLP."""

    def __init__(self, in_dim: int, out_dim: int, mlp_ratio: int = 2, kernel_size: int = 3,
                 act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.pre_block = RepViTBlock(in_dim, mlp_ratio, kernel_size, False, act_layer, drop)
        self.spatial_downsample = Conv2d_BN(in_dim, in_dim, kernel_size, 2, kernel_size // 2, groups=in_dim)
        self.channel_downsample = Conv2d_BN(in_dim, out_dim, 1)
        self.ffn = RepViTMlp(out_dim, out_dim * mlp_ratio, act_layer)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + drop_path(self.ffn(x), self.drop, self.training)


class RepViTStage(nn.Module):
    """``downsample`` (a :class:`RepViTDownsample`, identity in the first stage) then ``blocks``.

    ``drops``: the stochastic-depth rates, the downsample's first, then one per block.
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int, mlp_ratio: int = 2, kernel_size: int = 3,
                 act_layer: type[nn.Module] = nn.GELU, downsample: bool = True,
                 drops: Sequence[float] | None = None):
        super().__init__()
        drops = list(drops) if drops is not None else [0.0] * (depth + downsample)
        if downsample:
            self.downsample = RepViTDownsample(in_dim, out_dim, mlp_ratio, kernel_size, act_layer, drops.pop(0))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*(RepViTBlock(out_dim, mlp_ratio, kernel_size, j % 2 == 0, act_layer, d)
                                      for j, d in enumerate(drops)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class RepViT(nn.Module):
    """RepViT backbone and (distillation) classifier."""

    def __init__(self, embed_dim: tuple[int, ...] = (48, 96, 192, 384), depth: tuple[int, ...] = (2, 2, 14, 2),
                 mlp_ratio: int = 2, kernel_size: int = 3, in_chans: int = 3, num_classes: int = 1000,
                 distillation: bool = True, drop_path_rate: float = 0.0,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        d0 = embed_dim[0]
        self.stem = nn.Sequential(OrderedDict(conv1=Conv2d_BN(in_chans, d0 // 2, 3, 2, 1), act1=act_layer(),
                                              conv2=Conv2d_BN(d0 // 2, d0, 3, 2, 1)))
        # stochastic depth over the stage blocks and one pre_block per downsample, in order
        drops = torch.linspace(0, drop_path_rate, sum(depth) + len(depth) - 1).tolist()
        self.stages = nn.Sequential()
        prev, start = d0, 0
        for i, (ed, dpth) in enumerate(zip(embed_dim, depth)):
            n = dpth + (i > 0)
            self.stages.append(RepViTStage(prev, ed, dpth, mlp_ratio, kernel_size, act_layer, i > 0,
                                           drops[start:start + n]))
            prev, start = ed, start + n
        self.head = DistillHead(embed_dim[-1], num_classes, distillation)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.forward_features(x))


@dataclass(frozen=True)
class RepViTConfig:
    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]


CONFIGS = {
    "repvit_m0_9": RepViTConfig((48, 96, 192, 384), (2, 2, 14, 2)),
    "repvit_m1_0": RepViTConfig((56, 112, 224, 448), (2, 2, 14, 2)),
    "repvit_m1_1": RepViTConfig((64, 128, 256, 512), (2, 2, 12, 2)),
    "repvit_m1_5": RepViTConfig((64, 128, 256, 512), (4, 4, 24, 4)),
    "repvit_m2_3": RepViTConfig((80, 160, 320, 640), (6, 6, 34, 2)),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, distillation: bool = True,
          drop_path_rate: float = 0.0, pretrained: str | None = None) -> RepViT:
    """RepViT variant ``name`` (fully convolutional: ``img_size`` is accepted for the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    cfg = CONFIGS[name]
    model = RepViT(cfg.embed_dim, cfg.depth, num_classes=num_classes, distillation=distillation,
                   drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
