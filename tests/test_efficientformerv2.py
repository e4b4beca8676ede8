"""EfficientFormerV2: exact fusion in float64 at 224, the inference form, attention bound to img_size, heads."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lsnet
from baselines import efficientformerv2 as ef
from suites.core.counting import count_params


@pytest.mark.parametrize("name", list(ef.CONFIGS))
def test_fused_equals_unfused_in_float64_at_224(name, fuse_check):
    fused, ref, err = fuse_check(ef.build(name), 224)
    assert ref.shape == (2, 1000) and torch.isfinite(ref).all()
    assert err < 1e-12, f"{name}: fused differs by {err:.3g}"


def test_fuse_leaves_convs_activations_and_one_linear():
    model = ef.build("efficientformerv2_s0").eval()
    gelus = sum(isinstance(m, nn.GELU) for m in model.modules())
    fused = lsnet.fuse(copy.deepcopy(model))
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, ef.LayerScale2d, ef.LocalGlobalQuery, lsnet.layers.Conv2d_BN)
    assert not any(isinstance(m, kinds) for m in fused.modules())
    assert sum(isinstance(m, nn.GELU) for m in fused.modules()) == gelus
    assert isinstance(fused.head, nn.Linear) and fused.head_dist is None and isinstance(fused.norm, nn.Identity)
    assert all(c.bias is not None for c in fused.modules() if isinstance(c, nn.Conv2d))
    # BN shifts, the final BN and head_dist are gone
    assert count_params(model) - count_params(fused) > 176 * 1000


def test_attention_tables_follow_img_size_and_are_not_saved():
    def tables(model):
        return [(type(m).__name__, tuple(m.attention_biases.shape), tuple(m.attention_bias_idxs.shape))
                for m in model.modules() if isinstance(m, (ef.Attention2d, ef.Attention2dDownsample))]

    # 224: stage-3 map 14 attended at 7x7 (stride 2), stage-4 downsample 14 -> 7, stage-4 blocks 7x7
    assert tables(ef.build("efficientformerv2_s0")) == (
        [("Attention2d", (8, 49), (49, 49))] * 2 + [("Attention2dDownsample", (8, 196), (49, 196))]
        + [("Attention2d", (8, 49), (49, 49))] * 2)
    assert tables(ef.build("efficientformerv2_s0", img_size=256)) == (
        [("Attention2d", (8, 64), (64, 64))] * 2 + [("Attention2dDownsample", (8, 256), (64, 256))]
        + [("Attention2d", (8, 64), (64, 64))] * 2)
    sd = ef.build("efficientformerv2_s1").state_dict()
    assert any(k.endswith("attention_biases") for k in sd) and not any("attention_bias_idxs" in k for k in sd)


def test_downsample_attention_offsets():
    # a stride-2 query at (2i, 2j) meets key (y, x) at offset |2i - y| * R + |2j - x|
    att = ef.Attention2dDownsample(8, 8, resolution=5, num_heads=2)
    idx = att.attention_bias_idxs
    assert idx.shape == (9, 25)
    assert idx[4, 0] == 2 * 5 + 2  # query (2, 2), key (0, 0)
    assert idx[8, 24] == 0 and idx[2, 20] == 4 * 5 + 4  # query (4, 4) on itself; query (0, 4), key (4, 0)


def test_built_resolution_is_checked():
    model = ef.build("efficientformerv2_s0", img_size=64).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        with pytest.raises(ValueError, match="img_size"):
            model(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="img_size"):  # a 13x13 stage-3 map cannot be attended at stride 2
        ef.build("efficientformerv2_s0", img_size=208)


def test_distillation_head_is_averaged_in_training_too():
    model = ef.build("efficientformerv2_s0", num_classes=5, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            f = model.forward_features(x)
            torch.testing.assert_close(model(x), (model.head(f) + model.head_dist(f)) / 2)
    plain = ef.build("efficientformerv2_s0", num_classes=5, img_size=64, distillation=False)
    assert plain.head_dist is None and count_params(model) - count_params(plain) == 176 * 5 + 5


def test_from_timm_renames_only_conv_bn_convs():
    sd = {"stem.conv1.conv.weight": torch.zeros(1), "stages.1.downsample.conv.conv.bias": torch.zeros(1),
          "stages.1.downsample.conv.bn.weight": torch.zeros(1), "stages.3.downsample.attn.q.local.weight":
          torch.zeros(1), "stages.2.blocks.4.token_mixer.talking_head1.weight": torch.zeros(1)}
    from baselines.checkpoint import from_timm
    out = from_timm(ef.build("efficientformerv2_s0"), sd)
    assert list(out) == ["stem.conv1.c.weight", "stages.1.downsample.conv.c.bias",
                         "stages.1.downsample.conv.bn.weight", "stages.3.downsample.attn.q.local.weight",
                         "stages.2.blocks.4.token_mixer.talking_head1.weight"]
    assert all(a is b for a, b in zip(out.values(), sd.values()))
