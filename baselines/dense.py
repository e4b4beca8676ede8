"""Dense prediction on the zoo's classifiers: multi-scale backbones and the Semantic FPN of LSNet's ADE20K recipe.

Three tasks (:data:`TASKS`), all through :func:`for_task`:

- ``classify``: the classifier itself, unchanged.
- ``features``: :class:`Backbone`, the classifier's stem and stages run without its head, returning the tuple of
  feature maps its detection/segmentation recipes feed to their necks (``strides`` and ``channels`` attributes).
- ``segment``: :class:`SemanticFPN`, that backbone with the Semantic FPN neck and head (Kirillov et al.,
  "Panoptic Feature Pyramid Networks", CVPR 2019, arXiv:1901.02446) as LSNet's ADE20K recipe builds it.

Feature layouts (one table, :data:`LAYOUTS`; strides are of the input, the maps those recipes take):

==================  =================  ==========================================================================
family              strides            taken from
==================  =================  ==========================================================================
LSNet (+ mixers)    8, 16, 32, 64      ``blocks1`` .. ``blocks4`` (LSNet-T's empty ``blocks1`` gives the stem map),
                                       as the official detection/segmentation backbone returns all four stages
                                       (THU-MIG/lsnet ``detection``/``segmentation`` ``lsnet.py``; its configs feed
                                       ``in_channels=[d1, d2, d3, d4]`` to the neck)
RepViT              4, 8, 16, 32       the four stages (RepViT's detection backbone ``out_indices``)
EfficientFormerV2   4, 8, 16, 32       the four stages (the official ``fork_feat`` outputs; its per-output BNs are new,
                                       untrained layers, identity at initialisation, and are not added here)
FastViT             4, 8, 16, 32       the four stages (``fork_feat``; same remark on the per-output norms)
FasterNet           4, 8, 16, 32       the four stages (``fork_feat``; same remark)
StarNet             4, 8, 16, 32       the four stages (the stem is stride 2, every stage downsamples)
MobileNetV4         4, 8, 16, 32       ``blocks[0]``, ``[1]``, ``[2]`` and ``[4]`` (the stride-32 level is the
                                       960-channel 1x1 conv that ends ``blocks``, as timm's ``features_only``
                                       reports it)
SHViT               16, 32, 64         the three stages (stride-16 patchify stem)
EfficientViT (M)    16, 32, 64         the three stages (stride-16 patch embedding)
==================  =================  ==========================================================================

A :class:`Backbone` shares its modules with the classifier it wraps (no copies: the model's own stem and stages
run, so nothing drifts) and registers them under the classifier's attribute names, so its state-dict keys are
the classifier's without the head. ``lsnet.fuse`` folds it (and :class:`SemanticFPN`) like any zoo model; fusing
a backbone folds the shared modules of the classifier as well.

Resolution-bound attention (LSNet stage 4, the ``attn`` mixer swap, EfficientFormerV2, EfficientViT's windows)
is built for the ``img_size`` the classifier was created with, an int or an ``(H, W)`` pair: build the model for
the input you run (``create_model(name, img_size=(H, W))``); each family's module docstring says how its bias
table is sized for a rectangular grid.

Semantic FPN settings (LSNet's ADE20K configs, ``segmentation/configs/fpn_lsnet_{t,s,b}_ade20k_*.py`` on
mmseg's ``_base_/models/fpn_r50.py``): neck ``LSNetFPN(in_channels=[d1..d4], out_channels=256, num_outs=4)`` with
``num_extra_trans_convs`` left out (commented out in the configs). LSNetFPN is EfficientViT's (MSRA)
``EfficientViTFPN`` (it takes ``num_extra_trans_convs``), which without extra transposed convs is mmseg's ``FPN``:
1x1 laterals and 3x3 output convs, both biased, no norm or activation, nearest top-down upsampling to the finer
map's size. Head ``FPNHead(in_channels=[256]*4, in_index=[0, 1, 2, 3], channels=128, dropout_ratio=0.1,
num_classes=150, norm_cfg=SyncBN, align_corners=False)`` with ``feature_strides`` the backbone's: per level
``max(1, log2(s_i / s_0))`` 3x3 conv+BN+ReLU (128 channels), each but the finest followed by a 2x bilinear
upsampling, the levels summed, then ``Dropout2d(0.1)`` (training only) and a 1x1 ``conv_seg`` to
``num_classes``. The config's ``feature_strides=[4, 8, 16, 32]`` only set the per-level depths through their
ratios, so LSNet's 8/16/32/64 build the same head. The head's output is at the finest level's stride (8 for
LSNet, 4 for the stride-4 families); mmseg's ``EncoderDecoder`` resizes it bilinearly (``align_corners=False``)
to the input at inference, which is the default here (``resize_to_input=True``; ``False`` returns the head's
map, ``output_stride`` says which). Backbones with three levels (SHViT, EfficientViT: strides 16/32/64) get the
fourth, finer FPN level as EfficientViT's (MSRA) and SHViT's downstream ``EfficientViTFPN`` makes it with
``num_extra_trans_convs=1``: a 2x2 stride-2 transposed conv on the finest lateral (after the top-down pass) and
a 3x3 conv, giving 8/16/32/64. BN in the head is plain ``BatchNorm2d`` (SyncBN is the same function in eval).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lsnet.layers import Conv2d_BN, stride2_hw, to_hw

TASKS = ("classify", "features", "segment")


@dataclass(frozen=True)
class Layout:
    """How to run a classifier as a backbone.

    ``stem``: attribute names run in order before the stages. ``stages``: either a tuple of attribute names
    (each one stage) or one attribute name of an ``nn.Sequential`` whose children are the stages. ``outs``: the
    indices of the stages whose outputs are returned, at ``strides``. ``fuse``: an optional in-place fold of what
    ``lsnet.fuse`` cannot reach in the backbone (a stem conv and its BN kept as two attributes).
    """
    family: str
    stem: tuple[str, ...]
    stages: tuple[str, ...] | str
    outs: tuple[int, ...]
    strides: tuple[int, ...]
    fuse: Callable[[nn.Module], None] | None = None
    fixed: bool = False   # attention built for img_size (all downsampling 3x3 stride-2 pad-1): check inputs up front


def _fold_mnv4_stem(backbone: nn.Module) -> None:
    from baselines.mobilenetv4 import _fold_bn
    _fold_bn(backbone, "conv_stem", "bn1")


def _layouts() -> dict[type, Layout]:
    from baselines import efficientformerv2, efficientvit, fasternet, fastvit, mobilenetv4, repvit, shvit, starnet
    from lsnet.model import LSNet
    four = (0, 1, 2, 3)
    return {
        LSNet: Layout("lsnet", ("patch_embed",), ("blocks1", "blocks2", "blocks3", "blocks4"), four, (8, 16, 32, 64),
                      fixed=True),
        repvit.RepViT: Layout("repvit", ("stem",), "stages", four, (4, 8, 16, 32)),
        efficientformerv2.EfficientFormerV2: Layout("efficientformerv2", ("stem",), "stages", four, (4, 8, 16, 32),
                                                    fixed=True),
        fastvit.FastViT: Layout("fastvit", ("stem",), "stages", four, (4, 8, 16, 32)),
        fasternet.FasterNet: Layout("fasternet", ("patch_embed",), "stages", four, (4, 8, 16, 32)),
        starnet.StarNet: Layout("starnet", ("stem",), "stages", four, (4, 8, 16, 32)),
        mobilenetv4.MobileNetV4: Layout("mobilenetv4", ("conv_stem", "bn1"), "blocks", (0, 1, 2, 4), (4, 8, 16, 32),
                                        fuse=_fold_mnv4_stem),
        shvit.SHViT: Layout("shvit", ("patch_embed",), "stages", (0, 1, 2), (16, 32, 64)),
        efficientvit.EfficientViT: Layout("efficientvit", ("patch_embed",), "stages", (0, 1, 2), (16, 32, 64),
                                          fixed=True),
    }


LAYOUTS: dict[type, Layout] = {}   # filled on first use (the families import lsnet; avoid an import cycle)


def register_layout(cls: type, layout: Layout) -> None:
    """Make :class:`Backbone` accept models of class ``cls`` (a brought model) with ``layout``."""
    _table()[cls] = layout


def _table() -> dict[type, Layout]:
    if not LAYOUTS:
        LAYOUTS.update(_layouts())
    return LAYOUTS


def layout_of(model: nn.Module) -> Layout:
    """The :class:`Layout` for ``model``'s class (or a base class); a clear error if it has none."""
    table = _table()
    for cls in type(model).__mro__:
        if cls in table:
            return table[cls]
    known = ", ".join(sorted(f"{c.__name__} ({lay.family})" for c, lay in table.items()))
    raise ValueError(
        f"no feature layout for model {type(model).__name__} (from {type(model).__module__}): the 'features' and "
        f"'segment' tasks know {known}. Fix: register one with baselines.dense.register_layout({type(model).__name__}, "
        f"Layout(family, stem=('stem attr',), stages='stages attr' or ('stage1 attr', ...), outs=(...), "
        f"strides=(...))), or run this model with --task classify")


def _last_conv_channels(module: nn.Module) -> int | None:
    out = None
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            out = m.out_channels
    return out


class Backbone(nn.Module):
    """A zoo classifier's stem and stages, without its head, returning its multi-scale feature maps.

    ``strides`` and ``channels`` describe the returned tuple (finest first). The modules are the classifier's own
    (shared, not copied), registered under the classifier's attribute names.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if isinstance(model, Backbone):
            raise TypeError("Backbone(model) takes a classifier, got a Backbone already")
        lay = layout_of(model)
        self.family, self.model_name = lay.family, type(model).__name__
        for name in lay.stem:
            setattr(self, name, getattr(model, name))
        if isinstance(lay.stages, str):
            setattr(self, lay.stages, getattr(model, lay.stages))
            n = len(getattr(model, lay.stages))
            self._stage_refs: tuple[tuple[str, int | None], ...] = tuple((lay.stages, i) for i in range(n))
        else:
            for name in lay.stages:
                setattr(self, name, getattr(model, name))
            self._stage_refs = tuple((name, None) for name in lay.stages)
        self._stem_names, self._outs, self._fuse = lay.stem, lay.outs, lay.fuse
        self.strides: tuple[int, ...] = tuple(lay.strides)
        self.img_size = getattr(model, "img_size", None)
        self._fixed_hw = to_hw(self.img_size) if lay.fixed and self.img_size is not None else None
        self._halvings = int(math.log2(lay.strides[-1]))
        # channels: the out_channels of the last conv of each stage (the stem's for an empty stage)
        ch = None
        for name in lay.stem:
            ch = _last_conv_channels(getattr(self, name)) or ch
        channels = []
        for i in range(len(self._stage_refs)):
            ch = _last_conv_channels(self._stage(i)) or ch
            if i in self._outs:
                channels.append(ch)
        self.channels: tuple[int, ...] = tuple(channels)

    def _stage(self, i: int) -> nn.Module:
        name, idx = self._stage_refs[i]
        mod = getattr(self, name)
        return mod if idx is None else mod[idx]

    def check_input(self, x: torch.Tensor) -> None:
        """For a model built for its ``img_size``: raise a ValueError naming both sizes if ``x`` does not fit."""
        if self._fixed_hw is None or x.dim() != 4:
            return
        got = stride2_hw((x.shape[-2], x.shape[-1]), self._halvings)
        want = stride2_hw(self._fixed_hw, self._halvings)
        if got != want:
            raise ValueError(f"{self.model_name} backbone was built for img_size "
                             f"{self._fixed_hw[0]}x{self._fixed_hw[1]} (stride-{self.strides[-1]} map "
                             f"{want[0]}x{want[1]}) but got input {tuple(x.shape)} (map {got[0]}x{got[1]}); "
                             f"build the model with img_size=(H, W) of its input")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.check_input(x)
        for name in self._stem_names:
            x = getattr(self, name)(x)
        outs = []
        for i in range(len(self._stage_refs)):
            x = self._stage(i)(x)
            if i in self._outs:
                outs.append(x)
        return tuple(outs)

    @torch.no_grad()
    def fuse(self) -> Backbone:
        """Fold what the generic ``lsnet.fuse`` walk cannot (in place); it then folds the stem and stages."""
        if self._fuse is not None:
            self._fuse(self)
        return self


class FPN(nn.Module):
    """mmseg/mmdet ``FPN`` without norm or activation (the Semantic FPN neck), with EfficientViT's extra
    transposed-conv levels when the backbone has fewer levels than ``num_outs``.

    ``in_strides`` are the input levels' strides; ``strides`` the outputs' (finest first).
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], out_channels: int = 256,
                 num_outs: int = 4):
        super().__init__()
        n = len(in_channels)
        if n > num_outs:
            raise ValueError(f"FPN with num_outs={num_outs} got {n} backbone levels {tuple(in_channels)}")
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        extra = num_outs - n
        self.extra_trans_convs = nn.ModuleList(nn.ConvTranspose2d(out_channels, out_channels, 2, stride=2)
                                               for _ in range(extra))
        self.extra_fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in range(extra))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        s0 = in_strides[0]
        self.strides = tuple(s0 // 2 ** (extra - i) for i in range(extra)) + tuple(in_strides)
        if any(s < 1 for s in self.strides) or s0 % 2 ** extra:
            raise ValueError(f"FPN cannot add {extra} finer level(s) below stride {s0}")

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"FPN expects {len(self.lateral_convs)} feature maps, got {len(feats)}")
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        extra, prev = [], lat[0]
        for trans in self.extra_trans_convs:
            prev = trans(prev)
            extra.insert(0, prev)
        outs = [conv(t) for conv, t in zip(self.fpn_convs, lat)]
        extra_outs = [conv(t) for conv, t in zip(self.extra_fpn_convs, extra)]
        return tuple(extra_outs + outs)


class FPNHead(nn.Module):
    """mmseg ``FPNHead``: per level ``max(1, log2(s_i / s_0))`` 3x3 conv+BN+ReLU blocks with 2x bilinear
    upsampling, summed at the finest level, ``Dropout2d`` then a 1x1 ``conv_seg``."""

    def __init__(self, in_channels: Sequence[int], feature_strides: Sequence[int], channels: int = 128,
                 num_classes: int = 150, dropout_ratio: float = 0.1):
        super().__init__()
        if list(feature_strides) != sorted(feature_strides):
            raise ValueError(f"FPNHead feature_strides must be increasing, got {tuple(feature_strides)}")
        self.scale_heads = nn.ModuleList()
        for i, (c, s) in enumerate(zip(in_channels, feature_strides)):
            length = max(1, int(math.log2(s) - math.log2(feature_strides[0])))
            layers = []
            for k in range(length):
                layers += [Conv2d_BN(c if k == 0 else channels, channels, 3, 1, 1), nn.ReLU()]
                if s != feature_strides[0]:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](feats[0])
        for head, f in zip(self.scale_heads[1:], feats[1:]):
            out = out + F.interpolate(head(f), size=out.shape[2:], mode="bilinear", align_corners=False)
        return self.conv_seg(self.dropout(out))


class SemanticFPN(nn.Module):
    """Backbone + FPN neck (256 channels, 4 outputs) + FPNHead (128 channels) -> ``num_classes`` logits.

    ``forward(x)`` returns ``(N, num_classes, H, W)`` logits resized to the input (``resize_to_input=True``,
    mmseg's inference) or the head's map at the finest level's stride (``output_stride``).
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 150, fpn_channels: int = 256, head_channels: int = 128,
                 num_outs: int = 4, dropout_ratio: float = 0.1, resize_to_input: bool = True):
        super().__init__()
        if not isinstance(backbone, Backbone):
            backbone = Backbone(backbone)
        self.backbone = backbone
        self.neck = FPN(backbone.channels, backbone.strides, fpn_channels, num_outs)
        self.decode_head = FPNHead([fpn_channels] * num_outs, self.neck.strides, head_channels, num_classes,
                                   dropout_ratio)
        self.num_classes, self.resize_to_input = num_classes, resize_to_input
        self.strides, self.channels = self.neck.strides, (fpn_channels,) * num_outs
        self.output_stride = 1 if resize_to_input else self.neck.strides[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decode_head(self.neck(self.backbone(x)))
        if self.resize_to_input:
            out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
        return out


def for_task(model: nn.Module, task: str, num_classes: int = 150) -> nn.Module:
    """``model`` (a zoo classifier) for ``task``: itself (``classify``), its :class:`Backbone` (``features``) or a
    :class:`SemanticFPN` with ``num_classes`` outputs (``segment``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if task == "classify":
        return model
    backbone = model if isinstance(model, Backbone) else Backbone(model)
    if task == "features":
        return backbone
    return SemanticFPN(backbone, num_classes=num_classes)


__all__ = ["FPN", "FPNHead", "LAYOUTS", "TASKS", "Backbone", "Layout", "SemanticFPN", "for_task", "layout_of",
           "register_layout"]
