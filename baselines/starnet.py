"""StarNet: networks built on the star operation (element-wise multiplication of two branches).

Ma, Xu, Xiyang Dai, Yue Bai, Yizhou Wang, Yun Fu. "Rewrite the Stars." CVPR 2024 (arXiv:2403.19967).

Layout (paper Sec. 4 / Fig. 3, the released code and timm's ``starnet``): a 3x3 stride-2 conv+BN stem
with ReLU6 to 32 channels; four stages, each a 3x3 stride-2 conv+BN downsample to ``base_dim * 2**i``
channels and star blocks ``x + dwconv2(g(relu6(f1(y)) * f2(y)))`` with ``y = dwconv(x)``: depthwise
7x7 conv+BN, two 1x1 expansions (ratio 4) ``f1``, ``f2``, a 1x1 conv+BN ``g`` back and a depthwise 7x7
conv; the tail is BN, global average pooling and a Linear classifier. The released convs keep a bias
even in front of a BN (``Conv2d_BN(..., bias=True)``), which the published parameter counts include.

Checkpoints: timm's state dicts load through ``TIMM_RENAMES`` (timm's conv+BN names its conv
``conv``, ours ``c``; its BN-less ``f1``/``f2``/``dwconv2`` are bare convs here; its top-level
``norm``/``head`` are our tail's ``head.norm``/``head.fc``).

Counting: ``params_m`` and ``gmacs_224_fvcore`` are reproduced on the unfused model. ``lsnet.fuse``
folds every BN, the final BN into the classifier.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from baselines._common import NormPoolLinear, load_pretrained, to_hw
from lsnet.layers import Conv2d_BN

FAMILY = "starnet"


class StarBlock(nn.Module):
    """Star block: dw7x7+BN, ``act(f1) * f2`` of two 1x1 expansions, 1x1+BN, dw7x7, residual.

    ``drop`` is the stochastic-depth rate of the residual branch (training only).
    """

    def __init__(self, dim: int, mlp_ratio: int = 4, drop: float = 0.0, act_layer: type[nn.Module] = nn.ReLU6):
        super().__init__()
        self.dwconv = Conv2d_BN(dim, dim, 7, 1, 3, groups=dim, bias=True)
        self.f1 = nn.Conv2d(dim, mlp_ratio * dim, 1)
        self.f2 = nn.Conv2d(dim, mlp_ratio * dim, 1)
        self.g = Conv2d_BN(mlp_ratio * dim, dim, 1, bias=True)
        self.dwconv2 = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.act = act_layer()
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        y = self.dwconv2(self.g(self.act(self.f1(y)) * self.f2(y)))
        if self.training and self.drop > 0:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype)
            y = y * keep.ge_(self.drop).div_(1 - self.drop)
        return x + y


class StarNet(nn.Module):
    """StarNet backbone and classifier."""

    def __init__(self, base_dim: int = 32, depth: tuple[int, ...] = (3, 3, 12, 5), mlp_ratio: int = 4,
                 in_chans: int = 3, num_classes: int = 1000, drop_path_rate: float = 0.0, stem_dim: int = 32):
        super().__init__()
        self.stem = nn.Sequential(Conv2d_BN(in_chans, stem_dim, 3, 2, 1, bias=True), nn.ReLU6())
        drops = iter(torch.linspace(0, drop_path_rate, sum(depth)).tolist())
        self.stages = nn.Sequential()
        prev = stem_dim
        for i, dpth in enumerate(depth):
            dim = base_dim * 2 ** i
            stage = nn.Sequential(Conv2d_BN(prev, dim, 3, 2, 1, bias=True))
            for _ in range(dpth):
                stage.append(StarBlock(dim, mlp_ratio, next(drops)))
            self.stages.append(stage)
            prev = dim
        self.head = NormPoolLinear(prev, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@dataclass(frozen=True)
class StarNetConfig:
    base_dim: int
    depth: tuple[int, ...]
    mlp_ratio: int = 4


CONFIGS = {
    "starnet_s1": StarNetConfig(24, (2, 2, 8, 3)),
    "starnet_s2": StarNetConfig(32, (1, 2, 6, 2)),
    "starnet_s3": StarNetConfig(32, (2, 2, 8, 4)),
    "starnet_s4": StarNetConfig(32, (3, 3, 12, 5)),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> StarNet:
    """StarNet variant ``name`` (fully convolutional: ``img_size`` is accepted for the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    c = CONFIGS[name]
    model = StarNet(c.base_dim, c.depth, c.mlp_ratio, num_classes=num_classes, drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


TIMM_RENAMES = (  # timm's key names -> ours, applied in order on load (baselines.checkpoint)
    (r"\.(f1|f2|dwconv2)\.conv\.", r".\1."),  # timm's BN-less ConvBN: a bare Conv2d here
    (r"\.conv\.", ".c."),                     # timm's ConvBN: our Conv2d_BN
    (r"^head\.", "head.fc."),
    (r"^norm\.", "head.norm."),
)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
