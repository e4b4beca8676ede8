"""Small helpers shared by the baseline families (the layers themselves live in ``lsnet.layers``)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from lsnet.layers import BN_Linear, _bn_scale_shift, stride2_hw, to_hw  # noqa: F401 (to_hw re-exported)


def stride2(r: int | tuple[int, int], times: int = 1) -> int | tuple[int, int]:
    """Output size after ``times`` 3x3 (or KxK, pad K//2) stride-2 convs on an ``r`` x ``r`` (or ``(H, W)``) map."""
    if isinstance(r, tuple):
        return stride2_hw(r, times)
    for _ in range(times):
        r = (r - 1) // 2 + 1
    return r


class DistillHead(nn.Module):
    """``head`` (+ DeiT-style ``head_dist``) BN_Linear classifier.

    With distillation: training returns the pair, eval their mean. ``fuse()`` folds both BNs and
    averages the two linears into one (exact in eval mode).
    """

    def __init__(self, dim: int, num_classes: int, distillation: bool = True):
        super().__init__()
        self.head = BN_Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.distillation = distillation
        if distillation:
            self.head_dist = BN_Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.distillation:
            return self.head(x)
        out = self.head(x), self.head_dist(x)
        return out if self.training else (out[0] + out[1]) / 2

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        if isinstance(self.head, nn.Identity):
            return self.head
        head = self.head.fuse()
        if self.distillation:
            dist = self.head_dist.fuse()
            head.weight.add_(dist.weight).mul_(0.5)
            head.bias.add_(dist.bias).mul_(0.5)
        return head


def load_pretrained(model: nn.Module, pretrained: str | None) -> nn.Module:
    """Load a local timm-format checkpoint (nothing is downloaded) if ``pretrained`` names one."""
    if pretrained:
        from baselines.checkpoint import load_checkpoint
        load_checkpoint(model, pretrained)
    return model


class PoolLinear(nn.Module):
    """Global average pool then Linear (the fused form of :class:`NormPoolLinear`)."""

    def __init__(self, fc: nn.Module):
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


class NormPoolLinear(nn.Module):
    """BatchNorm2d on the last feature map, global average pool, Linear (StarNet's tail).

    The BN is a per-channel affine map, so it commutes with pooling and ``fuse()`` folds it into the
    Linear (exact in eval mode).
    """

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x).mean((2, 3)))

    @torch.no_grad()
    def fuse(self) -> PoolLinear:
        scale, shift = _bn_scale_shift(self.norm)
        if isinstance(self.fc, nn.Identity):
            fc = nn.Linear(scale.numel(), scale.numel(), device=scale.device, dtype=scale.dtype)
            fc.weight.copy_(torch.diag(scale))
            fc.bias.copy_(shift)
            return PoolLinear(fc)
        fc = copy.deepcopy(self.fc)
        fc.bias.add_(self.fc.weight @ shift)
        fc.weight.mul_(scale[None, :])
        return PoolLinear(fc)


class LayerScale2d(nn.Module):
    """Per-channel learnable scale ``gamma`` of an NCHW branch (timm's name; folded into the conv before it)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)
