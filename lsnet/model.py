"""LSNet ("See Large, Focus Small", CVPR 2025): the official architecture, state-dict compatible.

Wang, Ao et al. "LSNet: See Large, Focus Small." CVPR 2025, arXiv:2503.23135.
The architecture, state-dict layout and parameter counts are those of the official LSNet release.

Input size: ``img_size`` is an int (square, as the official classifier) or an ``(H, W)`` pair. The stage-4
attention (and the ``attn`` mixer swap's, in stages 1-3) is built for its stage's grid: the LeViT bias table has
one entry per offset ``(|dy|, |dx|)`` of the ``h x w`` grid (``M = h * w``, index ``|dy| * w + |dx|``, the order
the official loop over point pairs meets them), so a square ``img_size`` builds exactly the official tables and
loads the official checkpoints unchanged (224: a 4x4 grid, 16 offsets). A model runs only on maps of the grid it
was built for (a clear error names both sizes).

The official detection/segmentation backbone (THU-MIG/lsnet ``detection``/``segmentation`` ``lsnet.py``) does it
differently: it always builds a 14x14 table (``Attention(..., resolution=14)``), bicubically resizes the
checkpoint's 4x4 table to it when loading, and in every forward bicubically resizes the gathered ``(heads, 196,
196)`` bias to the actual ``(N, N)``. This implementation builds the table for the grid instead (same attention
cost, no per-forward interpolation, no extra parameters); a model built for another size that should start from
a 224 checkpoint needs its ``attention_biases`` resized before loading (:func:`resize_attention_biases`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lsnet.layers import FFN, BN_Linear, Conv2d_BN, RepVGGDW, Residual, SqueezeExcite, _bn_scale_shift  # noqa: F401 (FFN re-exported)
from lsnet.layers import stride2_hw, to_hw
from lsnet.ops import ska, ska_bn_add


class LKP(nn.Module):
    """Large-kernel perception: predicts one K_S x K_S kernel per pixel and weight channel."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        self.cv1 = Conv2d_BN(dim, dim // 2)
        self.act = nn.ReLU()
        self.cv2 = Conv2d_BN(dim // 2, dim // 2, ks=lks, pad=(lks - 1) // 2, groups=dim // 2)
        self.cv3 = Conv2d_BN(dim // 2, dim // 2)
        self.cv4 = nn.Conv2d(dim // 2, sks ** 2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks ** 2 * dim // groups)
        self.sks, self.cw = sks, dim // groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, wd = w.shape
        return w.view(b, self.cw, self.sks ** 2, h, wd)


class SKA(nn.Module):
    """Parameter-free wrapper of :func:`lsnet.ops.ska` (kept as a module for the state-dict layout);
    with ``scale`` and ``shift`` it is the fused LSConv tail :func:`lsnet.ops.ska_bn_add`. Both run
    inside this module, so profilers and exported graphs name the SKA work after it."""

    backend = "auto"

    def forward(self, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        if scale is None or shift is None:
            return ska(x, w, self.backend)
        return ska_bn_add(x, w, scale, shift, self.backend)


class LSConv(nn.Module):
    """LS convolution: ``bn(ska(x, lkp(x))) + x``."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        self.lkp = LKP(dim, lks=lks, sks=sks, groups=groups)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x

    @torch.no_grad()
    def fuse(self) -> "FusedLSConv":
        scale, shift = _bn_scale_shift(self.bn)
        return FusedLSConv(self.lkp, self.ska, scale, shift)


class FusedLSConv(nn.Module):
    """Inference LSConv: the BN becomes a per-channel affine applied in the fused SKA tail."""

    def __init__(self, lkp: nn.Module, ska_module: SKA, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.lkp, self.ska = lkp, ska_module
        self.scale = nn.Parameter(scale.detach().clone())
        self.shift = nn.Parameter(shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ska(x, self.lkp(x), self.scale, self.shift)


def attention_bias_idxs(resolution: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
    """LeViT offset table over an R x R (or ``(H, W)``) grid: (N, N) indices into M distinct (|dy|, |dx|) offsets.

    The official code numbers offsets in the order a row-major scan over point pairs first meets
    them; the first point (0, 0) already meets every offset (|dy|, |dx|) in row-major order, so the
    index of an offset is |dy| * W + |dx| and M = H * W (R * R for a square grid).
    """
    h, w = to_hw(resolution, "resolution")
    ys, xs = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    idxs = (ys[:, None] - ys[None, :]).abs() * w + (xs[:, None] - xs[None, :]).abs()
    return idxs, h * w


class Attention(nn.Module):
    """LeViT-style multi-head self-attention with a depthwise conv on q and learned position bias, built for a
    ``resolution`` x ``resolution`` (or ``(H, W)``) grid."""

    def __init__(self, dim: int, key_dim: int = 16, num_heads: int = 8, attn_ratio: float = 4.0,
                 resolution: int | tuple[int, int] = 14):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.resolution = resolution
        self.grid = to_hw(resolution, "resolution")
        self.qkv = Conv2d_BN(dim, self.dh + self.nh_kd * 2)
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(self.dh, dim, bn_weight_init=0))
        self.dw = Conv2d_BN(self.nh_kd, self.nh_kd, 3, 1, 1, groups=self.nh_kd)
        idxs, m = attention_bias_idxs(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, m))
        self.register_buffer("attention_bias_idxs", idxs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        if (h, w) != self.grid:
            raise ValueError(f"LSNet Attention was built for a {self.grid[0]}x{self.grid[1]} grid but got a "
                             f"{h}x{w} map (tensor {tuple(x.shape)}); create the model with the img_size (H, W) "
                             f"you run it at")
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)
        q, k, v = (t.reshape(b, self.num_heads, -1, n) for t in (q, k, v))
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = ((q.transpose(-2, -1) @ k) * self.scale + bias).softmax(dim=-1)
        return self.proj((v @ attn.transpose(-2, -1)).reshape(b, -1, h, w))


# A mixer factory builds the odd-block token mixer: (dim, heads, resolution, stage, drop) -> module; resolution
# is the stage's grid, an int for a square img_size, else an (H, W) pair.
MixerFactory = Callable[[int, int, "int | tuple[int, int]", int, float], nn.Module]


def lsnet_mixer(dim: int, heads: int, resolution: int | tuple[int, int], stage: int, drop: float) -> nn.Module:
    """The official choice: LSConv in stages 0-2, residual attention in the last stage."""
    if stage == 3:
        return Residual(Attention(dim, 16, heads, dim / (16 * heads), resolution), drop)
    return LSConv(dim)


class Block(nn.Module):
    """Even j: RepVGGDW + SE; odd j: token mixer; always a residual FFN."""

    def __init__(self, ed: int, heads: int, resolution: int | tuple[int, int], stage: int, depth: int,
                 drop: float = 0.0, mixer: MixerFactory = lsnet_mixer):
        super().__init__()
        if depth % 2 == 0:
            self.mixer = RepVGGDW(ed)
            self.se = SqueezeExcite(ed, 0.25)
        else:
            self.mixer = mixer(ed, heads, resolution, stage, drop)
            self.se = nn.Identity()
        self.ffn = Residual(FFN(ed, ed * 2), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSNet(nn.Module):
    """LSNet backbone and classifier; ``distillation`` adds the ``head_dist`` of DeiT-style training.

    ``img_size``: an int or an ``(H, W)`` pair; the attention is built for its stage grid (module docstring)."""

    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: tuple[int, ...] = (64, 128, 256, 384), depth: tuple[int, ...] = (0, 2, 8, 10),
                 num_heads: tuple[int, ...] = (3, 3, 3, 4), distillation: bool = False,
                 drop_path_rate: float = 0.0, mixer: MixerFactory = lsnet_mixer):
        super().__init__()
        hw = to_hw(img_size)
        if min(hw) < 32:
            raise ValueError(f"img_size must be at least 32 on each side (total stride 32), got "
                             f"{img_size if isinstance(img_size, int) else f'{hw[0]}x{hw[1]}'}")
        d0 = embed_dim[0]
        self.patch_embed = nn.Sequential(
            Conv2d_BN(in_chans, d0 // 4, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(d0 // 4, d0 // 2, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(d0 // 2, d0, 3, 2, 1))
        grid = stride2_hw(hw, 3)
        drops = torch.linspace(0, drop_path_rate, sum(depth)).tolist()
        for i, (ed, dpth, nh) in enumerate(zip(embed_dim, depth, num_heads)):
            stage = nn.Sequential()
            if i > 0:
                prev = embed_dim[i - 1]
                grid = stride2_hw(grid)
                stage.append(Conv2d_BN(prev, prev, 3, 2, 1, groups=prev))
                stage.append(Conv2d_BN(prev, ed, 1))
            resolution = grid[0] if isinstance(img_size, int) else grid  # square: the official int resolution
            for j in range(dpth):
                stage.append(Block(ed, nh, resolution, i, j, drops.pop(0), mixer))
            setattr(self, f"blocks{i + 1}", stage)
        self.head = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.distillation = distillation
        if distillation:
            self.head_dist = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes, self.img_size = num_classes, img_size
        self.grad_checkpointing = False
        # the stage-4 grid the attention is built for (checked up front for a clear message naming the sizes)
        self._attn_grid = grid if any(isinstance(m, Attention) for m in self.blocks4.modules()) else None

    def set_grad_checkpointing(self, enable: bool = True) -> "LSNet":
        """Recompute each stage's modules in the backward instead of keeping their activations
        (``torch.utils.checkpoint``, non-reentrant, per module of ``blocks1``..``blocks4``), as in timm.

        Only in training with gradients enabled; gradients are unchanged, BatchNorm running statistics
        are updated twice per checkpointed module (once more by the recomputation), as in timm.
        """
        self.grad_checkpointing = bool(enable)
        return self

    def _stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):
            return stage(x)
        for module in stage:
            x = checkpoint(module, x, use_reentrant=False)
        return x

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming both sizes if ``x`` does not give the stage-4 grid the attention was built for."""
        if self._attn_grid is None or x.dim() != 4:
            return
        grid = stride2_hw((x.shape[-2], x.shape[-1]), 6)
        if grid != self._attn_grid:
            hw = to_hw(self.img_size)
            raise ValueError(f"LSNet was built for img_size {hw[0]}x{hw[1]} (stage-4 attention grid "
                             f"{self._attn_grid[0]}x{self._attn_grid[1]}) but got input {tuple(x.shape)} (grid "
                             f"{grid[0]}x{grid[1]}); create the model with img_size=(H, W) of the images you run")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.patch_embed(x)
        for stage in (self.blocks1, self.blocks2, self.blocks3, self.blocks4):
            x = self._stage(stage, x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_features(x)
        if not self.distillation:
            return self.head(x)
        out = self.head(x), self.head_dist(x)
        return out if self.training else (out[0] + out[1]) / 2


@dataclass(frozen=True)
class LSNetConfig:
    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...] = (3, 3, 3, 4)


CONFIGS = {
    "lsnet_t": LSNetConfig((64, 128, 256, 384), (0, 2, 8, 10)),
    "lsnet_s": LSNetConfig((96, 192, 320, 448), (1, 2, 8, 10)),
    "lsnet_b": LSNetConfig((128, 256, 384, 512), (4, 6, 8, 10)),
}
MODEL_NAMES = tuple(n + s for s in ("", "_distill") for n in CONFIGS)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(MODEL_NAMES)


def create_model(name: str, num_classes: int = 1000, pretrained: str | None = None,
                 img_size: int | tuple[int, int] = 224, drop_path_rate: float = 0.0,
                 mixer: MixerFactory = lsnet_mixer) -> LSNet:
    """Build an LSNet variant for ``img_size`` (an int or an ``(H, W)`` pair); ``pretrained`` is a local
    checkpoint path (nothing is downloaded)."""
    base = name.removesuffix("_distill")
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown LSNet model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    cfg = CONFIGS[base]
    model = LSNet(img_size=img_size, num_classes=num_classes, embed_dim=cfg.embed_dim, depth=cfg.depth,
                  num_heads=cfg.num_heads, distillation=name.endswith("_distill"),
                  drop_path_rate=drop_path_rate, mixer=mixer)
    if pretrained:
        from lsnet.checkpoint import load_checkpoint
        load_checkpoint(model, pretrained)
    return model


def set_ska_backend(model: nn.Module, backend: str) -> nn.Module:
    """Make every SKA in ``model`` use ``backend`` (``auto``, ``reference``, ``torch``, ``triton``)."""
    for m in model.modules():
        if isinstance(m, SKA):
            m.backend = backend
    return model


@torch.no_grad()
def resize_attention_biases(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` (e.g. a 224 checkpoint) made loadable into ``model`` built for another ``img_size``.

    Each LSNet ``Attention``'s ``attention_biases`` (heads, R*R) whose shape differs is resized bicubically as a
    (heads, R, R) table of offsets to the model's (h, w) grid, as the official downstream code resizes its tables
    when loading; ``attention_bias_idxs`` are taken from ``model``. Other entries are returned unchanged.
    """
    out = dict(state_dict)
    for name, m in model.named_modules():
        if not isinstance(m, Attention):
            continue
        key, idx_key = f"{name}.attention_biases", f"{name}.attention_bias_idxs"
        if idx_key in out:
            out[idx_key] = m.attention_bias_idxs.clone()
        src = out.get(key)
        if src is None or src.shape == m.attention_biases.shape:
            continue
        heads, n = src.shape
        r = math.isqrt(n)
        if r * r != n or heads != m.attention_biases.shape[0]:
            raise ValueError(f"{key}: cannot resize a {tuple(src.shape)} table to {tuple(m.attention_biases.shape)} "
                             f"(expected (heads, R*R) with the model's {m.attention_biases.shape[0]} heads)")
        table = F.interpolate(src.view(1, heads, r, r).double(), size=m.grid, mode="bicubic", align_corners=False)
        out[key] = table.view(heads, -1).to(src.dtype)
    return out
