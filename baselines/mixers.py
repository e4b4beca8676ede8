"""Token-mixer swaps on LSNet-T: the paper's "LS conv vs. other mixers" claim, tested head to head.

Wang, Ao et al. "LSNet: See Large, Focus Small." CVPR 2025 (arXiv:2503.23135), Sec. 4.3 ablations.

Every model here is ``lsnet_t`` with only the odd-block token mixer of stages 1-3 (``blocks1`` ..
``blocks3``; ``blocks1`` is empty in LSNet-T) replaced; the stem, RepVGGDW + SE even blocks,
FFNs, downsamples, the stage-4 attention and the head are untouched:

- ``lsnet_t_mixer_attn``: ``Residual(Attention)``, LeViT-style multi-head self-attention with 3
  heads (key dim 16, value dim ``d / 3``) and a position bias for the stage's resolution, exactly
  the mixer LSNet uses in stage 4 (built for the stage's ``h x w`` grid when ``img_size`` is an ``(H, W)``
  pair: see :mod:`lsnet.model`).
- ``lsnet_t_mixer_dwconv{3,7}``: ``Residual(Conv2d_BN depthwise KxK)``, a static depthwise conv
  with BN and the same residual as LS conv.
- ``lsnet_t_mixer_ls_k{KL}{KS}``: LS conv with large kernel KL (LKP) and small kernel KS (SKA);
  ``lsnet_t`` itself is ``ls_k73``.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from lsnet.layers import Conv2d_BN, Residual
from lsnet.model import Attention, LSConv, LSNet, MixerFactory, create_model, lsnet_mixer

FAMILY = "lsnet_mixer"
BASE = "lsnet_t"
LS_KERNELS = ((5, 3), (9, 3), (7, 5), (5, 5), (9, 5))  # (KL, KS); (7, 3) is lsnet_t itself


def _last_stage_or(build: Callable[[int, int, int, float], nn.Module]) -> MixerFactory:
    def factory(dim: int, heads: int, resolution: int, stage: int, drop: float) -> nn.Module:
        if stage == 3:
            return lsnet_mixer(dim, heads, resolution, stage, drop)
        return build(dim, heads, resolution, drop)
    return factory


def attn_mixer(dim: int, heads: int, resolution: int, drop: float) -> nn.Module:
    """Multi-head self-attention (LSNet's stage-4 form) at this stage's resolution."""
    return Residual(Attention(dim, 16, heads, dim / (16 * heads), resolution), drop)


def dwconv_mixer(kernel: int) -> Callable[[int, int, int, float], nn.Module]:
    """Static depthwise ``kernel`` x ``kernel`` conv + BN with a residual, as LS conv has."""
    def build(dim: int, heads: int, resolution: int, drop: float) -> nn.Module:
        return Residual(Conv2d_BN(dim, dim, kernel, 1, kernel // 2, groups=dim), drop)
    return build


def ls_mixer(lks: int, sks: int) -> Callable[[int, int, int, float], nn.Module]:
    """LS conv with large kernel ``lks`` and small kernel ``sks``."""
    def build(dim: int, heads: int, resolution: int, drop: float) -> nn.Module:
        return LSConv(dim, lks=lks, sks=sks)
    return build


MIXERS: dict[str, MixerFactory] = {
    "attn": _last_stage_or(attn_mixer),
    "dwconv3": _last_stage_or(dwconv_mixer(3)),
    "dwconv7": _last_stage_or(dwconv_mixer(7)),
    **{f"ls_k{kl}{ks}": _last_stage_or(ls_mixer(kl, ks)) for kl, ks in LS_KERNELS},
}


def build(mixer: str, num_classes: int = 1000, img_size: int | tuple[int, int] = 224, **kw) -> LSNet:
    """``lsnet_t`` with token mixer ``mixer`` (a key of :data:`MIXERS`) in stages 1-3."""
    return create_model(BASE, num_classes=num_classes, img_size=img_size, mixer=MIXERS[mixer], **kw)


MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    f"{BASE}_mixer_{m}": (FAMILY, partial(build, m)) for m in MIXERS}
