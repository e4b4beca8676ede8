"""MobileNetV4 (conv small/medium, hybrid medium): timm's block layout, resolution independence, the
multi-query attention against its definition, and the float64 proof that ``fuse()`` is exact."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import lsnet
from baselines import mobilenetv4 as mnv4
from suites.core.counting import count_params

NAMES = list(mnv4.CONFIGS)


def _blocks(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_block_layout_is_timms():
    # Block counts per stage, as timm's _gen_mobilenet_v4 arch_def expands its repeats.
    depths = {"mobilenetv4_conv_small": [2, 2, 6, 6, 1], "mobilenetv4_conv_medium": [1, 2, 8, 11, 1],
              "mobilenetv4_hybrid_medium": [1, 2, 12, 16, 1]}
    for name, want in depths.items():
        model = mnv4.build(name)
        assert [len(stage) for stage in model.blocks] == want, name
    hybrid = mnv4.build("mobilenetv4_hybrid_medium")
    attn = _blocks(hybrid, mnv4.MobileAttention)
    assert [a.attn.kv_stride for a in attn] == [2, 2, 2, 2, 1, 1, 1, 1]
    assert all(a.attn.num_heads == 4 and a.attn.key_dim == 64 for a in attn)
    # the hybrid scales every UIB and MQA branch; the conv variants have no layer scale and no attention
    assert len(_blocks(hybrid, mnv4.LayerScale2d)) == 30
    for name in ("mobilenetv4_conv_small", "mobilenetv4_conv_medium"):
        model = mnv4.build(name)
        assert not _blocks(model, mnv4.LayerScale2d) and not _blocks(model, mnv4.MobileAttention)


@pytest.mark.parametrize("name", NAMES)
def test_stride_32_any_resolution(name):
    model = mnv4.build(name, num_classes=5).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 960, 7, 7)
        for size in (160, 200, 257):
            assert model(torch.randn(1, 3, size, size)).shape == (1, 5)


def test_multi_query_attention_is_its_definition():
    """Every query head attends over the one shared key/value head (scaled dot product, softmax over the
    keys), heads concatenated head-major, then the output projection."""
    torch.manual_seed(0)
    for kv_stride, (h, w) in ((2, (7, 9)), (1, (5, 5))):
        attn = mnv4.MultiQueryAttention2d(32, heads=4, key_dim=8, kv_stride=kv_stride).double().eval()
        x = torch.randn(2, 32, h, w, dtype=torch.float64)
        with torch.no_grad():
            q = attn.query(x).flatten(2).unflatten(1, (4, 8))          # (B, heads, d, N)
            k, v = attn.key(x).flatten(2), attn.value(x).flatten(2)    # (B, d, M)
            logits = torch.einsum("bhdn,bdm->bhnm", q, k) / 8 ** 0.5
            o = torch.einsum("bhnm,bdm->bhdn", logits.softmax(-1), v)
            ref = attn.output(o.reshape(2, 32, h, w))
            torch.testing.assert_close(attn(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,size", [(n, 100) for n in NAMES])
def test_fused_equals_unfused_float64(name, size, fuse_check):
    # 100 px: stages at 50, 25, 13, 7, 4 -- odd maps, so the zero padding of every depthwise and kv
    # downsampling conv is exercised with the folded shifts.
    fused, ref, err = fuse_check(mnv4.build(name), size)
    assert err < 1e-12
    assert not any(isinstance(m, (nn.BatchNorm2d, mnv4.LayerScale2d)) for m in fused.modules())
    for block in _blocks(fused, mnv4.MobileAttention):
        a = block.attn
        assert isinstance(block.norm, nn.Identity) and a.query.proj.bias is not None
        # the pre-norm can't enter a zero-padded depthwise conv: it stays an affine on the kv input
        assert isinstance(a.kv_norm, mnv4.ChannelAffine if a.kv_stride > 1 else nn.Identity)
    # fusing twice changes nothing
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    with torch.inference_mode():
        once = fused(x)
        torch.testing.assert_close(lsnet.fuse(fused)(x), once, rtol=0, atol=0)


def test_fuse_removes_parameters():
    model = mnv4.build("mobilenetv4_hybrid_medium").eval()
    before = count_params(model)
    assert count_params(lsnet.fuse(model)) < before
