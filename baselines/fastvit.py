"""FastViT: a hybrid vision transformer made fast by structural reparameterisation (RepMixer).

Vasu, Pavan Kumar Anasosalu, James Gabriel, Jeff Zhu, Oncel Tuzel, Anurag Ranjan. "FastViT: A Fast
Hybrid Vision Transformer using Structural Reparameterization." ICCV 2023 (arXiv:2303.14189).

Layout (paper Fig. 2 / Table 1 and its released code), for the all-RepMixer T8 and T12:
- MobileOne blocks: a sum of re-parameterisable branches (KxK conv+BN, 1x1 conv+BN "scale"
  branch when K > 1, BN "identity" branch when shapes allow), then optional SE and GELU.
- stem: MobileOne 3x3 s2 (3 -> C), 3x3 s2 depthwise, 1x1 (stride 4 in all).
- stages: stages 2-4 start with a patch embedding: a 7x7 stride-2 grouped conv+BN plus a 3x3 one
  (a re-parameterisable large kernel, channel multiplier 2), then a MobileOne 1x1 block with GELU;
  RepMixer blocks: ``x + ls1 * (mixer(x) - norm(x))`` where ``mixer`` is a 3x3 depthwise MobileOne
  block without activation and ``norm`` its BN-only identity branch, then a residual, layer-scaled
  ConvMlp (7x7 depthwise conv+BN, 1x1 expand x3, GELU, 1x1).
- head: a MobileOne 3x3 block with channel multiplier 2 (grouped), SE (ratio 1/16) and GELU, global
  pooling and a Linear classifier.
Layer scales start at 1e-5. The released large-kernel conv computes an activation but discards it,
so there is none here either.

Counting: ``params_m`` and ``gmacs_224_fvcore`` are reproduced on the unfused model. ``lsnet.fuse``
reparameterises every MobileOne block, large kernel and RepMixer into single convs (RepMixer into
one 3x3 depthwise conv) and folds every BN; SE, activations and the ConvMlp layer scale remain.

Module names are timm's (``stages.i.downsample.proj``, ``stages.i.blocks.j``, ``head.fc``) but for the
conv of a conv+BN pair, ``c`` here and ``conv`` in timm; ``TIMM_RENAMES`` renames it, so timm's released
checkpoints load unchanged.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import PoolLinear, load_pretrained, to_hw
from lsnet.layers import Conv2d_BN, SqueezeExcite, _bn_scale_shift

FAMILY = "fastvit"


def _pad_to(w: torch.Tensor, k: int) -> torch.Tensor:
    p = (k - w.shape[-1]) // 2
    return F.pad(w, [p, p, p, p])


def _identity_bn_kernel(bn: nn.BatchNorm2d, in_per_group: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a KxK grouped conv that equals ``bn(x)`` (the MobileOne identity branch)."""
    scale, shift = _bn_scale_shift(bn)
    c = scale.numel()
    w = torch.zeros(c, in_per_group, k, k, dtype=scale.dtype, device=scale.device)
    w[torch.arange(c), torch.arange(c) % in_per_group, k // 2, k // 2] = scale
    return w, shift


class MobileOneBlock(nn.Module):
    """Branches ``identity BN + scale 1x1 conv+BN + n x KxK conv+BN``, then SE and activation."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 use_se: bool = False, use_act: bool = True, use_scale_branch: bool = True,
                 num_conv_branches: int = 1, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.kernel_size, self.groups = kernel_size, groups
        self.identity = nn.BatchNorm2d(in_chs) if in_chs == out_chs and stride == 1 else None
        self.conv_kxk = nn.ModuleList(
            Conv2d_BN(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups)
            for _ in range(num_conv_branches))
        self.conv_scale = (Conv2d_BN(in_chs, out_chs, 1, stride, 0, groups=groups)
                           if kernel_size > 1 and use_scale_branch else None)
        self.se = SqueezeExcite(out_chs, 1 / 16, rd_divisor=1) if use_se else nn.Identity()
        self.act = act_layer() if use_act else nn.Identity()

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        out = 0
        if self.identity is not None:
            out = self.identity(x)
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        for conv in self.conv_kxk:
            out = out + conv(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.branches(x)))

    @torch.no_grad()
    def reparam_conv(self) -> nn.Conv2d:
        """One biased conv equal to the sum of the branches (before SE and activation)."""
        ref = self.conv_kxk[0].c if len(self.conv_kxk) else self.conv_scale.c if self.conv_scale else None
        k = self.kernel_size
        if ref is None:  # BN-only (RepMixer's norm)
            c = self.identity.num_features
            ref = nn.Conv2d(c, c, k, 1, k // 2, groups=self.groups, bias=False,
                            dtype=self.identity.weight.dtype, device=self.identity.weight.device)
        conv = nn.Conv2d(ref.in_channels, ref.out_channels, k, ref.stride, k // 2, groups=self.groups, bias=True,
                         dtype=ref.weight.dtype, device=ref.weight.device)
        w = torch.zeros_like(conv.weight)
        b = torch.zeros_like(conv.bias)
        for branch in [*self.conv_kxk, *([self.conv_scale] if self.conv_scale is not None else [])]:
            f = branch.fuse()
            w += _pad_to(f.weight, k)
            b += f.bias
        if self.identity is not None:
            wi, bi = _identity_bn_kernel(self.identity, conv.in_channels // self.groups, k)
            w += wi
            b += bi
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        return conv

    def fuse(self) -> nn.Module:
        parts = [m for m in (self.reparam_conv(), self.se, self.act) if not isinstance(m, nn.Identity)]
        return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


class ReparamLargeKernelConv(nn.Module):
    """Large KxK grouped conv+BN plus a small-kernel one (same stride), summed; fuses into one conv."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, groups: int, small_kernel: int = 3):
        super().__init__()
        self.large_conv = Conv2d_BN(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups)
        self.small_conv = Conv2d_BN(in_chs, out_chs, small_kernel, stride, small_kernel // 2, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.large_conv(x) + self.small_conv(x)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv, small = self.large_conv.fuse(), self.small_conv.fuse()
        conv.weight.add_(_pad_to(small.weight, conv.kernel_size[0]))
        conv.bias.add_(small.bias)
        return conv


class LayerScale2d(nn.Module):
    """Per-channel learnable scale ``x * gamma``."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class RepMixer(nn.Module):
    """``x + gamma * (mixer(x) - norm(x))``; fuses into one depthwise conv."""

    def __init__(self, dim: int, kernel_size: int = 3, layer_scale_init_value: float = 1e-5):
        super().__init__()
        self.norm = MobileOneBlock(dim, dim, kernel_size, groups=dim, use_act=False, use_scale_branch=False,
                                   num_conv_branches=0)
        self.mixer = MobileOneBlock(dim, dim, kernel_size, groups=dim, use_act=False)
        self.layer_scale = LayerScale2d(dim, layer_scale_init_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale(self.mixer(x) - self.norm(x))

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        mixer, norm = self.mixer.reparam_conv(), self.norm.reparam_conv()
        gamma = self.layer_scale.gamma.view(-1)
        k = mixer.kernel_size[0]
        mixer.weight.sub_(norm.weight).mul_(gamma[:, None, None, None])
        mixer.weight[:, 0, k // 2, k // 2] += 1
        mixer.bias.sub_(norm.bias).mul_(gamma)
        return mixer


class ConvMlp(nn.Module):
    """7x7 depthwise conv+BN, 1x1 expand, activation, 1x1 project."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv = Conv2d_BN(dim, dim, 7, 1, 3, groups=dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepMixerBlock(nn.Module):
    """RepMixer token mixer, then ``x + layer_scale(mlp(x))`` (stochastic depth on the branch in training)."""

    def __init__(self, dim: int, kernel_size: int = 3, mlp_ratio: float = 3.0, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.0, layer_scale_init_value: float = 1e-5):
        super().__init__()
        self.token_mixer = RepMixer(dim, kernel_size, layer_scale_init_value)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer)
        self.layer_scale = LayerScale2d(dim, layer_scale_init_value)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        y = self.layer_scale(self.mlp(x))
        if self.training and self.drop > 0:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype)
            y = y * keep.ge_(self.drop).div_(1 - self.drop)
        return x + y


class FastViT(nn.Module):
    """FastViT (RepMixer variants) backbone and classifier."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 4, 2), embed_dims: tuple[int, ...] = (48, 96, 192, 384),
                 mlp_ratio: float = 3.0, down_patch_size: int = 7, repmixer_kernel_size: int = 3,
                 cls_ratio: float = 2.0, in_chans: int = 3, num_classes: int = 1000, drop_path_rate: float = 0.0,
                 layer_scale_init_value: float = 1e-5, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        d0 = embed_dims[0]
        self.stem = nn.Sequential(
            MobileOneBlock(in_chans, d0, 3, 2, act_layer=act_layer),
            MobileOneBlock(d0, d0, 3, 2, groups=d0, act_layer=act_layer),
            MobileOneBlock(d0, d0, 1, 1, act_layer=act_layer))
        drops = iter(torch.linspace(0, drop_path_rate, sum(layers)).tolist())
        self.stages = nn.Sequential()
        prev = d0
        for i, (depth, dim) in enumerate(zip(layers, embed_dims)):
            stage = nn.Sequential()
            if i > 0:
                stage.add_module("downsample", nn.Sequential(OrderedDict(proj=nn.Sequential(
                    ReparamLargeKernelConv(prev, dim, down_patch_size, 2, groups=prev),
                    MobileOneBlock(dim, dim, 1, 1, act_layer=act_layer)))))
            stage.add_module("blocks", nn.Sequential(*(
                RepMixerBlock(dim, repmixer_kernel_size, mlp_ratio, act_layer, next(drops), layer_scale_init_value)
                for _ in range(depth))))
            self.stages.append(stage)
            prev = dim
        final = int(prev * cls_ratio)
        self.final_conv = MobileOneBlock(prev, final, 3, 1, groups=prev, use_se=True, act_layer=act_layer)
        self.head = PoolLinear(nn.Linear(final, num_classes) if num_classes > 0 else nn.Identity())
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_conv(self.stages(self.stem(x))))


@dataclass(frozen=True)
class FastViTConfig:
    layers: tuple[int, ...]
    embed_dims: tuple[int, ...]
    mlp_ratio: float = 3.0


CONFIGS = {
    "fastvit_t8": FastViTConfig((2, 2, 4, 2), (48, 96, 192, 384)),
    "fastvit_t12": FastViTConfig((2, 2, 6, 2), (64, 128, 256, 512)),
}


def build(name: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
          pretrained: str | None = None) -> FastViT:
    """FastViT variant ``name`` (fully convolutional: ``img_size`` is accepted for the common signature)."""
    to_hw(img_size)  # an int or an (H, W) pair; any size runs
    c = CONFIGS[name]
    model = FastViT(c.layers, c.embed_dims, c.mlp_ratio, num_classes=num_classes, drop_path_rate=drop_path_rate)
    return load_pretrained(model, pretrained)


TIMM_RENAMES = ((r"\.conv\.weight$", ".c.weight"),)   # timm's ConvNormAct names its conv ``conv``, ours ``c``


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {n: (FAMILY, partial(build, n)) for n in CONFIGS}
